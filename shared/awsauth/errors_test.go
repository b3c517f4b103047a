package awsauth

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws/retry"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"

	"github.com/dflow-sh/cloud-accounts/shared/fault"
)

// httpError is an AWS error response as the SDK wraps it, with its status.
func httpError(status int, code string, f smithy.ErrorFault) error {
	return &smithy.OperationError{ServiceID: "STS", OperationName: "Op", Err: &awshttp.ResponseError{
		ResponseError: &smithyhttp.ResponseError{Response: &smithyhttp.Response{Response: &http.Response{StatusCode: status}},
			Err: &smithy.GenericAPIError{Code: code, Message: "from AWS", Fault: f}},
		RequestID: "req-1",
	}}
}

func TestClassify(t *testing.T) {
	const (
		invalid     = "credentials_invalid"
		unavailable = "provider_unavailable"
		misconfig   = "provider_auth_misconfigured"
		other       = "provider_error"
	)
	dial := &url.Error{Op: "Post", URL: "https://sts.us-east-1.amazonaws.com/", Err: &net.OpError{Op: "dial", Net: "tcp", Err: fmt.Errorf("connection refused")}}
	dns := &url.Error{Op: "Post", URL: "https://sts.cn-north-1.amazonaws.com.cn/", Err: &net.DNSError{Err: "no such host", Name: "sts.cn-north-1.amazonaws.com.cn", IsNotFound: true}}
	cases := []struct {
		name    string
		err     error
		by      signer
		code    string
		awsCode string
	}{
		// The customer's key or session signed the call.
		{"unknown key", httpError(403, "InvalidClientTokenId", smithy.FaultClient), signedByCustomer, invalid, "InvalidClientTokenId"},
		{"unknown key, json protocols", httpError(400, "UnrecognizedClientException", smithy.FaultClient), signedByCustomer, invalid, "UnrecognizedClientException"},
		{"wrong secret", httpError(403, "SignatureDoesNotMatch", smithy.FaultClient), signedByCustomer, invalid, "SignatureDoesNotMatch"},
		{"expired", httpError(400, "ExpiredToken", smithy.FaultClient), signedByCustomer, invalid, "ExpiredToken"},
		{"expired, modeled", httpError(400, "ExpiredTokenException", smithy.FaultClient), signedByCustomer, invalid, "ExpiredTokenException"},
		{"auth failure", httpError(401, "AuthFailure", smithy.FaultClient), signedByCustomer, invalid, "AuthFailure"},
		{"access denied", httpError(403, "AccessDenied", smithy.FaultClient), signedByCustomer, invalid, "AccessDenied"},
		{"region disabled", httpError(403, "RegionDisabledException", smithy.FaultClient), signedByCustomer, invalid, "RegionDisabledException"},
		// dFlow's credentials signed the call (AssumeRole).
		{"role refuses", httpError(403, "AccessDenied", smithy.FaultClient), signedByDFlow, invalid, "AccessDenied"},
		{"role refuses, json", httpError(400, "AccessDeniedException", smithy.FaultClient), signedByDFlow, invalid, "AccessDeniedException"},
		{"role's account has the region off", httpError(403, "RegionDisabledException", smithy.FaultClient), signedByDFlow, invalid, "RegionDisabledException"},
		{"dflow key unknown", httpError(403, "InvalidClientTokenId", smithy.FaultClient), signedByDFlow, misconfig, ""},
		{"dflow session expired", httpError(400, "ExpiredToken", smithy.FaultClient), signedByDFlow, misconfig, ""},
		// AWS could not answer, whoever signed.
		{"throttling", httpError(400, "Throttling", smithy.FaultClient), signedByCustomer, unavailable, "Throttling"},
		{"throttling exception", httpError(400, "ThrottlingException", smithy.FaultClient), signedByDFlow, unavailable, "ThrottlingException"},
		{"request limit", httpError(503, "RequestLimitExceeded", smithy.FaultClient), signedByCustomer, unavailable, "RequestLimitExceeded"},
		{"after retries", &retry.MaxAttemptsError{Attempt: 3, Err: httpError(400, "Throttling", smithy.FaultClient)}, signedByCustomer, unavailable, "Throttling"},
		{"5xx", httpError(500, "InternalFailure", smithy.FaultServer), signedByCustomer, unavailable, "InternalFailure"},
		{"503 without a code", &smithy.OperationError{Err: &awshttp.ResponseError{ResponseError: &smithyhttp.ResponseError{Response: &smithyhttp.Response{Response: &http.Response{StatusCode: 503}}, Err: fmt.Errorf("html body")}}}, signedByCustomer, unavailable, ""},
		{"connection refused", &smithy.OperationError{Err: dial}, signedByCustomer, unavailable, ""},
		{"dns", &smithy.OperationError{Err: dns}, signedByDFlow, unavailable, ""},
		{"deadline", &smithy.OperationError{Err: fmt.Errorf("send: %w", context.DeadlineExceeded)}, signedByCustomer, unavailable, ""},
		// Bugs and the unknown: internal.
		{"canceled by the caller", &smithy.OperationError{Err: fmt.Errorf("send: %w", context.Canceled)}, signedByCustomer, other, ""},
		{"incomplete signature", httpError(400, "IncompleteSignature", smithy.FaultClient), signedByCustomer, other, ""},
		{"validation", httpError(400, "ValidationError", smithy.FaultClient), signedByDFlow, other, ""},
		{"not an AWS error", fmt.Errorf("boom"), signedByCustomer, other, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := classify(c.err, c.by, "us-east-1", "AKIA…MPLE")
			e, ok := fault.As(err)
			if !ok {
				t.Fatalf("not a fault: %v", err)
			}
			if e.Code != c.code {
				t.Fatalf("code %s, want %s (%v)", e.Code, c.code, err)
			}
			wantKind := map[string]fault.Kind{invalid: fault.Unprocessable, unavailable: fault.Unavailable, misconfig: fault.Internal, other: fault.Internal}[c.code]
			if e.Kind != wantKind {
				t.Errorf("kind %d, want %d", e.Kind, wantKind)
			}
			if got, _ := e.Extra["awsErrorCode"].(string); got != c.awsCode {
				t.Errorf("awsErrorCode %q, want %q", got, c.awsCode)
			}
			if e.Kind == fault.Unavailable && e.RetryAfter != 2 {
				t.Errorf("retry after %d", e.RetryAfter)
			}
			if e.Detail == "" || strings.Contains(e.Detail, "%!") {
				t.Errorf("detail %q", e.Detail)
			}
			if e.Err != c.err {
				t.Error("the SDK error is not wrapped")
			}
		})
	}
}
