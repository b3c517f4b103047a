package keypairs

import (
	"context"
	"errors"
	"fmt"
	"net"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/smithy-go"

	"github.com/dflow-sh/cloud-accounts/shared/fault"
)

// Codes of the faults for AWS's answers; the first five are the ones
// shared/discovery uses for the same answers.
const (
	CodeAuthFailed       = "provider_auth_failed"
	CodePermissionDenied = "provider_permission_denied"
	CodeRegionNotEnabled = "region_not_enabled"
	CodeThrottled        = "provider_throttled"
	CodeUnavailable      = "provider_unavailable"
	CodeKeyRejected      = "ssh_key_rejected_by_aws"
	CodeKeyPairLimit     = "key_pair_limit_exceeded"
	codeProviderError    = "provider_error"
)

var authCodes = map[string]bool{
	"AuthFailure": true, "UnrecognizedClientException": true, "InvalidClientTokenId": true,
	"InvalidAccessKeyId": true, "ExpiredToken": true, "ExpiredTokenException": true,
	"SignatureDoesNotMatch": true, "Blocked": true,
}

var deniedCodes = map[string]bool{"UnauthorizedOperation": true, "AccessDenied": true, "AccessDeniedException": true}

var (
	throttles  = retry.IsErrorThrottles(retry.DefaultThrottles)
	retryables = retry.IsErrorRetryables(retry.DefaultRetryables)
)

func awsCode(err error) string {
	var ae smithy.APIError
	if errors.As(err, &ae) {
		return ae.ErrorCode()
	}
	return ""
}

// classify turns the error of an EC2 call into a domain fault wrapping it:
// credentials refused → 422 provider_auth_failed (the link is broken); a
// missing permission → 422 provider_permission_denied naming the action;
// region not enabled → 422; key material refused → 422
// ssh_key_rejected_by_aws; key pair quota → 422; throttling
// (RequestLimitExceeded) → 503 provider_throttled; 5xx and network trouble →
// 503 provider_unavailable; anything else is internal. Details never quote
// AWS's messages.
func classify(err error, action, region string) error {
	if err == nil {
		return nil
	}
	if _, ok := fault.As(err); ok || errors.Is(err, context.Canceled) {
		return err
	}
	code := awsCode(err)
	var e *fault.Error
	switch {
	case authCodes[code]:
		e = fault.Unprocessablef(CodeAuthFailed, "AWS rejected the linked account's credentials in region %s (%s): check the link", region, code)
	case deniedCodes[code]:
		e = fault.Unprocessablef(CodePermissionDenied, "the linked account does not allow dFlow to call %s in region %s: add it to the role or user policy", action, region).With("action", action)
	case code == "OptInRequired":
		e = fault.Unprocessablef(CodeRegionNotEnabled, "region %s is not enabled in the linked account", region)
	case code == "InvalidKeyPair.Format" || code == "InvalidKey.Format":
		e = fault.Unprocessablef(CodeKeyRejected, "EC2 refused the key's material in region %s", region)
	case code == "KeyPairLimitExceeded" || code == "ResourceLimitExceeded":
		e = fault.Unprocessablef(CodeKeyPairLimit, "the linked account has reached its key pair quota in region %s", region)
	case code == "RequestLimitExceeded" || throttles.IsErrorThrottle(err) == aws.TrueTernary:
		e = fault.Unavailablef(5, CodeThrottled, "AWS is throttling the linked account's %s calls in region %s; try again shortly", action, region)
	case transient(err):
		e = fault.Unavailablef(2, CodeUnavailable, "AWS did not answer %s in region %s; try again shortly", action, region)
	default:
		e = &fault.Error{Kind: fault.Internal, Code: codeProviderError, Detail: fmt.Sprintf("AWS refused %s in region %s", action, region)}
	}
	if e.Kind != fault.Internal {
		if code != "" {
			e = e.With("awsErrorCode", code)
		}
		e = e.With("region", region)
	}
	e.Err = fmt.Errorf("%s in %s: %w", action, region, err)
	return e
}

func transient(err error) bool {
	if errors.Is(err, context.DeadlineExceeded) {
		return true
	}
	var ae smithy.APIError
	if errors.As(err, &ae) && ae.ErrorFault() == smithy.FaultServer {
		return true
	}
	var opErr *net.OpError
	var dnsErr *net.DNSError
	if errors.As(err, &opErr) || errors.As(err, &dnsErr) {
		return true
	}
	return retryables.IsErrorRetryable(err) == aws.TrueTernary
}
