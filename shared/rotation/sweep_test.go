package rotation_test

import (
	"context"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/iam"

	"github.com/dflow-sh/cloud-accounts/shared/awsauth"
	"github.com/dflow-sh/cloud-accounts/shared/ids"
	"github.com/dflow-sh/cloud-accounts/shared/links"
	"github.com/dflow-sh/cloud-accounts/shared/rotation"
	"github.com/dflow-sh/cloud-accounts/shared/tenancy"
)

// sweepLink is one more link of an env's organisation, with a user of its own.
type sweepLink struct {
	link   links.Link
	user   string
	oldKey string
}

func (e *env) links() *links.Service {
	return links.NewService(e.store, e.vault, awsauth.LinkVerifier{Checker: e.checker}, links.Config{SecretPrefix: "dflow/test"}, nil, e.clock.Now)
}

// addLink links a new IAM user's key with rotation on every maxAgeDays.
func (e *env) addLink(maxAgeDays int) sweepLink {
	e.t.Helper()
	user := "rot-" + ids.Secret(6)
	if _, err := e.admin.CreateUser(e.ctx, &iam.CreateUserInput{UserName: aws.String(user)}); err != nil {
		e.t.Fatal(err)
	}
	k, err := e.admin.CreateAccessKey(e.ctx, &iam.CreateAccessKeyInput{UserName: aws.String(user)})
	if err != nil {
		e.t.Fatal(err)
	}
	on := true
	l, err := e.links().Create(e.ctx, tenancy.Caller{UserID: "u1"}, e.link.OrgID, "req-"+user, links.LinkInput{
		Name: aws.String("prod " + user), Provider: aws.String("aws"), Environments: []string{"*"},
		DefaultRegion: aws.String("us-east-1"),
		Credentials: &links.CredentialsInput{
			Type: aws.String(links.TypeAccessKey), AccessKeyID: k.AccessKey.AccessKeyId, SecretAccessKey: k.AccessKey.SecretAccessKey,
		},
		Rotation: &links.RotationInput{Enabled: &on, MaxAgeDays: &maxAgeDays},
	})
	if err != nil {
		e.t.Fatal(err)
	}
	return sweepLink{link: l, user: user, oldKey: aws.ToString(k.AccessKey.AccessKeyId)}
}

// envLink is the env's own link as a sweepLink.
func (e *env) envLink() sweepLink { return sweepLink{link: e.link, user: e.user, oldKey: e.oldKey} }

func (e *env) userKeys(user string) map[string]string {
	e.t.Helper()
	out, err := e.admin.ListAccessKeys(e.ctx, &iam.ListAccessKeysInput{UserName: aws.String(user)})
	if err != nil {
		e.t.Fatal(err)
	}
	m := map[string]string{}
	for _, k := range out.AccessKeyMetadata {
		m[aws.ToString(k.AccessKeyId)] = string(k.Status)
	}
	return m
}

func (e *env) journals(l sweepLink) []rotation.Rotation {
	e.t.Helper()
	list, _, err := e.svc.List(e.ctx, l.link.OrgID, l.link.ID, tenancyPage(20))
	if err != nil {
		e.t.Fatal(err)
	}
	return list
}

// rotated checks the link's key was rotated once by the sweep: a new
// active key, the old one inactive, the link's next rotation moved on.
func (e *env) rotated(l sweepLink, now time.Time) {
	e.t.Helper()
	k := e.userKeys(l.user)
	if len(k) != 2 || k[l.oldKey] != "Inactive" {
		e.t.Fatalf("%s: keys %v (old %s)", l.link.ID, k, l.oldKey)
	}
	got, _, err := e.store.GetLink(e.ctx, l.link.OrgID, l.link.ID)
	if err != nil {
		e.t.Fatal(err)
	}
	if got.Credentials.AccessKeyIDMasked == l.link.Credentials.AccessKeyIDMasked || !got.Rotation.NextRotationAt.After(now) {
		e.t.Fatalf("%s: link not moved: %+v %+v", l.link.ID, got.Credentials, got.Rotation)
	}
	js := e.journals(l)
	if len(js) != 1 || js[0].Reason != rotation.ReasonScheduled || js[0].Step != rotation.StepRetire || len(js[0].RequestID) < len("sweep_") || js[0].RequestID[:6] != "sweep_" {
		e.t.Fatalf("%s: journals %+v", l.link.ID, js)
	}
}

