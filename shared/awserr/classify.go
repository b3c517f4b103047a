package awserr

import (
	"context"
	"errors"
	"fmt"

	"github.com/dflow-sh/cloud-accounts/shared/fault"
)

// Codes of the faults for AWS's answers to calls made as a linked account.
const (
	CodeAuthFailed       = "provider_auth_failed"
	CodePermissionDenied = "provider_permission_denied"
	CodeRegionNotEnabled = "region_not_enabled"
	CodeThrottled        = "provider_throttled"
	CodeUnavailable      = "provider_unavailable"
	CodeProviderError    = "provider_error"
)

// authCodes are AWS refusing the credentials themselves.
var authCodes = map[string]bool{
	"AuthFailure": true, "UnrecognizedClientException": true, "InvalidClientTokenId": true,
	"InvalidAccessKeyId": true, "ExpiredToken": true, "ExpiredTokenException": true,
	"SignatureDoesNotMatch": true, "Blocked": true,
}

// deniedCodes are AWS refusing an authenticated principal an action.
var deniedCodes = map[string]bool{"UnauthorizedOperation": true, "AccessDenied": true, "AccessDeniedException": true}

// Classify turns the error of an AWS call made as a linked account into a
// domain fault wrapping it: credentials refused → 422 provider_auth_failed
// (the link is broken); a missing permission → 422
// provider_permission_denied naming the action; region not enabled → 422;
// then what special knows of its own calls (nil to go on); throttling →
// 503 provider_throttled; 5xx and network trouble → 503
// provider_unavailable; anything else is internal. Domain faults and
// cancellation pass through; details never quote AWS's messages.
func Classify(err error, action, region string, special func(code string, err error) *fault.Error) error {
	if err == nil {
		return nil
	}
	if _, ok := fault.As(err); ok || errors.Is(err, context.Canceled) {
		return err
	}
	code := Code(err)
	var e *fault.Error
	switch {
	case authCodes[code]:
		e = fault.Unprocessablef(CodeAuthFailed, "AWS rejected the linked account's credentials in region %s (%s): check the link", region, code)
	case deniedCodes[code]:
		e = fault.Unprocessablef(CodePermissionDenied, "the linked account does not allow dFlow to call %s in region %s: add it to the role or user policy", action, region).With("action", action)
	case code == "OptInRequired":
		e = fault.Unprocessablef(CodeRegionNotEnabled, "region %s is not enabled in the linked account", region)
	}
	if e == nil && special != nil {
		e = special(code, err)
	}
	if e == nil {
		switch {
		case code == "RequestLimitExceeded" || IsThrottle(err):
			e = fault.Unavailablef(5, CodeThrottled, "AWS is throttling the linked account's %s calls in region %s; try again shortly", action, region)
		case IsTransient(err):
			e = fault.Unavailablef(2, CodeUnavailable, "AWS did not answer %s in region %s; try again shortly", action, region)
		default:
			e = &fault.Error{Kind: fault.Internal, Code: CodeProviderError, Detail: fmt.Sprintf("AWS refused %s in region %s", action, region)}
		}
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
