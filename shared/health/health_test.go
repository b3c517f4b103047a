package health_test

import (
	"context"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/iam"
	"github.com/aws/smithy-go"

	"github.com/dflow-sh/cloud-accounts/shared/audit"
	"github.com/dflow-sh/cloud-accounts/shared/awsauth"
	"github.com/dflow-sh/cloud-accounts/shared/dynamo"
	"github.com/dflow-sh/cloud-accounts/shared/health"
	"github.com/dflow-sh/cloud-accounts/shared/ids"
	"github.com/dflow-sh/cloud-accounts/shared/links"
	"github.com/dflow-sh/cloud-accounts/shared/motoserver"
	"github.com/dflow-sh/cloud-accounts/shared/sdkfault"
	"github.com/dflow-sh/cloud-accounts/shared/tenancy"
	"github.com/dflow-sh/cloud-accounts/shared/vault"
)

func TestMain(m *testing.M) { motoserver.Main(m) }

// env is a table, a vault and the linking use-cases over moto, every AWS
// client passing through fault injection.
type env struct {
	t      *testing.T
	ctx    context.Context
	store  *dynamo.Store
	links  *links.Service
	admin  *iam.Client
	faults *sdkfault.Faults
}

func newEnv(t *testing.T) *env {
	t.Helper()
	ctx := context.Background()
	cfg := motoserver.TestConfig(t)
	f := &sdkfault.Faults{}
	fcfg := f.Attach(cfg)
	table := "health-" + strings.ReplaceAll(ids.New("t"), "_", "-")
	if err := dynamo.EnsureTable(ctx, dynamodb.NewFromConfig(cfg), table); err != nil {
		t.Fatal(err)
	}
	store := dynamo.New(dynamodb.NewFromConfig(fcfg), table)
	v, err := vault.New(fcfg, vault.WithMaxAttempts(1))
	if err != nil {
		t.Fatal(err)
	}
	checker, err := awsauth.New(fcfg)
	if err != nil {
		t.Fatal(err)
	}
	ls := links.NewService(store, v, awsauth.LinkVerifier{Checker: checker},
		links.Config{SecretPrefix: "dflow/test-" + ids.Secret(5), Partition: "aws"}, nil, time.Now)
	return &env{t: t, ctx: ctx, store: store, links: ls, admin: iam.NewFromConfig(cfg), faults: f}
}

func (e *env) create(orgID string, creds *links.CredentialsInput) links.Link {
	e.t.Helper()
	l, err := e.links.Create(e.ctx, tenancy.Caller{UserID: "u1"}, orgID, "req-create", links.LinkInput{
		Name: aws.String("acct " + ids.Secret(5)), Provider: aws.String("aws"), Environments: []string{"*"},
		DefaultRegion: aws.String("us-east-1"), Credentials: creds,
	})
	if err != nil {
		e.t.Fatal(err)
	}
	if l.Status != links.Healthy {
		e.t.Fatalf("created %s: status %q", l.ID, l.Status)
	}
	return l
}

// keyLink links a fresh IAM user's access key; it returns the user too.
func (e *env) keyLink(orgID string) (links.Link, string, string) {
	e.t.Helper()
	user := "health-" + ids.Secret(6)
	if _, err := e.admin.CreateUser(e.ctx, &iam.CreateUserInput{UserName: aws.String(user)}); err != nil {
		e.t.Fatal(err)
	}
	k, err := e.admin.CreateAccessKey(e.ctx, &iam.CreateAccessKeyInput{UserName: aws.String(user)})
	if err != nil {
		e.t.Fatal(err)
	}
	l := e.create(orgID, &links.CredentialsInput{Type: aws.String(links.TypeAccessKey),
		AccessKeyID: k.AccessKey.AccessKeyId, SecretAccessKey: k.AccessKey.SecretAccessKey})
	return l, user, aws.ToString(k.AccessKey.AccessKeyId)
}

func (e *env) roleLink(orgID, name string) links.Link {
	e.t.Helper()
	return e.create(orgID, &links.CredentialsInput{Type: aws.String(links.TypeAssumeRole),
		RoleARN: aws.String("arn:aws:iam::111122223333:role/" + name)})
}

