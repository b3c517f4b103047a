package vault

import (
	"errors"

	"github.com/dflow-sh/cloud-accounts/shared/awserr"

	"github.com/aws/smithy-go"

	"github.com/dflow-sh/cloud-accounts/shared/fault"
)

// op is the kind of call an error came from: the same AWS code means
// different things to a create and to a put.
type op int

const (
	opRead op = iota
	opCreate
	opPut
	opWrite
)

// retryAfter is the Retry-After, in seconds, of secrets_unavailable.
const retryAfter = 1

// translate turns an SDK error into a domain error wrapping it. Secrets
// Manager errors never quote secret values, so the cause is kept for logs.
func translate(err error, o op) error {
	code := ""
	var ae smithy.APIError
	if errors.As(err, &ae) {
		code = ae.ErrorCode()
	}
	var e *fault.Error
	switch {
	case code == "ResourceNotFoundException":
		e = fault.NotFoundf("secret_not_found", "the secret does not exist")
	case code == "ResourceExistsException" && o == opCreate:
		e = fault.Conflictf("secret_exists", "a secret with this name already exists")
	case code == "ResourceExistsException":
		e = fault.Conflictf("secret_version_exists", "this request token already made a version with another value")
	case code == "InvalidRequestException":
		e = fault.Conflictf("secret_state_conflict", "the secret's state does not allow this operation (it may be scheduled for deletion)")
	case code == "AccessDeniedException" || code == "AccessDenied":
		// Our own IAM policy is wrong: an operator must fix it, a client can't.
		e = &fault.Error{Kind: fault.Internal, Code: "secrets_access_denied", Detail: "the service may not use this secret"}
	case code == "InternalServiceError" || awserr.IsTransient(err):
		e = fault.Unavailablef(retryAfter, "secrets_unavailable", "the secret store is unavailable; try again")
	default:
		e = &fault.Error{Kind: fault.Internal, Code: "secrets_error", Detail: "the secret store refused the request"}
	}
	e.Err = err
	return e
}
