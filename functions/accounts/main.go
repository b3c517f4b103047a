// AccountsFunction links cloud provider accounts to organisations.
package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"

	"github.com/aws/aws-lambda-go/lambda"

	"github.com/dflow-sh/cloud-accounts/shared/awsauth"
	"github.com/dflow-sh/cloud-accounts/shared/links"
	"github.com/dflow-sh/cloud-accounts/shared/partition"
	"github.com/dflow-sh/cloud-accounts/shared/platform"
	"github.com/dflow-sh/cloud-accounts/shared/vault"
)

func main() {
	ctx := context.Background()
	p, err := platform.Load(ctx)
	if err != nil {
		slog.Error("init", "error", err.Error())
		os.Exit(1)
	}
	h, err := newHandlers(p)
	if err != nil {
		p.Logger.Error("init", "error", err.Error())
		os.Exit(1)
	}
	srv, err := p.Server(h.routes())
	if err != nil {
		p.Logger.Error("init", "error", err.Error())
		os.Exit(1)
	}
	lambda.Start(srv.Handle)
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
	svc := links.NewService(p.Store, v, verifier{checker}, links.Config{
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

// verifier adapts the STS checker to what the linking use-cases ask.
type verifier struct{ c *awsauth.Checker }

func (v verifier) CheckAccessKey(ctx context.Context, region, id, secret string) (links.Identity, error) {
	who, err := v.c.CheckAccessKey(ctx, awsauth.AccessKey{ID: id, Secret: secret}, awsauth.InRegion(region))
	return links.Identity{AccountID: who.AccountID, ARN: who.ARN}, err
}

func (v verifier) CheckRole(ctx context.Context, region, roleARN, externalID, requestID string) (links.Identity, bool, error) {
	rc, err := v.c.CheckRole(ctx, roleARN, externalID, awsauth.SessionName("dflow", requestID), awsauth.InRegion(region))
	return links.Identity{AccountID: rc.Identity.AccountID, ARN: rc.Identity.ARN}, rc.ExternalIDRequired, err
}
