package api

import (
	"net/http"
	"strconv"

	"github.com/dflow-sh/cloud-accounts/shared/fault"
)

// statusOf is the one table that turns domain error kinds into HTTP statuses.
var statusOf = map[fault.Kind]int{
	fault.Internal:           http.StatusInternalServerError,
	fault.Invalid:            http.StatusBadRequest,
	fault.Unauthenticated:    http.StatusUnauthorized,
	fault.Forbidden:          http.StatusForbidden,
	fault.NotFound:           http.StatusNotFound,
	fault.Conflict:           http.StatusConflict,
	fault.PreconditionFailed: http.StatusPreconditionFailed,
	fault.TooLarge:           http.StatusRequestEntityTooLarge,
	fault.Unprocessable:      http.StatusUnprocessableEntity,
	fault.Unavailable:        http.StatusServiceUnavailable,
}

// Problem is an RFC 9457 problem details body.
type Problem struct {
	Type      string             `json:"type"`
	Title     string             `json:"title"`
	Status    int                `json:"status"`
	Detail    string             `json:"detail"`
	Code      string             `json:"code"`
	RequestID string             `json:"requestId"`
	Errors    []fault.FieldError `json:"errors,omitempty"`
}

// problemFor renders err. Internal errors show nothing of their cause.
func problemFor(err error, requestID string) (int, map[string]any, map[string]string) {
	e, ok := fault.As(err)
	if !ok || e.Kind == fault.Internal {
		e = &fault.Error{Kind: fault.Internal, Code: "internal_error", Detail: "something went wrong on our side; quote the request id when reporting it"}
	}
	status := statusOf[e.Kind]
	body := map[string]any{}
	for k, v := range e.Extra {
		body[k] = v
	}
	body["type"] = "urn:dflow:problem:" + e.Code
	body["title"] = http.StatusText(status)
	body["status"] = status
	body["detail"] = e.Detail
	body["code"] = e.Code
	body["requestId"] = requestID
	if len(e.Fields) > 0 {
		body["errors"] = e.Fields
	}
	var header map[string]string
	if e.Kind == fault.Unavailable {
		retry := e.RetryAfter
		if retry <= 0 {
			retry = 1
		}
		header = map[string]string{"Retry-After": strconv.Itoa(retry)}
	}
	return status, body, header
}
