package access

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/iam"
	"github.com/aws/smithy-go"

	"github.com/dflow-sh/cloud-accounts/shared/awsauth"
	"github.com/dflow-sh/cloud-accounts/shared/ids"
	"github.com/dflow-sh/cloud-accounts/shared/links"
	"github.com/dflow-sh/cloud-accounts/shared/motoserver"
	"github.com/dflow-sh/cloud-accounts/shared/sdkfault"
	"github.com/dflow-sh/cloud-accounts/shared/vault"
)

func TestMain(m *testing.M) { motoserver.Main(m) }

type fixedIDs string

func (f fixedIDs) ExternalID(context.Context, string) (string, error) { return string(f), nil }

func count(calls []string, name string) int {
	n := 0
	for _, c := range calls {
		if c == name {
			n++
		}
	}
	return n
}

func newBroker(t *testing.T) (*Broker, *sdkfault.Faults, *vault.Vault) {
	t.Helper()
	faults := &sdkfault.Faults{}
	cfg := faults.Attach(motoserver.TestConfig(t))
	v, err := vault.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	checker, err := awsauth.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return New(cfg, v, checker, fixedIDs(strings.Repeat("e", 40))), faults, v
}

func TestAccessKeyLink(t *testing.T) {
	b, faults, v := newBroker(t)
	ctx := context.Background()
	client := iam.NewFromConfig(motoserver.TestConfig(t))
	user := "broker-" + ids.Secret(4)
	if _, err := client.CreateUser(ctx, &iam.CreateUserInput{UserName: aws.String(user)}); err != nil {
		t.Fatal(err)
	}
	key, err := client.CreateAccessKey(ctx, &iam.CreateAccessKeyInput{UserName: aws.String(user)})
	if err != nil {
		t.Fatal(err)
	}
	secret := links.Secret{Type: links.TypeAccessKey, AccessKeyID: aws.ToString(key.AccessKey.AccessKeyId), SecretAccessKey: aws.ToString(key.AccessKey.SecretAccessKey)}
	name := "dflow/test/access/" + ids.Secret(6)
	if _, err := v.Create(ctx, name, secret.Payload(), nil); err != nil {
		t.Fatal(err)
	}
	l := links.Link{ID: ids.New(ids.Account), OrgID: ids.New(ids.Org), DefaultRegion: "eu-west-1", Credentials: links.CredentialsInfo{Type: links.TypeAccessKey}}
	rec := links.Record{SecretName: name, CredKey: "k1"}

	faults.Reset()
	for i := 0; i < 3; i++ {
		c, err := b.EC2(ctx, l, rec, "eu-west-1", "req-1")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.DescribeVpcs(ctx, &ec2.DescribeVpcsInput{}); err != nil {
			t.Fatal(err)
		}
	}
	// One vault read and one client for three requests.
	if n := count(faults.Calls(), "Secrets Manager.GetSecretValue"); n != 1 {
		t.Fatalf("%d vault reads, want 1: %v", n, faults.Calls())
	}
	c1, _ := b.EC2(ctx, l, rec, "eu-west-1", "req-2")
	c2, _ := b.EC2(ctx, l, rec, "eu-west-1", "req-3")
	if c1 != c2 {
		t.Fatal("a new client per request")
	}
	// The calls are signed with the link's key: moto answers as its user.
	creds, err := b.Credentials(ctx, l, rec, "req-4")
	if err != nil || creds.AccessKeyID != secret.AccessKeyID {
		t.Fatalf("credentials %v", err)
	}

	// Expired credentials are read again (a rotated key is picked up).
	b.now = func() time.Time { return time.Now().Add(-time.Hour) }
	b.Forget(l, rec)
	faults.Reset()
	for i := 0; i < 2; i++ {
		if _, err := b.Credentials(ctx, l, rec, "req"); err != nil {
			t.Fatal(err)
		}
	}
	if n := count(faults.Calls(), "Secrets Manager.GetSecretValue"); n != 2 {
		t.Fatalf("%d vault reads of expired credentials, want 2", n)
	}
}

func TestRoleLink(t *testing.T) {
	b, faults, _ := newBroker(t)
	ctx := context.Background()
	l := links.Link{ID: ids.New(ids.Account), OrgID: ids.New(ids.Org), DefaultRegion: "us-east-1",
		Credentials: links.CredentialsInfo{Type: links.TypeAssumeRole, RoleARN: "arn:aws:iam::222233334444:role/dflow"}}
	rec := links.Record{SecretName: "unused", CredKey: "r1"}
	faults.Reset()
	for i := 0; i < 3; i++ {
		c, err := b.EC2(ctx, l, rec, "us-west-2", "req-"+ids.Secret(2))
		if err != nil {
			t.Fatal(err)
		}
		out, err := c.DescribeVpcs(ctx, &ec2.DescribeVpcsInput{})
		if err != nil {
			t.Fatal(err)
		}
		// The session is in the customer's account: moto scopes state to it.
		if len(out.Vpcs) == 0 || aws.ToString(out.Vpcs[0].OwnerId) != "222233334444" {
			t.Fatalf("vpcs of %v", out.Vpcs)
		}
	}
	if n := count(faults.Calls(), "STS.AssumeRole"); n != 1 {
		t.Fatalf("%d AssumeRole calls, want 1", n)
	}
	// A rejected role is a clean domain fault, not an SDK error.
	b.Forget(l, rec)
	faults.FailNth("STS.AssumeRole", 1, &smithyErr{"AccessDenied"})
	_, err := b.EC2(ctx, l, rec, "us-west-2", "req")
	if err == nil || !strings.Contains(err.Error(), "credentials_invalid") {
		t.Fatalf("rejected role: %v", err)
	}
}

type smithyErr struct{ code string }

func (e *smithyErr) Error() string                 { return e.code }
func (e *smithyErr) ErrorCode() string             { return e.code }
func (e *smithyErr) ErrorMessage() string          { return e.code }
func (e *smithyErr) ErrorFault() smithy.ErrorFault { return smithy.FaultClient }
