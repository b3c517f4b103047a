package awsauth

import (
	"context"

	"github.com/dflow-sh/cloud-accounts/shared/links"
)

// LinkVerifier is the checker as the linking use-cases ask for it.
type LinkVerifier struct{ Checker *Checker }

var _ links.Verifier = LinkVerifier{}

// CheckAccessKey asks STS, in region's partition, who the key is.
func (v LinkVerifier) CheckAccessKey(ctx context.Context, region, id, secret string) (links.Identity, error) {
	who, err := v.Checker.CheckAccessKey(ctx, AccessKey{ID: id, Secret: secret}, InRegion(region))
	return links.Identity{AccountID: who.AccountID, ARN: who.ARN}, err
}

// CheckRole assumes the role with and without the external id; the session
// name carries the request id.
func (v LinkVerifier) CheckRole(ctx context.Context, region, roleARN, externalID, requestID string) (links.Identity, bool, error) {
	rc, err := v.Checker.CheckRole(ctx, roleARN, externalID, SessionName("dflow", requestID), InRegion(region))
	return links.Identity{AccountID: rc.Identity.AccountID, ARN: rc.Identity.ARN}, rc.ExternalIDRequired, err
}