// order is the order a sweep with concurrency 1 visits links in.
func (e *env) order() []health.LinkRef {
	e.t.Helper()
	var out []health.LinkRef
	for shard := range dynamo.LinkShards {
		after := ""
		for {
			refs, next, err := e.store.LinksForSweep(e.ctx, shard, after, 100)
			if err != nil {
				e.t.Fatal(err)
			}
			out = append(out, refs...)
			if next == "" {
				break
			}
			after = next
		}
	}
	return out
}

// nth is the 1-based place of link id in the sweep's order: with
// concurrency 1 and one STS.GetCallerIdentity and one GetSecretValue per
// check, it is also the number of the call the link's check makes.
func (e *env) nth(id string) int {
	e.t.Helper()
	i := slices.IndexFunc(e.order(), func(r health.LinkRef) bool { return r.LinkID == id })
	if i < 0 {
		e.t.Fatalf("%s not in the sweep index", id)
	}
	return i + 1
}

func (e *env) auditOf(orgID string) []audit.Event {
	e.t.Helper()
	evs, _, err := e.store.ListAudit(e.ctx, orgID, tenancy.Page{Limit: 100})
	if err != nil {
		e.t.Fatal(err)
	}
	return evs
}

func (e *env) get(orgID, id string) links.Link {
	e.t.Helper()
	l, err := e.links.Get(e.ctx, orgID, id)
	if err != nil {
		e.t.Fatal(err)
	}
	return l
}

func TestRevokedKeyBecomesUnhealthyAndIsAudited(t *testing.T) {
	e := newEnv(t)
	org := ids.New(ids.Org)
	key, user, keyID := e.keyLink(org)
	role := e.roleLink(org, "dflow")

	// The customer deletes the key behind dFlow's back.
	if _, err := e.admin.DeleteAccessKey(e.ctx, &iam.DeleteAccessKeyInput{UserName: aws.String(user), AccessKeyId: aws.String(keyID)}); err != nil {
		t.Fatal(err)
	}
	// moto without IAM enforcement still answers GetCallerIdentity for an
	// unknown key (as user "moto"), so AWS's rejection of the deleted key is
	// injected: the key link's GetCallerIdentity fails as AWS would fail it.
	rejected := &smithy.GenericAPIError{Code: "InvalidClientTokenId", Message: "The security token included in the request is invalid."}
	e.faults.FailNth("STS.GetCallerIdentity", e.nth(key.ID), rejected)

	svc := health.NewService(e.links, e.store, e.store, health.WithConcurrency(1))
	sum, err := svc.Sweep(e.ctx)
	if err != nil {
		t.Fatal(err)
	}
	if sum.Checked != 2 || sum.Healthy != 1 || sum.Unhealthy != 1 || sum.Changed != 1 || len(sum.Errors) != 0 || sum.Incomplete {
		t.Fatalf("summary: %+v", sum)
	}
	if !strings.HasPrefix(sum.RequestID, "sweep_") {
		t.Fatalf("request id %q", sum.RequestID)
	}
	got := e.get(org, key.ID)
	if got.Status != links.Unhealthy || got.LastError == nil || got.LastError.Code != "InvalidClientTokenId" {
		t.Fatalf("key link after sweep: %q %+v", got.Status, got.LastError)
	}
	// The role link still requires the external ID? moto assumes any role
	// without one, so the check keeps its warning; it stays healthy.
	if r := e.get(org, role.ID); r.Status != links.Healthy || r.Credentials.ConfusedDeputyProtected == nil {
		t.Fatalf("role link after sweep: %+v", r)
	}

	evs := e.auditOf(org)
	if len(evs) != 1 {
		t.Fatalf("want one audit event (the key link's change), got %+v", evs)
	}
	ev := evs[0]
	if ev.OrgID != org || ev.ActorID != "system:health-sweep" || ev.Action != "accounts.health" ||
		ev.Target != "/v1/orgs/"+org+"/accounts/"+key.ID || ev.Outcome != audit.Success || ev.Status != 200 ||
		ev.Code != links.Unhealthy || ev.RequestID != sum.RequestID || !ids.Valid(ids.Event, ev.ID) {
		t.Fatalf("audit event: %+v", ev)
	}

	// Again, still rejected: nothing changes, nothing is audited.
	e.faults.FailNth("STS.GetCallerIdentity", e.nth(key.ID), rejected)
	sum, err = svc.Sweep(e.ctx)
	if err != nil || sum.Checked != 2 || sum.Unhealthy != 1 || sum.Changed != 0 {
		t.Fatalf("second sweep: %+v %v", sum, err)
	}
	if evs := e.auditOf(org); len(evs) != 1 {
		t.Fatalf("unchanged links audited: %+v", evs)
	}

	// AWS accepts it again (moto does without the fault): healthy, audited.
	sum, err = svc.Sweep(e.ctx)
	if err != nil || sum.Healthy != 2 || sum.Changed != 1 {
		t.Fatalf("third sweep: %+v %v", sum, err)
	}
	if evs := e.auditOf(org); len(evs) != 2 || evs[0].Code != links.Healthy || evs[0].Target != ev.Target {
		t.Fatalf("recovery audit: %+v", evs)
	}
	if got := e.get(org, key.ID); got.Status != links.Healthy || got.LastError != nil {
		t.Fatalf("key link after recovery: %q %+v", got.Status, got.LastError)
	}
}

