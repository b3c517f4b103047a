package main

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/iam"
	"github.com/aws/aws-sdk-go-v2/service/iam/types"

	"github.com/dflow-sh/cloud-accounts/shared/apitest"
	"github.com/dflow-sh/cloud-accounts/shared/ids"
	"github.com/dflow-sh/cloud-accounts/shared/links"
	"github.com/dflow-sh/cloud-accounts/shared/motoserver"
	"github.com/dflow-sh/cloud-accounts/shared/platform"
	"github.com/dflow-sh/cloud-accounts/shared/tenancy"
)

func TestMain(m *testing.M) { motoserver.Main(m) }

const (
	admin  = "alice"
	viewer = "vic-viewer"
)

type fixture struct {
	t      *testing.T
	env    *apitest.Env
	api    *apitest.Client
	h      *handlers
	orgID  string
	linker *links.Service
	iam    *iam.Client
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	env := apitest.NewEnv(t)
	cfg := env.Config
	cfg.SecretPrefix = "dflow/test-" + strings.ToLower(t.Name())
	p := platform.New(cfg, env.AWS, env.Platform.Logger, time.Now)
	h, err := newHandlers(p)
	if err != nil {
		t.Fatal(err)
	}
	srv, err := p.Server(h.Routes())
	if err != nil {
		t.Fatal(err)
	}
	f := &fixture{t: t, env: env, api: apitest.NewClient(t, srv.Handle), h: h, iam: iam.NewFromConfig(env.AWS)}
	f.api.Logs = env.Logs
	f.env.Platform = p
	f.orgID, _ = apitest.SeedOrg(t, p, admin, map[string]string{viewer: "viewer"}, "")
	f.linker = env.Linker(t, env.AWS, cfg.SecretPrefix)
	return f
}

// keyLink makes an IAM user with a key in moto and links it.
func (f *fixture) keyLink() (links.Link, string) {
	f.t.Helper()
	ctx := context.Background()
	user := "rot-" + ids.Secret(5)
	if _, err := f.iam.CreateUser(ctx, &iam.CreateUserInput{UserName: aws.String(user)}); err != nil {
		f.t.Fatal(err)
	}
	k, err := f.iam.CreateAccessKey(ctx, &iam.CreateAccessKeyInput{UserName: aws.String(user)})
	if err != nil {
		f.t.Fatal(err)
	}
	name, typ, region, id, secret := "k-"+user, links.TypeAccessKey, "us-east-1", aws.ToString(k.AccessKey.AccessKeyId), aws.ToString(k.AccessKey.SecretAccessKey)
	enabled, days := true, 90
	l, err := f.linker.Create(ctx, tenancy.Caller{UserID: admin}, f.orgID, "req-test", links.LinkInput{
		Name: &name, Provider: aws.String("aws"), Environments: []string{"*"}, DefaultRegion: &region,
		Credentials: &links.CredentialsInput{Type: &typ, AccessKeyID: &id, SecretAccessKey: &secret},
		Rotation:    &links.RotationInput{Enabled: &enabled, MaxAgeDays: &days},
	})
	if err != nil {
		f.t.Fatal(err)
	}
	return l, user
}

func (f *fixture) keys(user string) map[string]types.StatusType {
	f.t.Helper()
	out, err := f.iam.ListAccessKeys(context.Background(), &iam.ListAccessKeysInput{UserName: aws.String(user)})
	if err != nil {
		f.t.Fatal(err)
	}
	m := map[string]types.StatusType{}
	for _, k := range out.AccessKeyMetadata {
		m[aws.ToString(k.AccessKeyId)] = k.Status
	}
	return m
}

