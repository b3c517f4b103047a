package discovery

import (
	"context"
	"errors"
	"fmt"

	"github.com/dflow-sh/cloud-accounts/shared/awserr"

	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/aws/smithy-go"

	"github.com/dflow-sh/cloud-accounts/shared/fault"
)

// Machine codes of the faults discovery returns (besides the validation
// faults of bad input).
const (
	CodeRegionNotEnabled = "region_not_enabled"
	CodeAuthFailed       = "provider_auth_failed"
	CodePermissionDenied = "provider_permission_denied"
	CodeThrottled        = "provider_throttled"
	CodeUnavailable      = "provider_unavailable"
	CodeProviderError    = "provider_error" // internal: AWS refused a request of ours
)

// Retry-After, in seconds, of the Unavailable faults.
const (
	retryAfterThrottled   = 5
	retryAfterUnavailable = 2
)

// AWS error codes with a meaning of their own.
const (
	codeDryRunOperation    = "DryRunOperation"
	codeUnauthorizedAction = "UnauthorizedOperation"
)

// authCodes are AWS's answers when it rejects the credentials themselves
// (unknown, wrong, expired, or the account blocked): the link is broken,
// whatever the call. The caller marks the link unhealthy. (RequestExpired
// is clock skew, which the SDK corrects and retries: not listed.)
var authCodes = map[string]bool{
	"AuthFailure":                 true,
	"UnrecognizedClientException": true,
	"InvalidClientTokenId":        true,
	"InvalidAccessKeyId":          true,
	"ExpiredToken":                true,
	"ExpiredTokenException":       true,
	"SignatureDoesNotMatch":       true,
	"Blocked":                     true,
}

// deniedCodes are AWS refusing an authenticated principal an action.
// EC2 says UnauthorizedOperation; moto (with IAM enforcement), IAM and
// STS say AccessDenied; JSON protocols (SSM) AccessDeniedException.
var deniedCodes = map[string]bool{
	codeUnauthorizedAction:  true,
	"AccessDenied":          true,
	"AccessDeniedException": true,
}

// awsMessage is the AWS error message in err's chain, or err's text.
func awsMessage(err error) string {
	var ae smithy.APIError
	if errors.As(err, &ae) {
		return ae.ErrorMessage()
	}
	return err.Error()
}

// classify turns the error of an AWS call (action, e.g. "ec2:DescribeVpcs",
// made in region; "" for global services) into a domain error that wraps it.
// It is the one place AWS errors get a meaning:
//   - the caller's own faults and context cancellation pass through;
//   - credentials AWS rejects, or that cannot be obtained (the SDK's
//     SigningError: AssumeRole refused while refreshing), → 422
//     provider_auth_failed with awsErrorCode: the link is broken;
//   - OptInRequired → 422 region_not_enabled (the account has not enabled
//     the region, or is not yet subscribed to EC2);
//   - UnauthorizedOperation / AccessDenied → 422 provider_permission_denied
//     naming the action: the link works but lacks a permission;
//   - throttling, after the SDK's retryer gave up → 503 provider_throttled;
//   - 5xx, timeouts, network errors, likewise → 503 provider_unavailable;
//   - anything else (a request AWS found malformed: our bug) → internal.
//
// Details never echo AWS's messages (UnauthorizedOperation carries an
// encoded authorization message): the code and the action say enough.
func classify(err error, action, region string) error {
	if err == nil {
		return nil
	}
	if _, ok := fault.As(err); ok {
		return err
	}
	if errors.Is(err, context.Canceled) {
		return fmt.Errorf("%s: %w", action, err)
	}
	where := ""
	if region != "" {
		where = " in region " + region
	}
	code := awserr.Code(err)
	var signing *v4.SigningError
	var e *fault.Error
	switch {
	case errors.As(err, &signing):
		if awserr.IsThrottle(err) || awserr.IsTransient(err) {
			e = fault.Unavailablef(retryAfterUnavailable, CodeUnavailable, "the linked account's credentials could not be obtained from AWS just now; try again shortly")
		} else {
			e = fault.Unprocessablef(CodeAuthFailed, "the linked account's credentials could not be obtained: check the link (role trust policy and external id, or access key)")
		}
	case authCodes[code]:
		e = fault.Unprocessablef(CodeAuthFailed, "AWS rejected the linked account's credentials%s (%s): check the link", where, code)
	case code == "OptInRequired":
		e = fault.Unprocessablef(CodeRegionNotEnabled, "AWS says the account is not subscribed to EC2%s: enable the region in the account (or finish activating the account) and try again", where)
	case deniedCodes[code]:
		e = fault.Unprocessablef(CodePermissionDenied, "the linked account does not allow dFlow to call %s%s: add it to the role or user policy", action, where).With("action", action)
	case awserr.IsThrottle(err):
		e = fault.Unavailablef(retryAfterThrottled, CodeThrottled, "AWS is throttling the linked account's %s calls%s; try again shortly", action, where)
	case awserr.IsTransient(err):
		e = fault.Unavailablef(retryAfterUnavailable, CodeUnavailable, "AWS did not answer %s%s; try again shortly", action, where)
	default:
		e = &fault.Error{Kind: fault.Internal, Code: CodeProviderError, Detail: fmt.Sprintf("AWS refused %s%s", action, where)}
	}
	if e.Kind != fault.Internal {
		if code != "" {
			e = e.With("awsErrorCode", code)
		}
		if region != "" {
			e = e.With("region", region)
		}
	}
	e.Err = fmt.Errorf("%s%s: %w", action, where, err)
	return e
}

// clientError wraps the failure of Clients to produce a client: its faults
// pass through (credentials the caller could not obtain), anything else is
// internal.
func clientError(err error, service, region string) error {
	if _, ok := fault.As(err); ok {
		return err
	}
	return fmt.Errorf("discovery: %s client for %s: %w", service, region, err)
}
