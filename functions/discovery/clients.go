package main

import (
	"context"

	"github.com/dflow-sh/cloud-accounts/shared/access"
	"github.com/dflow-sh/cloud-accounts/shared/discovery"
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
	return c.broker.EC2(ctx, c.link, c.rec, region, c.requestID)
}

func (c *clients) SSM(ctx context.Context, region string) (discovery.SSMAPI, error) {
	return c.broker.SSM(ctx, c.link, c.rec, region, c.requestID)
}

func (c *clients) IAM(ctx context.Context) (discovery.IAMAPI, error) {
	return c.broker.IAM(ctx, c.link, c.rec, c.requestID)
}
