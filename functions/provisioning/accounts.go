package main

import (
	"context"

	"github.com/aws/aws-sdk-go-v2/service/ec2"

	"github.com/dflow-sh/cloud-accounts/shared/access"
	"github.com/dflow-sh/cloud-accounts/shared/discovery"
	"github.com/dflow-sh/cloud-accounts/shared/groups"
	"github.com/dflow-sh/cloud-accounts/shared/keypairs"
	"github.com/dflow-sh/cloud-accounts/shared/links"
	"github.com/dflow-sh/cloud-accounts/shared/nodes"
	"github.com/dflow-sh/cloud-accounts/shared/partition"
)

// accounts resolves an organisation's links and acts as them through the
// broker's cached credentials and clients.
type accounts struct {
	links  *links.Service
	broker *access.Broker
}

func (a *accounts) Link(ctx context.Context, orgID, accountID string) (links.Link, error) {
	l, _, err := a.links.Resolve(ctx, orgID, accountID)
	return l, err
}

func (a *accounts) ec2(ctx context.Context, l links.Link, region string) (*ec2.Client, error) {
	_, rec, err := a.links.Resolve(ctx, l.OrgID, l.ID)
	if err != nil {
		return nil, err
	}
	return a.broker.EC2(ctx, l, rec, region, access.RequestID(ctx))
}

// images lists official images through the link, for node launches.
func (a *accounts) images(d *discovery.Service) nodes.ImagesFunc {
	return func(ctx context.Context, l links.Link, region, os, arch string) ([]discovery.Image, error) {
		_, rec, err := a.links.Resolve(ctx, l.OrgID, l.ID)
		if err != nil {
			return nil, err
		}
		p, _ := partition.ByID(l.Partition)
		t := discovery.Target{LinkID: l.ID, Partition: p, DefaultRegion: l.DefaultRegion, AccessKeyUser: l.Credentials.Type == links.TypeAccessKey}
		list, err := d.Images(ctx, t, &linkClients{a: a, link: l, rec: rec}, region, os, arch, false)
		return list.Items, err
	}
}

// linkClients gives discovery the link's clients.
type linkClients struct {
	a    *accounts
	link links.Link
	rec  links.Record
}

func (c *linkClients) EC2(ctx context.Context, region string) (discovery.EC2API, error) {
	return c.a.broker.EC2(ctx, c.link, c.rec, region, access.RequestID(ctx))
}

func (c *linkClients) SSM(ctx context.Context, region string) (discovery.SSMAPI, error) {
	return c.a.broker.SSM(ctx, c.link, c.rec, region, access.RequestID(ctx))
}

// Each use-case declares the EC2 methods it needs; these say so in its terms.
type keyAccounts struct{ *accounts }

func (k keyAccounts) EC2(ctx context.Context, l links.Link, region string) (keypairs.EC2API, error) {
	return k.ec2(ctx, l, region)
}

type groupAccounts struct{ *accounts }

func (g groupAccounts) EC2(ctx context.Context, l links.Link, region string) (groups.EC2API, error) {
	return g.ec2(ctx, l, region)
}

type nodeAccounts struct{ *accounts }

func (n nodeAccounts) EC2(ctx context.Context, l links.Link, region string) (nodes.EC2API, error) {
	return n.ec2(ctx, l, region)
}

// groupReader reads security group records.
type groupReader interface {
	GetSecurityGroup(ctx context.Context, orgID, id string) (groups.Group, error)
}

// groupRefs resolves dFlow security group ids for a launch.
type groupRefs struct{ store groupReader }

func (g groupRefs) Resolve(ctx context.Context, orgID string, ids []string) ([]nodes.GroupRef, error) {
	out := make([]nodes.GroupRef, 0, len(ids))
	for _, id := range ids {
		sg, err := g.store.GetSecurityGroup(ctx, orgID, id)
		if err != nil {
			return nil, err
		}
		out = append(out, nodes.GroupRef{ID: sg.ID, AccountID: sg.AccountID, Region: sg.Region, VPCID: sg.VPCID, AWSGroupID: sg.AWSGroupID})
	}
	return out, nil
}
