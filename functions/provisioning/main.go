// ProvisioningFunction manages worker nodes on EC2 with their SSH keys and
// security groups, and reconciles nodes with EC2 on a schedule.
package main

import (
	"github.com/dflow-sh/cloud-accounts/shared/access"
	"github.com/dflow-sh/cloud-accounts/shared/awsauth"
	"github.com/dflow-sh/cloud-accounts/shared/discovery"
	"github.com/dflow-sh/cloud-accounts/shared/dynamo"
	"github.com/dflow-sh/cloud-accounts/shared/groups"
	"github.com/dflow-sh/cloud-accounts/shared/keypairs"
	"github.com/dflow-sh/cloud-accounts/shared/links"
	"github.com/dflow-sh/cloud-accounts/shared/nodes"
	"github.com/dflow-sh/cloud-accounts/shared/platform"
	"github.com/dflow-sh/cloud-accounts/shared/vault"
)

func main() {
	platform.Serve(func(p *platform.Platform) (platform.Router, error) { return newHandlers(p) })
}

// newHandlers builds the clients and use-cases once, at cold start.
func newHandlers(p *platform.Platform) (*handlers, error) {
	v, err := vault.New(p.AWS)
	if err != nil {
		return nil, err
	}
	checker, err := awsauth.New(p.AWS)
	if err != nil {
		return nil, err
	}
	// Provisioning reads links; it never changes their credentials.
	linkSvc := links.NewService(p.Store, nil, nil, links.Config{SecretPrefix: p.Config.SecretPrefix}, p.Logger, p.Now)
	acc := &accounts{links: linkSvc, broker: access.New(p.AWS, v, checker, linkSvc)}
	disc := discovery.NewService(dynamo.NewCache(p.Store, p.Now), discovery.WithLogger(p.Logger), discovery.WithNow(p.Now))
	keySvc := keypairs.NewService(p.Store, keyAccounts{acc}, p.Logger, p.Now)
	groupSvc := groups.NewService(p.Store, groupAccounts{acc}, p.Logger, p.Now)
	nodeSvc := nodes.NewService(nodes.Deps{
		Store: p.Store, Accounts: nodeAccounts{acc}, Keys: keySvc,
		Groups: groupRefs{p.Store}, Images: acc.images(disc), Logger: p.Logger, Now: p.Now,
	})
	return &handlers{keys: keySvc, groups: groupSvc, nodes: nodeSvc}, nil
}
