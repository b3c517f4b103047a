package main

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	dbtypes "github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/aws-sdk-go-v2/service/iam"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	smtypes "github.com/aws/aws-sdk-go-v2/service/secretsmanager/types"

	"github.com/dflow-sh/cloud-accounts/shared/apitest"
	"github.com/dflow-sh/cloud-accounts/shared/motoserver"
	"github.com/dflow-sh/cloud-accounts/shared/platform"
	"github.com/dflow-sh/cloud-accounts/shared/sdkfault"
)

func TestMain(m *testing.M) { motoserver.Main(m) }

const (
	admin     = "alice"
	developer = "dev-dan"
	viewer    = "vic-viewer"
	custom    = "cara-custom"
	stranger  = "mallory"

	principal = "arn:aws:iam::999988887777:root"
	// roleARN is in a second (moto) account: AssumeRole into it works.
	roleARN = "arn:aws:iam::111122223333:role/dflow"
)

// fixture is a fresh table and organisation, the accounts API over it with
// fault injection on every AWS client, and the tenants API to manage roles.
type fixture struct {
	t      *testing.T
	env    *apitest.Env
	faults *sdkfault.Faults
	api    *apitest.Client
	orgID  string
	custom string
	sm     *secretsmanager.Client
	db     *dynamodb.Client
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	env := apitest.NewEnv(t)
	faults := &sdkfault.Faults{}
	cfg := env.Config
	cfg.PrincipalARNs = []string{principal}
	cfg.SecretPrefix = "dflow/test-" + strings.ToLower(t.Name())
	p := platform.New(cfg, faults.Attach(env.AWS), env.Platform.Logger, time.Now)
	h, err := newHandlers(p)
	if err != nil {
		t.Fatal(err)
	}
	srv, err := p.Server(h.Routes())
	if err != nil {
		t.Fatal(err)
	}
	f := &fixture{
		t: t, env: env, faults: faults, api: apitest.NewClient(t, srv.Handle),
		sm: secretsmanager.NewFromConfig(env.AWS), db: dynamodb.NewFromConfig(env.AWS),
	}
	f.api.Logs = env.Logs
	f.env.Platform = p
	f.orgID, f.custom = apitest.SeedOrg(t, p, admin, map[string]string{developer: "developer", viewer: "viewer"}, custom)
	return f
}

func (f *fixture) org(params ...string) []string {
	return append([]string{"orgId", f.orgID}, params...)
}

// accessKey makes an IAM user with an access key in moto's default account.
func accessKey(t *testing.T, name string) (id, secret string) {
	t.Helper()
	client := iam.NewFromConfig(motoserver.TestConfig(t))
	ctx := context.Background()
	user := name + "-" + strings.ToLower(strings.ReplaceAll(t.Name(), "/", "-"))
	if len(user) > 64 {
		user = user[:64]
	}
	if _, err := client.CreateUser(ctx, &iam.CreateUserInput{UserName: aws.String(user)}); err != nil {
		t.Fatalf("create user: %v", err)
	}
	out, err := client.CreateAccessKey(ctx, &iam.CreateAccessKeyInput{UserName: aws.String(user)})
	if err != nil {
		t.Fatalf("create key: %v", err)
	}
	return aws.ToString(out.AccessKey.AccessKeyId), aws.ToString(out.AccessKey.SecretAccessKey)
}

func keyBody(name, id, secret string) map[string]any {
	return map[string]any{
		"name": name, "provider": "aws", "environments": []string{"production"}, "defaultRegion": "eu-west-1",
		"credentials": map[string]any{"type": "accessKey", "accessKeyId": id, "secretAccessKey": secret},
		"rotation":    map[string]any{"enabled": true, "maxAgeDays": 90},
	}
}

func roleBody(name, arn string) map[string]any {
	return map[string]any{
		"name": name, "provider": "aws", "environments": []string{"*"}, "defaultRegion": "us-east-1",
		"credentials": map[string]any{"type": "assumeRole", "roleArn": arn},
	}
}

