package main

import (
	"context"

	"github.com/dflow-sh/cloud-accounts/shared/access"
	"github.com/dflow-sh/cloud-accounts/shared/discovery"
	"github.com/dflow-sh/cloud-accounts/shared/fault"
	"github.com/dflow-sh/cloud-accounts/shared/links"
)

// clients adapts the broker to what discovery asks, for one request.
type clients struct {
	broker    *access.Broker
	link      links.Link
	rec       links.Record
	requestID string
}

var (
	_ discovery.Clients    = (*clients)(nil)
	_ discovery.IAMClients = (*clients)(nil)
)

func (c *clients) EC2(ctx context.Context, region string) (discovery.EC2API, error) {
	client, err := c.broker.EC2(ctx, c.link, c.rec, region, c.requestID)
	if err != nil {
		return nil, authFailed(err)
	}
	return client, nil
}

func (c *clients) SSM(ctx context.Context, region string) (discovery.SSMAPI, error) {
	client, err := c.broker.SSM(ctx, c.link, c.rec, region, c.requestID)
	if err != nil {
		return nil, authFailed(err)
	}
	return client, nil
}

func (c *clients) IAM(ctx context.Context) (discovery.IAMAPI, error) {
	client, err := c.broker.IAM(ctx, c.link, c.rec, c.requestID)
	if err != nil {
		return nil, authFailed(err)
	}
	return client, nil
}

// authFailed names a refusal of the link's credentials (e.g. its role can
// no longer be assumed) the way discovery does, so fan-outs (inventory,
// permission check) see the link as rejected rather than each region failing.
func authFailed(err error) error {
	e, ok := fault.As(err)
	if !ok || e.Code != "credentials_invalid" {
		return err
	}
	out := fault.Unprocessablef("provider_auth_failed", "%s", e.Detail)
	out.Extra = e.Extra
	out.Err = err
	return out
}
