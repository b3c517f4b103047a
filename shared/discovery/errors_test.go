package discovery

import (
	"context"
	"errors"
	"net"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws/ratelimit"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/aws/smithy-go"

	"github.com/dflow-sh/cloud-accounts/shared/fault"
)

func TestClassify(t *testing.T) {
	op := func(err error) error {
		// How the SDK hands errors back: an OperationError around the
		// (retried) cause.
		return &smithy.OperationError{ServiceID: "EC2", OperationName: "DescribeVpcs", Err: err}
	}
	passThrough := fault.Unprocessablef("credentials_invalid", "from the caller")
	tests := []struct {
		name       string
		err        error
		kind       fault.Kind
		code       string
		awsCode    string
		retryAfter int
		action     bool
	}{
		{"AuthFailure", op(apiErr("AuthFailure")), fault.Unprocessable, CodeAuthFailed, "AuthFailure", 0, false},
		{"UnrecognizedClientException", op(apiErr("UnrecognizedClientException")), fault.Unprocessable, CodeAuthFailed, "UnrecognizedClientException", 0, false},
		{"InvalidClientTokenId", op(apiErr("InvalidClientTokenId")), fault.Unprocessable, CodeAuthFailed, "InvalidClientTokenId", 0, false},
		{"ExpiredToken", op(apiErr("ExpiredToken")), fault.Unprocessable, CodeAuthFailed, "ExpiredToken", 0, false},
		{"SignatureDoesNotMatch", op(apiErr("SignatureDoesNotMatch")), fault.Unprocessable, CodeAuthFailed, "SignatureDoesNotMatch", 0, false},
		{"UnauthorizedOperation", op(apiErr("UnauthorizedOperation")), fault.Unprocessable, CodePermissionDenied, "UnauthorizedOperation", 0, true},
		{"AccessDenied (moto, IAM)", op(apiErr("AccessDenied")), fault.Unprocessable, CodePermissionDenied, "AccessDenied", 0, true},
		{"AccessDeniedException (SSM)", op(apiErr("AccessDeniedException")), fault.Unprocessable, CodePermissionDenied, "AccessDeniedException", 0, true},
		{"OptInRequired", op(apiErr("OptInRequired")), fault.Unprocessable, CodeRegionNotEnabled, "OptInRequired", 0, false},
		{"RequestLimitExceeded", op(&retry.MaxAttemptsError{Attempt: 3, Err: apiErr("RequestLimitExceeded")}), fault.Unavailable, CodeThrottled, "RequestLimitExceeded", retryAfterThrottled, false},
		{"Throttling", op(apiErr("Throttling")), fault.Unavailable, CodeThrottled, "Throttling", retryAfterThrottled, false},
		{"retry quota exhausted", op(errors.Join(apiErr("ThrottlingException"), ratelimit.QuotaExceededError{Available: 0, Requested: 5})), fault.Unavailable, CodeThrottled, "ThrottlingException", retryAfterThrottled, false},
		{"5xx", op(&smithy.GenericAPIError{Code: "InternalError", Fault: smithy.FaultServer}), fault.Unavailable, CodeUnavailable, "InternalError", retryAfterUnavailable, false},
		{"connection refused", op(&net.OpError{Op: "dial", Err: errors.New("connection refused")}), fault.Unavailable, CodeUnavailable, "", retryAfterUnavailable, false},
		{"deadline", op(context.DeadlineExceeded), fault.Unavailable, CodeUnavailable, "", retryAfterUnavailable, false},
		// AssumeRole refused while the SDK refreshed the credentials: the
		// link is broken, not a permission of EC2 missing.
		{"credentials refresh refused", op(&v4.SigningError{Err: apiErr("AccessDenied")}), fault.Unprocessable, CodeAuthFailed, "AccessDenied", 0, false},
		{"credentials refresh throttled", op(&v4.SigningError{Err: apiErr("Throttling")}), fault.Unavailable, CodeUnavailable, "Throttling", retryAfterUnavailable, false},
		{"our malformed request", op(apiErr("InvalidParameterValue")), fault.Internal, CodeProviderError, "", 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := classify(tt.err, "ec2:DescribeVpcs", "eu-west-1")
			e := wantFault(t, err, tt.kind, tt.code)
			if got, _ := e.Extra["awsErrorCode"].(string); got != tt.awsCode {
				t.Errorf("awsErrorCode %q, want %q", got, tt.awsCode)
			}
			if e.RetryAfter != tt.retryAfter {
				t.Errorf("RetryAfter %d, want %d", e.RetryAfter, tt.retryAfter)
			}
			if got, _ := e.Extra["action"].(string); tt.action && got != "ec2:DescribeVpcs" {
				t.Errorf("action %q", got)
			}
			if e.Kind != fault.Internal && e.Extra["region"] != "eu-west-1" {
				t.Errorf("region %v", e.Extra["region"])
			}
			if !errors.Is(err, tt.err) {
				t.Error("the fault does not wrap the AWS error")
			}
		})
	}

	t.Run("nil", func(t *testing.T) {
		if classify(nil, "ec2:DescribeVpcs", "") != nil {
			t.Fatal("nil error classified")
		}
	})
	t.Run("faults pass through", func(t *testing.T) {
		if err := classify(passThrough, "ec2:DescribeVpcs", "eu-west-1"); err != passThrough {
			t.Fatalf("got %v", err)
		}
	})
	t.Run("cancellation stays cancellation", func(t *testing.T) {
		err := classify(op(context.Canceled), "ec2:DescribeVpcs", "eu-west-1")
		if _, ok := fault.As(err); ok || !errors.Is(err, context.Canceled) {
			t.Fatalf("got %v", err)
		}
	})
	t.Run("details never echo AWS messages", func(t *testing.T) {
		secret := &smithy.GenericAPIError{Code: "UnauthorizedOperation", Message: "Encoded authorization failure message: SECRET"}
		e, _ := fault.As(classify(secret, "ec2:RunInstances", "us-east-1"))
		if e == nil || strings.Contains(e.Detail, "SECRET") {
			t.Fatalf("detail %q", e.Detail)
		}
	})
}