func (f *fixture) link(body map[string]any) map[string]any {
	f.t.Helper()
	return f.api.As(admin).Route("POST /v1/orgs/{orgId}/accounts", f.org()...).JSON(body).Do().Expect(http.StatusCreated).Map()
}

// secrets lists this test's secrets, deleted ones included.
func (f *fixture) secrets() []smtypes.SecretListEntry {
	f.t.Helper()
	out, err := f.sm.ListSecrets(context.Background(), &secretsmanager.ListSecretsInput{
		IncludePlannedDeletion: aws.Bool(true),
		Filters:                []smtypes.Filter{{Key: smtypes.FilterNameStringTypeName, Values: []string{f.env.Config.SecretPrefix + "/"}}},
	})
	if err != nil {
		f.t.Fatal(err)
	}
	return out.SecretList
}

// items returns every item of the test's table: a test may scan.
func (f *fixture) items() []map[string]string {
	f.t.Helper()
	out, err := f.db.Scan(context.Background(), &dynamodb.ScanInput{TableName: aws.String(f.env.Config.TableName)})
	if err != nil {
		f.t.Fatal(err)
	}
	return apitest.Flatten(out.Items)
}

func problemCode(t *testing.T, r *apitest.Result) string { t.Helper(); return r.Code() }

func fieldsOf(t *testing.T, r *apitest.Result) []string { t.Helper(); return r.Fields() }

func (f *fixture) putUsage(acc, kind, id string) {
	f.t.Helper()
	_, err := f.db.PutItem(context.Background(), &dynamodb.PutItemInput{
		TableName: aws.String(f.env.Config.TableName),
		Item: map[string]dbtypes.AttributeValue{
			"PK":   &dbtypes.AttributeValueMemberS{Value: "ORG#" + f.orgID},
			"SK":   &dbtypes.AttributeValueMemberS{Value: "USES#" + acc + "#" + kind + "#" + id},
			"kind": &dbtypes.AttributeValueMemberS{Value: kind},
			"id":   &dbtypes.AttributeValueMemberS{Value: id},
		},
	})
	if err != nil {
		f.t.Fatal(err)
	}
}

func (f *fixture) deleteUsage(acc, kind, id string) {
	f.t.Helper()
	_, err := f.db.DeleteItem(context.Background(), &dynamodb.DeleteItemInput{
		TableName: aws.String(f.env.Config.TableName),
		Key: map[string]dbtypes.AttributeValue{
			"PK": &dbtypes.AttributeValueMemberS{Value: "ORG#" + f.orgID},
			"SK": &dbtypes.AttributeValueMemberS{Value: "USES#" + acc + "#" + kind + "#" + id},
		},
	})
	if err != nil {
		f.t.Fatal(err)
	}
}

// liveSecrets are the test's secrets not scheduled for deletion.
func (f *fixture) liveSecrets() []smtypes.SecretListEntry {
	var out []smtypes.SecretListEntry
	for _, s := range f.secrets() {
		if s.DeletedDate == nil {
			out = append(out, s)
		}
	}
	return out
}

// unlinkAll removes every link of the fixture's organisation.
func (f *fixture) unlinkAll() {
	f.t.Helper()
	var l struct{ Items []struct{ ID string } }
	f.api.As(admin).Route("GET /v1/orgs/{orgId}/accounts", f.org()...).Do().Expect(http.StatusOK).Decode(&l)
	for _, it := range l.Items {
		f.api.As(admin).Route("DELETE /v1/orgs/{orgId}/accounts/{accountId}", f.org("accountId", it.ID)...).Do().Expect(http.StatusNoContent)
	}
}

func (f *fixture) currentSecret(acc string) string {
	f.t.Helper()
	name := f.env.Config.SecretPrefix + "/orgs/" + f.orgID + "/accounts/" + acc
	v, err := f.sm.GetSecretValue(context.Background(), &secretsmanager.GetSecretValueInput{SecretId: aws.String(name), VersionStage: aws.String("AWSCURRENT")})
	if err != nil {
		f.t.Fatal(err)
	}
	return aws.ToString(v.SecretString)
}
