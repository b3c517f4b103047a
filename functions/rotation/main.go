// RotationFunction rotates linked accounts' access keys: on demand (the
// API, including emergency rotation after a leak), on EventBridge Scheduler
// schedules (the rotation and health sweeps), and as a Secrets Manager
// rotation function for operators who turn native rotation on.
package main

import (
	"github.com/dflow-sh/cloud-accounts/shared/awsauth"
	"github.com/dflow-sh/cloud-accounts/shared/health"
	"github.com/dflow-sh/cloud-accounts/shared/links"
	"github.com/dflow-sh/cloud-accounts/shared/platform"
	"github.com/dflow-sh/cloud-accounts/shared/rotation"
	"github.com/dflow-sh/cloud-accounts/shared/rotation/iamkeys"
	"github.com/dflow-sh/cloud-accounts/shared/rotation/pendinglabel"
	"github.com/dflow-sh/cloud-accounts/shared/vault"
)

func main() {
	platform.Serve(func(p *platform.Platform) (platform.Router, error) { return newHandlers(p) })
}

var _ rotation.Vault = (*vault.Vault)(nil)

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
	verifier := awsauth.LinkVerifier{Checker: checker}
	linkSvc := links.NewService(p.Store, v, verifier, links.Config{SecretPrefix: p.Config.SecretPrefix}, p.Logger, p.Now)
	rot := rotation.NewService(rotation.Deps{
		Store: p.Store, Vault: v, Keys: iamkeys.New(p.AWS, nil), Verifier: verifier,
		Labels: pendinglabel.New(p.AWS, nil), Log: p.Logger, Now: p.Now,
		Config: rotation.Config{Grace: p.Config.RotationGrace},
	})
	sweep := health.NewService(linkSvc, p.Store, p.Store, health.WithLogger(p.Logger), health.WithNow(p.Now))
	return &handlers{links: linkSvc, rotation: rot, health: sweep, store: p.Store, now: p.Now, log: p.Logger}, nil
}
