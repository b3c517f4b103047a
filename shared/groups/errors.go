package groups

import (
	"context"
	"errors"
	"fmt"

	"github.com/dflow-sh/cloud-accounts/shared/awserr"

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
	CodeAuthFailed       = awserr.CodeAuthFailed
	CodePermissionDenied = awserr.CodePermissionDenied
	CodeRegionNotEnabled = awserr.CodeRegionNotEnabled
	CodeThrottled        = awserr.CodeThrottled
	CodeUnavailable      = awserr.CodeUnavailable
	codeProviderError    = awserr.CodeProviderError
	codeInternal         = "internal_error"
)

// Errors the store and the service return.
var (
	ErrNotFound  = fault.NotFoundf(CodeNotFound, "no such security group")
	ErrNameTaken = fault.Conflictf(CodeNameTaken, "a security group with this name already exists in this account, region and VPC")
)

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
	return awserr.Classify(err, action, region, func(code string, err error) *fault.Error {
		switch {
		case code == "DependencyViolation":
			return fault.Conflictf(CodeInUse, "AWS says the security group is still in use (by network interfaces or another group's rules)")
		case rejectedCodes[code]:
			var ae smithy.APIError
			errors.As(err, &ae)
			return fault.Unprocessablef(CodeRulesRejected, "EC2 refused %s: %s", action, ae.ErrorMessage())
		}
		return nil
	})
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
