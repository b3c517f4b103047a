package rotation_test

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/iam"
	iamtypes "github.com/aws/aws-sdk-go-v2/service/iam/types"

	"github.com/dflow-sh/cloud-accounts/shared/awsauth"
	"github.com/dflow-sh/cloud-accounts/shared/dynamo"
	"github.com/dflow-sh/cloud-accounts/shared/ids"
	"github.com/dflow-sh/cloud-accounts/shared/links"
	"github.com/dflow-sh/cloud-accounts/shared/motoserver"
	"github.com/dflow-sh/cloud-accounts/shared/rotation"
	"github.com/dflow-sh/cloud-accounts/shared/rotation/iamkeys"
	"github.com/dflow-sh/cloud-accounts/shared/rotation/pendinglabel"
	"github.com/dflow-sh/cloud-accounts/shared/sdkfault"
	"github.com/dflow-sh/cloud-accounts/shared/tenancy"
	"github.com/dflow-sh/cloud-accounts/shared/vault"
)

func TestMain(m *testing.M) { motoserver.Main(m) }

// clock follows real time (moto stamps key use with it) plus an offset a
// test moves forward to pass a grace period.
type clock struct {
	mu     sync.Mutex
	offset time.Duration
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return time.Now().Add(c.offset)
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.offset += d
}

type env struct {
	t       *testing.T
	ctx     context.Context
	svc     *rotation.Service
	deps    rotation.Deps
	store   *dynamo.Store
	vault   *vault.Vault
	admin   *iam.Client
	checker *awsauth.Checker
	faults  *sdkfault.Faults
	clock   *clock
	link    links.Link
	rec     links.Record
	user    string
	oldKey  string
}

// newEnv makes an IAM user with one key, links it (through links.Service,
// as the API would) and builds the rotation service with every AWS client
// passing through fault injection.
func newEnv(t *testing.T, mutate ...func(*rotation.Deps)) *env {
	t.Helper()
	ctx := context.Background()
	cfg := motoserver.TestConfig(t)
	f := &sdkfault.Faults{}
	fcfg := f.Attach(cfg)

	table := "rot-" + strings.ReplaceAll(ids.New("t"), "_", "-")
	if err := dynamo.EnsureTable(ctx, dynamodb.NewFromConfig(cfg), table); err != nil {
		t.Fatal(err)
	}
	store := dynamo.New(dynamodb.NewFromConfig(fcfg), table)
	v, err := vault.New(fcfg)
	if err != nil {
		t.Fatal(err)
	}
	checker, err := awsauth.New(fcfg)
	if err != nil {
		t.Fatal(err)
	}
	plainChecker, err := awsauth.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	admin := iam.NewFromConfig(cfg)
	user := "rot-" + ids.Secret(6)
	if _, err := admin.CreateUser(ctx, &iam.CreateUserInput{UserName: aws.String(user)}); err != nil {
		t.Fatal(err)
	}
	k, err := admin.CreateAccessKey(ctx, &iam.CreateAccessKeyInput{UserName: aws.String(user)})
	if err != nil {
		t.Fatal(err)
	}
	c := &clock{}
	ls := links.NewService(store, v, awsauth.LinkVerifier{Checker: checker}, links.Config{SecretPrefix: "dflow/test"}, nil, c.Now)
	orgID := ids.New(ids.Org)
	on, days := true, 30
	link, err := ls.Create(ctx, tenancy.Caller{UserID: "u1"}, orgID, "req-1", links.LinkInput{
		Name: aws.String("prod " + user), Provider: aws.String("aws"), Environments: []string{"*"},
		DefaultRegion: aws.String("us-east-1"),
		Credentials: &links.CredentialsInput{
			Type: aws.String(links.TypeAccessKey), AccessKeyID: k.AccessKey.AccessKeyId, SecretAccessKey: k.AccessKey.SecretAccessKey,
		},
		Rotation: &links.RotationInput{Enabled: &on, MaxAgeDays: &days},
	})
	if err != nil {
		t.Fatal(err)
	}
	_, rec, err := store.GetLink(ctx, orgID, link.ID)
	if err != nil {
		t.Fatal(err)
	}
	deps := rotation.Deps{
		Store: store, Vault: v, Keys: iamkeys.New(fcfg, nil), Verifier: awsauth.LinkVerifier{Checker: checker},
		Labels: pendinglabel.New(fcfg, nil), Now: c.Now,
		Sleep: func(context.Context, time.Duration) error { return nil },
	}
	for _, m := range mutate {
		m(&deps)
	}
	f.Reset()
	return &env{
		t: t, ctx: ctx, svc: rotation.NewService(deps), deps: deps, store: store, vault: v, admin: admin,
		checker: plainChecker, faults: f, clock: c, link: link, rec: rec, user: user, oldKey: aws.ToString(k.AccessKey.AccessKeyId),
	}
}

// keys maps the user's key ids to their status ("Active", "Inactive").
func (e *env) keys() map[string]string {
	e.t.Helper()
	out, err := e.admin.ListAccessKeys(e.ctx, &iam.ListAccessKeysInput{UserName: aws.String(e.user)})
	if err != nil {
		e.t.Fatal(err)
	}
	m := map[string]string{}
	for _, k := range out.AccessKeyMetadata {
		m[aws.ToString(k.AccessKeyId)] = string(k.Status)
	}
	return m
}

// current is the AWSCURRENT key; it must answer STS as the link's user.
func (e *env) currentWorks() string {
	e.t.Helper()
	b, _, err := e.vault.Current(e.ctx, e.rec.SecretName)
	if err != nil {
		e.t.Fatal(err)
	}
	sec, err := links.ParseSecret(b)
	if err != nil {
		e.t.Fatal(err)
	}
	id, err := e.checker.CheckAccessKey(e.ctx, awsauth.AccessKey{ID: sec.AccessKeyID, Secret: sec.SecretAccessKey})
	if err != nil {
		e.t.Fatalf("AWSCURRENT does not work: %v", err)
	}
	if id.ARN != e.link.PrincipalARN {
		e.t.Fatalf("AWSCURRENT answers as %s, not %s (a deleted key answers as moto's default user)", id.ARN, e.link.PrincipalARN)
	}
	return sec.AccessKeyID
}

func (e *env) stages() map[string][]string {
	e.t.Helper()
	st, err := e.vault.Stages(e.ctx, e.rec.SecretName)
	if err != nil {
		e.t.Fatal(err)
	}
	return st
}

func (e *env) addKey(active bool) string {
	e.t.Helper()
	k, err := e.admin.CreateAccessKey(e.ctx, &iam.CreateAccessKeyInput{UserName: aws.String(e.user)})
	if err != nil {
		e.t.Fatal(err)
	}
	id := aws.ToString(k.AccessKey.AccessKeyId)
	if !active {
		if _, err := e.admin.UpdateAccessKey(e.ctx, &iam.UpdateAccessKeyInput{UserName: aws.String(e.user), AccessKeyId: k.AccessKey.AccessKeyId, Status: iamtypes.StatusTypeInactive}); err != nil {
			e.t.Fatal(err)
		}
	}
	return id
}

func (e *env) getLink() (links.Link, links.Record) {
	e.t.Helper()
	l, rec, err := e.store.GetLink(e.ctx, e.link.OrgID, e.link.ID)
	if err != nil {
		e.t.Fatal(err)
	}
	return l, rec
}

func tenancyPage(n int) tenancy.Page { return tenancy.Page{Limit: n} }
