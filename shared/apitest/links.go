package apitest

import (
	"context"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"

	"github.com/dflow-sh/cloud-accounts/shared/awsauth"
	"github.com/dflow-sh/cloud-accounts/shared/links"
	"github.com/dflow-sh/cloud-accounts/shared/tenancy"
	"github.com/dflow-sh/cloud-accounts/shared/vault"
)

// Linker is the linking use-cases as AccountsFunction wires them (Secrets
// Manager and STS through cfg), for tests of functions that act through
// links: they get links made by the real linking code.
func (e *Env) Linker(t testing.TB, cfg aws.Config, secretPrefix string) *links.Service {
	t.Helper()
	v, err := vault.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	checker, err := awsauth.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return links.NewService(e.Store, v, awsauth.LinkVerifier{Checker: checker},
		links.Config{SecretPrefix: secretPrefix, Partition: "aws"}, e.Platform.Logger, time.Now)
}

// LinkRole links arn:aws:iam::<account>:role/dflow (moto lets AssumeRole
// into any 12-digit account) for user in orgID.
func LinkRole(t testing.TB, linker *links.Service, user, orgID, account, region string, environments ...string) links.Link {
	t.Helper()
	if len(environments) == 0 {
		environments = []string{"*"}
	}
	name, arn, typ := "r-"+account, "arn:aws:iam::"+account+":role/dflow", links.TypeAssumeRole
	l, err := linker.Create(context.Background(), tenancy.Caller{UserID: user}, orgID, "req-test", links.LinkInput{
		Name: &name, Provider: aws.String("aws"), Environments: environments, DefaultRegion: &region,
		Credentials: &links.CredentialsInput{Type: &typ, RoleARN: &arn},
	})
	if err != nil {
		t.Fatalf("link %s: %v", arn, err)
	}
	return l
}
