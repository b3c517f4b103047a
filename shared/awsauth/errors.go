package awsauth

import (
	"errors"

	"github.com/dflow-sh/cloud-accounts/shared/awserr"

	"github.com/aws/smithy-go"

	"github.com/dflow-sh/cloud-accounts/shared/fault"
)

// signer says whose credentials signed the failed call: the same AWS code
// blames the customer's credentials when they signed it (GetCallerIdentity
// with their key or session) and dFlow's configuration when dFlow's did
// (AssumeRole).
type signer int

const (
	signedByCustomer signer = iota
	signedByDFlow
)

// retryAfter is the Retry-After, in seconds, of provider_unavailable.
const retryAfter = 2

// Codes with which AWS rejects the credentials that signed a request, and
// what to tell the customer: %[1]s is " <masked key id>" or empty, %[2]s the
// region (explicit indexes, so a message may use either).
var rejectedCredentials = map[string]string{
	"InvalidClientTokenId":        "AWS does not recognise the access key%[1]s in region %[2]s: check that it exists, is active, and belongs to that region's partition (GovCloud and China keys need a region of their own)",
	"UnrecognizedClientException": "AWS does not recognise the access key%[1]s in region %[2]s: check that it exists, is active, and belongs to that region's partition (GovCloud and China keys need a region of their own)",
	"InvalidAccessKeyId":          "AWS does not recognise the access key%[1]s in region %[2]s: check that it exists, is active, and belongs to that region's partition (GovCloud and China keys need a region of their own)",
	"SignatureDoesNotMatch":       "the secret access key does not match the access key%[1]s; paste the secret again",
	"ExpiredToken":                "the credentials%[1]s have expired",
	"ExpiredTokenException":       "the credentials%[1]s have expired",
	"AuthFailure":                 "AWS could not validate the credentials%[1]s",
	"AccessDenied":                "AWS denied the request made with the credentials%[1]s",
	"AccessDeniedException":       "AWS denied the request made with the credentials%[1]s",
	"RegionDisabledException":     "STS is not activated in region %[2]s for this account: activate the region in IAM account settings or check in another region",
}

// classify turns an STS error into a domain error wrapping it:
// "credentials_invalid" (Unprocessable) when AWS rejected the customer's
// credentials or role, "provider_unavailable" (Unavailable) when AWS could
// not answer, an internal error otherwise (including dFlow's own
// credentials being rejected). Details are safe to show: a masked key id
// at most.
func classify(err error, by signer, region, maskedKey string) error {
	code := ""
	var ae smithy.APIError
	if errors.As(err, &ae) {
		code = ae.ErrorCode()
	}
	var e *fault.Error
	switch {
	case code != "" && by == signedByDFlow && isAccessDeniedCode(code):
		e = fault.Unprocessablef("credentials_invalid", "the role refused to be assumed by dFlow: check that it exists and that its trust policy allows dFlow's principal with this organisation's external ID")
	case code == "RegionDisabledException":
		// On AssumeRole too it is the customer's account (the role's) that
		// has the region off.
		e = fault.Unprocessablef("credentials_invalid", rejectedCredentials[code], "", region)
	case code != "" && by == signedByCustomer && rejectedCredentials[code] != "":
		key := ""
		if maskedKey != "" {
			key = " " + maskedKey
		}
		e = fault.Unprocessablef("credentials_invalid", rejectedCredentials[code], key, region)
	case awserr.IsTransient(err):
		e = fault.Unavailablef(retryAfter, "provider_unavailable", "AWS STS in region %s did not answer; try again shortly", region)
	case code != "" && by == signedByDFlow && rejectedCredentials[code] != "":
		// dFlow's own credentials were rejected: an operator must fix them.
		e = &fault.Error{Kind: fault.Internal, Code: "provider_auth_misconfigured", Detail: "dFlow's own AWS credentials were rejected"}
	default:
		e = &fault.Error{Kind: fault.Internal, Code: "provider_error", Detail: "STS refused the request"}
	}
	if code != "" && e.Kind != fault.Internal {
		e = e.With("awsErrorCode", code)
	}
	e.Err = err
	return e
}

func isAccessDeniedCode(code string) bool {
	return code == "AccessDenied" || code == "AccessDeniedException"
}

// isAccessDenied reports AWS refusing an authenticated principal.
func isAccessDenied(err error) bool {
	var ae smithy.APIError
	return errors.As(err, &ae) && isAccessDeniedCode(ae.ErrorCode())
}