func TestOneLinkFailingDoesNotStopTheSweep(t *testing.T) {
	e := newEnv(t)
	org := ids.New(ids.Org)
	var made []links.Link
	for i := range 3 {
		made = append(made, e.roleLink(org, "fail-"+string(rune('a'+i))))
	}
	bad := made[1]
	// Secrets Manager cannot be reached for this link's secret: no verdict,
	// so its status is left alone.
	e.faults.FailNth("Secrets Manager.GetSecretValue", e.nth(bad.ID),
		&smithy.GenericAPIError{Code: "InternalServiceError", Message: "injected"})

	sum, err := health.NewService(e.links, e.store, e.store, health.WithConcurrency(1)).Sweep(e.ctx)
	if err != nil {
		t.Fatal(err)
	}
	if sum.Checked != 3 || sum.Healthy != 2 || sum.Unhealthy != 0 || sum.Changed != 0 || sum.Incomplete {
		t.Fatalf("summary: %+v", sum)
	}
	want := []health.LinkFailure{{OrgID: org, AccountID: bad.ID, Code: "secrets_unavailable", Message: "the secret store is unavailable; try again"}}
	if !slices.Equal(sum.Errors, want) {
		t.Fatalf("errors: %+v", sum.Errors)
	}
	if got := e.get(org, bad.ID); got.Status != links.Healthy {
		t.Fatalf("failed check changed the status: %q", got.Status)
	}
	if evs := e.auditOf(org); len(evs) != 0 {
		t.Fatalf("audited without a change: %+v", evs)
	}
}

// recording passes checks through and remembers which links it validated.
type recording struct {
	health.Links
	mu   sync.Mutex
	seen []string
}

func (r *recording) Validate(ctx context.Context, orgID, id, requestID string) (links.Link, error) {
	r.mu.Lock()
	r.seen = append(r.seen, orgID+"/"+id)
	r.mu.Unlock()
	return r.Links.Validate(ctx, orgID, id, requestID)
}

func TestSweepVisitsEveryLinkOfEveryShard(t *testing.T) {
	e := newEnv(t)
	orgs := []string{ids.New(ids.Org), ids.New(ids.Org)}
	var want []string
	for i := range 10 {
		org := orgs[i%2]
		l := e.roleLink(org, "many-"+ids.Secret(4))
		want = append(want, org+"/"+l.ID)
	}
	shards := map[int]bool{}
	for shard := range dynamo.LinkShards {
		if refs, _, err := e.store.LinksForSweep(e.ctx, shard, "", 100); err != nil {
			t.Fatal(err)
		} else if len(refs) > 0 {
			shards[shard] = true
		}
	}
	if len(shards) < 2 {
		t.Fatalf("10 links in %d shard(s): the shard hash is not spreading them", len(shards))
	}

	rec := &recording{Links: e.links}
	// Pages of 3 so every shard is read over several pages.
	sum, err := health.NewService(rec, e.store, e.store, health.WithPageSize(3), health.WithConcurrency(4)).Sweep(e.ctx)
	if err != nil {
		t.Fatal(err)
	}
	if sum.Checked != 10 || sum.Healthy != 10 || sum.Changed != 0 || len(sum.Errors) != 0 || sum.Incomplete {
		t.Fatalf("summary: %+v", sum)
	}
	slices.Sort(want)
	slices.Sort(rec.seen)
	if !slices.Equal(rec.seen, want) {
		t.Fatalf("validated %v, want %v", rec.seen, want)
	}
}
