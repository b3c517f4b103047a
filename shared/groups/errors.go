package groups

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

// Machine codes of the faults this package returns (besides
// validation_failed, version_mismatch, concurrent_update and the link's
// account_not_found).
const (
	CodeNotFound     = "security_group_not_found"
	CodeNameTaken    = "security_group_name_taken"
	CodeInUse        = "group_in_use"
	CodeNoDefaultVPC = "no_default_vpc"
	CodeVPCNotFound  = "vpc_not_found"
	// CodeRulesRejected: EC2 refused the rules (a referenced group not in
	// the VPC, the rules quota…); the detail carries EC2's message.
	CodeRulesRejected = "rules_rejected"
	// CodeAWSGroupMissing / CodeNotCreated explain a null drift.
	CodeAWSGroupMissing = "aws_group_missing"
	CodeNotCreated      = "aws_group_not_created"
	// CodeConcurrent is the store's code for a version that moved.
	CodeConcurrent = "concurrent_update"

	// The codes shared/discovery uses for the same AWS answers.
	CodeAuthFailed       = "provider_auth_failed"
	CodePermissionDenied = "provider_permission_denied"
	CodeRegionNotEnabled = "region_not_enabled"
	CodeThrottled        = "provider_throttled"
	CodeUnavailable      = "provider_unavailable"
	codeProviderError    = "provider_error"
	codeInternal         = "internal_error"
)

// Errors the store and the service return.
var (
	ErrNotFound  = fault.NotFoundf(CodeNotFound, "no such security group")
	ErrNameTaken = fault.Conflictf(CodeNameTaken, "a security group with this name already exists in this account, region and VPC")
)

var authCodes = map[string]bool{
	"AuthFailure": true, "UnrecognizedClientException": true, "InvalidClientTokenId": true,
	"InvalidAccessKeyId": true, "ExpiredToken": true, "ExpiredTokenException": true,
	"SignatureDoesNotMatch": true, "Blocked": true,
}

var deniedCodes = map[string]bool{"UnauthorizedOperation": true, "AccessDenied": true, "AccessDeniedException": true}

// rejectedCodes are EC2 refusing rules it was sent; their messages name the
// rule at fault (a group id, a port) and hold nothing secret.
var rejectedCodes = map[string]bool{
	"RulesPerSecurityGroupLimitExceeded": true,
	"InvalidPermission.Malformed":        true,
	"InvalidParameterValue":              true,
	"InvalidGroup.NotFound":              true,
	"InvalidGroupId.Malformed":           true,
	"SecurityGroupLimitExceeded":         true,
}

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
//   - credentials refused (AuthFailure…) → 422 provider_auth_failed;
//   - UnauthorizedOperation / AccessDenied → 422 provider_permission_denied
//     naming the action;
//   - OptInRequired → 422 region_not_enabled;
//   - DependencyViolation → 409 group_in_use (AWS: network interfaces use it);
//   - rules EC2 refuses → 422 rules_rejected with EC2's message;
//   - RequestLimitExceeded and other throttling → 503 provider_throttled;
//   - 5xx, timeouts, network errors → 503 provider_unavailable;
//   - anything else → internal.
//
// The caller's own faults and cancellation pass through.
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
	case code == "DependencyViolation":
		e = fault.Conflictf(CodeInUse, "AWS says the security group is still in use (by network interfaces or another group's rules)")
	case rejectedCodes[code]:
		var ae smithy.APIError
		errors.As(err, &ae)
		e = fault.Unprocessablef(CodeRulesRejected, "EC2 refused %s: %s", action, ae.ErrorMessage())
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

// lastError is what a group shows of err: a fault's code and detail, or a
// generic line for anything internal (whose detail is never shown).
func lastError(err error) (code, message string) {
	if fe, ok := fault.As(err); ok && fe.Kind != fault.Internal {
		return fe.Code, fe.Detail
	}
	return codeInternal, "an internal error stopped the change; sync the group to try again"
}

func clientError(err error, region string) error {
	if _, ok := fault.As(err); ok || errors.Is(err, context.Canceled) {
		return err
	}
	return fmt.Errorf("ec2 client for %s: %w", region, err)
}