func TestManualRotationThroughTheAPI(t *testing.T) {
	f := newFixture(t)
	l, user := f.keyLink()
	before := f.keys(user)
	path := []string{"orgId", f.orgID, "accountId", l.ID}

	f.api.As(viewer).Route("POST "+base+"/rotate", path...).JSON(map[string]any{"reason": "manual"}).Do().Expect(http.StatusForbidden)
	res := f.api.As(admin).Route("POST "+base+"/rotate", path...).JSON(map[string]any{"reason": "manual"}).Do().Expect(http.StatusAccepted).Map()
	if res["outcome"] != "rotated" || !strings.HasPrefix(res["id"].(string), "rot_") || res["newKeyMasked"] == res["oldKeyMasked"] {
		t.Fatalf("rotation = %v", res)
	}
	for _, internal := range []string{"token", "pendingVersionId", "oldVersionId", "newKeyRef"} {
		if _, ok := res[internal]; ok {
			t.Errorf("the answer shows %s", internal)
		}
	}
	// AWS now holds a second key, and the old one is inactive.
	after := f.keys(user)
	if len(after) != 2 {
		t.Fatalf("keys after rotation: %v", after)
	}
	for id, status := range after {
		_, old := before[id]
		if old && status != types.StatusTypeInactive || !old && status != types.StatusTypeActive {
			t.Fatalf("key %s is %s (old: %v)", id, status, old)
		}
	}
	// dFlow now uses the new key: the link says so, and it still validates.
	got, err := f.linker.Get(context.Background(), f.orgID, l.ID)
	if err != nil || got.Credentials.AccessKeyIDMasked == l.Credentials.AccessKeyIDMasked || got.Rotation.LastRotatedAt == nil {
		t.Fatalf("link after rotation: %+v %v", got, err)
	}
	if v, err := f.linker.Validate(context.Background(), f.orgID, l.ID, "req"); err != nil || v.Status != links.Healthy {
		t.Fatalf("validate after rotation: %+v %v", v, err)
	}
	list := f.api.As(admin).Route("GET "+base+"/rotations", path...).Do().Expect(http.StatusOK).Map()
	items := list["items"].([]any)
	if len(items) != 1 || items[0].(map[string]any)["outcome"] != "rotated" {
		t.Fatalf("rotations = %v", list)
	}
	// The hourly job runs (nothing is past its grace period yet).
	if _, err := f.h.Jobs()["rotation-sweep"](context.Background()); err != nil {
		t.Fatal(err)
	}
	if n := len(f.keys(user)); n != 2 {
		t.Fatalf("old key deleted before its grace period: %d keys", n)
	}
	// The health sweep checks it and finds it healthy.
	if _, err := f.h.Jobs()["health-sweep"](context.Background()); err != nil {
		t.Fatal(err)
	}
}

func TestRotationRefusals(t *testing.T) {
	f := newFixture(t)
	region, name, arn, typ := "us-east-1", "role", "arn:aws:iam::111122223333:role/dflow", links.TypeAssumeRole
	role, err := f.linker.Create(context.Background(), tenancy.Caller{UserID: admin}, f.orgID, "req", links.LinkInput{
		Name: &name, Provider: aws.String("aws"), Environments: []string{"*"}, DefaultRegion: &region,
		Credentials: &links.CredentialsInput{Type: &typ, RoleARN: &arn},
	})
	if err != nil {
		t.Fatal(err)
	}
	r := f.api.As(admin).Route("POST "+base+"/rotate", "orgId", f.orgID, "accountId", role.ID).JSON(map[string]any{"reason": "manual"}).Do().Expect(http.StatusUnprocessableEntity)
	if r.Code() != "not_an_access_key_link" {
		t.Fatal(r)
	}
	l, _ := f.keyLink()
	f.api.As(admin).Route("POST "+base+"/rotate", "orgId", f.orgID, "accountId", l.ID).JSON(map[string]any{"reason": "whenever"}).Do().Expect(http.StatusBadRequest)
	f.api.As(admin).Route("POST "+base+"/rotate", "orgId", f.orgID, "accountId", l.ID).JSON(map[string]any{}).Do().Expect(http.StatusBadRequest)
	f.api.As("mallory").Route("GET "+base+"/rotations", "orgId", f.orgID, "accountId", l.ID).Do().Expect(http.StatusNotFound)
}

// The hourly sweep rotates due links; one that cannot rotate (its user
// already has two active keys) carries a warning, and the sweep goes on.
func TestScheduledSweep(t *testing.T) {
	f := newFixture(t)
	ok, okUser := f.keyLink()
	stuck, stuckUser := f.keyLink()
	if _, err := f.iam.CreateAccessKey(context.Background(), &iam.CreateAccessKeyInput{UserName: aws.String(stuckUser)}); err != nil {
		t.Fatal(err)
	}
	// 100 days on, both are past their 90-day maxAge.
	f.h.now = func() time.Time { return time.Now().AddDate(0, 0, 100) }
	if _, err := f.h.Jobs()["rotation-sweep"](context.Background()); err != nil {
		t.Fatal(err)
	}
	if n := len(f.keys(okUser)); n != 2 {
		t.Fatalf("the due link was not rotated: %d keys", n)
	}
	got, err := f.linker.Get(context.Background(), f.orgID, ok.ID)
	if err != nil || got.Credentials.AccessKeyIDMasked == ok.Credentials.AccessKeyIDMasked {
		t.Fatalf("rotated link: %+v %v", got, err)
	}
	l, err := f.linker.Get(context.Background(), f.orgID, stuck.ID)
	if err != nil || len(l.Warnings) != 1 || l.Warnings[0].Code != "rotation_failed" || !strings.Contains(l.Warnings[0].Message, "key_limit_reached") {
		t.Fatalf("stuck link: %+v %v", l.Warnings, err)
	}
}
