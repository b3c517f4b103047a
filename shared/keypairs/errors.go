package keypairs

import (
	"github.com/dflow-sh/cloud-accounts/shared/awserr"

	"github.com/dflow-sh/cloud-accounts/shared/fault"
)

// Codes of the faults for AWS's answers; the first five are the ones
// shared/discovery uses for the same answers.
const (
	CodeAuthFailed       = awserr.CodeAuthFailed
	CodePermissionDenied = awserr.CodePermissionDenied
	CodeRegionNotEnabled = awserr.CodeRegionNotEnabled
	CodeThrottled        = awserr.CodeThrottled
	CodeUnavailable      = awserr.CodeUnavailable
	CodeKeyRejected      = "ssh_key_rejected_by_aws"
	CodeKeyPairLimit     = "key_pair_limit_exceeded"
	codeProviderError    = awserr.CodeProviderError
)

// classify turns the error of an EC2 call into a domain fault wrapping it:
// credentials refused → 422 provider_auth_failed (the link is broken); a
// missing permission → 422 provider_permission_denied naming the action;
// region not enabled → 422; key material refused → 422
// ssh_key_rejected_by_aws; key pair quota → 422; throttling
// (RequestLimitExceeded) → 503 provider_throttled; 5xx and network trouble →
// 503 provider_unavailable; anything else is internal. Details never quote
// AWS's messages.
func classify(err error, action, region string) error {
	return awserr.Classify(err, action, region, func(code string, err error) *fault.Error {
		switch code {
		case "InvalidKeyPair.Format", "InvalidKey.Format":
			return fault.Unprocessablef(CodeKeyRejected, "EC2 refused the key's material in region %s", region)
		case "KeyPairLimitExceeded", "ResourceLimitExceeded":
			return fault.Unprocessablef(CodeKeyPairLimit, "the linked account has reached its key pair quota in region %s", region)
		}
		return nil
	})
}
