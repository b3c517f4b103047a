// DiscoveryFunction reads what a linked AWS account can provision into.
package main

import (
	"github.com/dflow-sh/cloud-accounts/shared/access"
	"github.com/dflow-sh/cloud-accounts/shared/awsauth"
	"github.com/dflow-sh/cloud-accounts/shared/discovery"
	"github.com/dflow-sh/cloud-accounts/shared/dynamo"
	"github.com/dflow-sh/cloud-accounts/shared/links"
	"github.com/dflow-sh/cloud-accounts/shared/platform"
	"github.com/dflow-sh/cloud-accounts/shared/vault"
)

func main() {
	platform.Serve(func(p *platform.Platform) (platform.Router, error) { return newHandlers(p) })
}

// newHandlers builds the clients and caches once, at cold start.
func newHandlers(p *platform.Platform, opts ...discovery.Option) (*handlers, error) {
	v, err := vault.New(p.AWS)
	if err != nil {
		return nil, err
	}
	checker, err := awsauth.New(p.AWS)
	if err != nil {
		return nil, err
	}
	// Discovery reads links; it never changes their credentials.
	linkSvc := links.NewService(p.Store, nil, nil, links.Config{SecretPrefix: p.Config.SecretPrefix}, p.Logger, p.Now)
	opts = append([]discovery.Option{discovery.WithLogger(p.Logger), discovery.WithNow(p.Now)}, opts...)
	return &handlers{
		links:     linkSvc,
		broker:    access.New(p.AWS, v, checker, linkSvc),
		discovery: discovery.NewService(dynamo.NewCache(p.Store, p.Now), opts...),
	}, nil
}