func (e *env) untouched(l sweepLink) {
	e.t.Helper()
	if k := e.userKeys(l.user); len(k) != 1 || k[l.oldKey] != "Active" {
		e.t.Fatalf("%s: keys %v", l.link.ID, k)
	}
	if js := e.journals(l); len(js) != 0 {
		e.t.Fatalf("%s: journals %+v", l.link.ID, js)
	}
}

func TestSweepRotatesDueLinks(t *testing.T) {
	e := newEnv(t)
	ok := []sweepLink{e.envLink(), e.addLink(30), e.addLink(30)}
	notDue := e.addLink(90)
	full := e.addLink(30)
	if _, err := e.admin.CreateAccessKey(e.ctx, &iam.CreateAccessKeyInput{UserName: aws.String(full.user)}); err != nil {
		t.Fatal(err)
	}
	busy := e.addLink(30)
	e.clock.Advance(31 * 24 * time.Hour)
	now := e.clock.Now()
	// Another run holds the busy link's lease.
	if err := e.store.AcquireRotationLease(e.ctx, busy.link.OrgID, busy.link.ID, "rot_other", now, now.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	deps := rotation.SweepDeps{Due: e.store, Links: e.links()}

	sum, err := e.svc.Sweep(e.ctx, now, deps)
	if err != nil {
		t.Fatal(err)
	}
	if sum.Due != 5 || sum.Started != 4 || sum.Rotated != 3 || sum.Failed != 1 || sum.Skipped != 1 || sum.Incomplete {
		t.Fatalf("summary %+v", sum)
	}
	if len(sum.Errors) != 1 || sum.Errors[0].AccountID != full.link.ID || sum.Errors[0].OrgID != full.link.OrgID ||
		sum.Errors[0].Code != rotation.CodeKeyLimit || sum.Errors[0].RotationID == "" || sum.Errors[0].Message == "" {
		t.Fatalf("errors %+v", sum.Errors)
	}
	for _, l := range ok {
		e.rotated(l, now)
	}
	e.untouched(notDue)
	e.untouched(busy)
	if js := e.journals(full); len(js) != 1 || js[0].Step != rotation.StepFailed || js[0].LastError.Code != rotation.CodeKeyLimit {
		t.Fatalf("full link's journals %+v", js)
	}

	// The next run rotates nothing twice; the failing link fails again
	// without holding up the one now free.
	if err := e.store.ReleaseRotationLease(e.ctx, busy.link.OrgID, busy.link.ID, "rot_other"); err != nil {
		t.Fatal(err)
	}
	e.clock.Advance(time.Hour)
	now = e.clock.Now()
	sum, err = e.svc.Sweep(e.ctx, now, deps)
	if err != nil {
		t.Fatal(err)
	}
	if sum.Due != 2 || sum.Rotated != 1 || sum.Failed != 1 || sum.Skipped != 0 || sum.Incomplete {
		t.Fatalf("second summary %+v", sum)
	}
	e.rotated(busy, now)
	e.untouched(notDue)
	for _, l := range ok {
		if js := e.journals(l); len(js) != 1 {
			t.Fatalf("%s rotated again: %d journals", l.link.ID, len(js))
		}
	}
}

func TestSweepFailureResumedByJournal(t *testing.T) {
	e := newEnv(t)
	a, b := e.addLink(30), e.addLink(30)
	e.clock.Advance(31 * 24 * time.Hour)
	now := e.clock.Now()
	e.faults.FailNth("IAM.CreateAccessKey", 2, nil)
	deps := rotation.SweepDeps{Due: e.store, Concurrency: 1} // links read from the rotation store

	sum, err := e.svc.Sweep(e.ctx, now, deps)
	if err != nil {
		t.Fatal(err)
	}
	if sum.Due != 3 || sum.Started != 3 || sum.Rotated != 2 || sum.Failed != 1 || len(sum.Errors) != 1 || sum.Incomplete {
		t.Fatalf("summary %+v", sum)
	}
	// The second in due order failed; its journal waits for a retry and
	// this run did not retry it.
	if sum.Errors[0].AccountID != a.link.ID {
		t.Fatalf("failed %s, want %s (due order)", sum.Errors[0].AccountID, a.link.ID)
	}
	e.rotated(e.envLink(), now)
	e.rotated(b, now)
	js := e.journals(a)
	if len(js) != 1 || js[0].Step != rotation.StepCreate || js[0].Attempts != 1 || js[0].LastError == nil {
		t.Fatalf("failed journal %+v", js)
	}
	if k := e.userKeys(a.user); len(k) != 1 {
		t.Fatalf("keys %v", k)
	}

	// Within the retry wait the link is skipped (its rotation is unfinished);
	// after it, the retirements pass of the sweep resumes the journal.
	sum, err = e.svc.Sweep(e.ctx, e.clock.Now(), deps)
	if err != nil || sum.Due != 1 || sum.Skipped != 1 || sum.Failed != 0 || sum.Retirements.Resumed != 0 {
		t.Fatalf("early summary %+v %v", sum, err)
	}
	e.clock.Advance(time.Hour)
	now = e.clock.Now()
	sum, err = e.svc.Sweep(e.ctx, now, deps)
	// (FinishRetirements counts a resumed rotation that reached its
	// grace period as waiting.)
	if err != nil || sum.Retirements.Examined != 1 || sum.Retirements.Failed != 0 || len(sum.Errors) != 0 {
		t.Fatalf("later summary %+v %v", sum, err)
	}
	e.rotated(a, now)
}

// slowVerifier makes each test of a new key take a while, as on AWS.
type slowVerifier struct {
	inner rotation.Verifier
	delay time.Duration
}

func (v slowVerifier) CheckAccessKey(ctx context.Context, region, id, secret string) (links.Identity, error) {
	time.Sleep(v.delay)
	return v.inner.CheckAccessKey(ctx, region, id, secret)
}

func TestSweepStopsBeforeDeadline(t *testing.T) {
	e := newEnv(t, func(d *rotation.Deps) { d.Verifier = slowVerifier{inner: d.Verifier, delay: time.Second} })
	extra := []sweepLink{e.addLink(30), e.addLink(30)}
	e.clock.Advance(31 * 24 * time.Hour)
	now := e.clock.Now()
	// A rotation takes over a second; one may start while 5 s are left
	// and the run has 5.5 s: the first starts, no second one does.
	deps := rotation.SweepDeps{Due: e.store, Concurrency: 1, Margin: 5 * time.Second}
	ctx, cancel := context.WithTimeout(e.ctx, 5500*time.Millisecond)
	defer cancel()
	sum, err := e.svc.Sweep(ctx, now, deps)
	if err != nil {
		t.Fatal(err)
	}
	if sum.Due != 3 || sum.Started != 1 || sum.Rotated != 1 || sum.Failed != 0 || !sum.Incomplete {
		t.Fatalf("summary %+v", sum)
	}
	e.rotated(e.envLink(), now)

	// The next run takes the rest.
	sum, err = e.svc.Sweep(e.ctx, now, deps)
	if err != nil {
		t.Fatal(err)
	}
	if sum.Due != 2 || sum.Rotated != 2 || sum.Incomplete {
		t.Fatalf("second summary %+v", sum)
	}
	for _, l := range extra {
		e.rotated(l, now)
	}

	// A limit below the links due also leaves the rest for the next run.
	e.clock.Advance(31 * 24 * time.Hour)
	now = e.clock.Now()
	sum, err = e.svc.Sweep(e.ctx, now, rotation.SweepDeps{Due: e.store, Limit: 1})
	if err != nil || sum.Due != 1 || sum.Rotated != 1 || !sum.Incomplete {
		t.Fatalf("limited summary %+v %v", sum, err)
	}
}
