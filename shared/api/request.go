package api

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"regexp"
	"strconv"
	"strings"

	"github.com/aws/aws-lambda-go/events"

	"github.com/dflow-sh/cloud-accounts/shared/fault"
	"github.com/dflow-sh/cloud-accounts/shared/ids"
	"github.com/dflow-sh/cloud-accounts/shared/tenancy"
)

// MaxBodyBytes bounds request bodies; larger ones get 413.
const MaxBodyBytes = 64 << 10

// Request is one API call after the pipeline has checked who makes it.
type Request struct {
	ID       string
	RouteKey string
	// UserID is the verified token's sub.
	UserID string
	// OrgID is the organisation in the path, if any. A handler that creates an
	// organisation sets it, so the audit event lands in the new one.
	OrgID string
	// Role is the caller's role in OrgID (zero outside an organisation).
	Role   tenancy.Role
	Params map[string]string
	Event  *events.APIGatewayV2HTTPRequest

	body        []byte
	auditTarget string
}

// Caller is the authenticated user with their role in the organisation.
func (r *Request) Caller() tenancy.Caller { return tenancy.Caller{UserID: r.UserID, Role: r.Role} }

// Param returns a (validated) path parameter.
func (r *Request) Param(name string) string { return r.Params[name] }

// Query returns a query string parameter.
func (r *Request) Query(name string) string { return r.Event.QueryStringParameters[name] }

// Header returns a request header; API Gateway lower-cases names.
func (r *Request) Header(name string) string {
	return r.Event.Headers[strings.ToLower(name)]
}

// SetAuditTarget names what a mutating request acted on, when the path does
// not say it (e.g. the id of something just created).
func (r *Request) SetAuditTarget(target string) { r.auditTarget = target }

// paramFormats checks path parameters before any handler sees them.
var paramFormats = map[string]func(string) bool{
	"orgId":     func(s string) bool { return ids.Valid(ids.Org, s) },
	"roleId":    ids.ValidRole,
	"userId":    ids.ValidUser,
	"accountId": func(s string) bool { return ids.Valid(ids.Account, s) },
	"nodeId":    func(s string) bool { return ids.Valid(ids.Node, s) },
	"groupId":   func(s string) bool { return ids.Valid(ids.Group, s) },
	"keyId":     func(s string) bool { return ids.Valid(ids.SSHKey, s) },
	"provider":  regexp.MustCompile(`^[a-z][a-z0-9]{1,31}$`).MatchString,
	"region":    regexp.MustCompile(`^[a-z]{2}(-[a-z]+)+-\d{1,2}$`).MatchString,
}

// Decode reads the JSON body strictly into v: unknown fields, wrong types,
// trailing data and empty bodies are 400s naming the field at fault.
func (r *Request) Decode(v any) error {
	if len(bytes.TrimSpace(r.body)) == 0 {
		return fault.Field("body", "a JSON body is required")
	}
	dec := json.NewDecoder(bytes.NewReader(r.body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return decodeError(err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return fault.Field("body", "unexpected data after the JSON value")
	}
	return nil
}

func decodeError(err error) error {
	var typeErr *json.UnmarshalTypeError
	var syntaxErr *json.SyntaxError
	switch {
	case errors.As(err, &typeErr):
		field := typeErr.Field
		if field == "" {
			field = "body"
		}
		return fault.Field(field, "must be %s, not %s", jsonType(typeErr.Type.Kind().String()), typeErr.Value)
	case errors.As(err, &syntaxErr):
		return fault.Field("body", "malformed JSON at byte %d", syntaxErr.Offset)
	case errors.Is(err, io.ErrUnexpectedEOF):
		return fault.Field("body", "the JSON ends too early")
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		name, _ := strconv.Unquote(strings.TrimPrefix(err.Error(), "json: unknown field "))
		return fault.Field(name, "is not a known field")
	}
	return fault.Field("body", "cannot be read as JSON")
}

func jsonType(kind string) string {
	switch kind {
	case "string":
		return "a string"
	case "bool":
		return "a boolean"
	case "slice", "array":
		return "an array"
	case "map", "struct", "ptr":
		return "an object"
	case "int", "int8", "int16", "int32", "int64", "uint", "uint8", "uint16", "uint32", "uint64":
		return "an integer"
	case "float32", "float64":
		return "a number"
	}
	return "a " + kind
}

// IfMatch parses the If-Match header: a version as ETag ("3", W/"3" or 3).
// It returns nil when the header is absent.
func (r *Request) IfMatch() (*int64, error) {
	h := strings.TrimSpace(r.Header("If-Match"))
	if h == "" {
		return nil, nil
	}
	v := strings.Trim(strings.TrimPrefix(h, "W/"), `"`)
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n < 1 {
		return nil, fault.Field("If-Match", "must be the resource's ETag, e.g. \"3\"")
	}
	return &n, nil
}

// ETag renders a version as an entity tag.
func ETag(version int64) string { return fmt.Sprintf(`"%d"`, version) }

// Page limits.
const (
	DefaultLimit = 50
	MaxLimit     = 100
)

// Page reads ?limit= and ?cursor=. The cursor must have been made for this
// very list (scope), or it is refused.
func (r *Request) Page(scope string) (tenancy.Page, error) {
	p := tenancy.Page{Limit: DefaultLimit}
	if s, ok := r.Event.QueryStringParameters["limit"]; ok {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > MaxLimit {
			return p, fault.Field("limit", "must be an integer from 1 to %d", MaxLimit)
		}
		p.Limit = n
	}
	if c, ok := r.Event.QueryStringParameters["cursor"]; ok {
		after, err := openCursor(scope, c)
		if err != nil {
			return p, err
		}
		p.After = after
	}
	return p, nil
}

func readBody(e *events.APIGatewayV2HTTPRequest) ([]byte, error) {
	raw := e.Body
	// Cheap early check: base64 is 4/3 of the bytes it carries.
	if len(raw) > MaxBodyBytes*4/3+4 {
		return nil, errTooLarge
	}
	b := []byte(raw)
	if e.IsBase64Encoded {
		var err error
		if b, err = base64.StdEncoding.DecodeString(raw); err != nil {
			return nil, fault.Field("body", "is not valid base64")
		}
	}
	if len(b) > MaxBodyBytes {
		return nil, errTooLarge
	}
	return b, nil
}

var errTooLarge = &fault.Error{Kind: fault.TooLarge, Code: "body_too_large", Detail: fmt.Sprintf("the body exceeds %d bytes", MaxBodyBytes)}
