// AccountsFunction links cloud provider accounts to organisations.
package main

import (
	"fmt"

	"github.com/dflow-sh/cloud-accounts/shared/awsauth"
	"github.com/dflow-sh/cloud-accounts/shared/links"
	"github.com/dflow-sh/cloud-accounts/shared/partition"
	"github.com/dflow-sh/cloud-accounts/shared/platform"
	"github.com/dflow-sh/cloud-accounts/shared/vault"
)

func main() {
	platform.Serve(func(p *platform.Platform) (platform.Router, error) { return newHandlers(p) })
}

// newHandlers builds the clients once, at cold start.
func newHandlers(p *platform.Platform, opts ...vault.Option) (*handlers, error) {
	principals := map[string]string{}
	for _, arn := range p.Config.PrincipalARNs {
		part, ok := partition.FromARN(arn)
		if !ok {
			return nil, fmt.Errorf("DFLOW_PRINCIPAL_ARNS: %q is not an ARN of a known partition", arn)
		}
		principals[part.ID] = arn
	}
	if len(principals) == 0 {
		return nil, fmt.Errorf("DFLOW_PRINCIPAL_ARNS: at least one principal is required")
	}
	v, err := vault.New(p.AWS, opts...)
	if err != nil {
		return nil, err
	}
	checker, err := awsauth.New(p.AWS)
	if err != nil {
		return nil, err
	}
	home, ok := partition.ForRegion(p.AWS.Region)
	if !ok {
		return nil, fmt.Errorf("AWS_REGION %q is not a region of a known partition", p.AWS.Region)
	}
	svc := links.NewService(p.Store, v, awsauth.LinkVerifier{Checker: checker}, links.Config{
		SecretPrefix: p.Config.SecretPrefix, RecoveryDays: p.Config.RecoveryDays, Partition: home.ID,
	}, p.Logger, p.Now)
	if _, ok := principals[home.ID]; !ok {
		return nil, fmt.Errorf("DFLOW_PRINCIPAL_ARNS: no principal in this deployment's partition %s", home.ID)
	}
	return &handlers{
		links: svc, tenancy: p.Tenancy,
		setup: setupConfig{principal: principals[home.ID], partition: home, templateURL: p.Config.SetupTemplateURL},
	}, nil
}
