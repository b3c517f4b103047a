package rotation_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"

	"github.com/dflow-sh/cloud-accounts/shared/awsauth"
	"github.com/dflow-sh/cloud-accounts/shared/fault"
	"github.com/dflow-sh/cloud-accounts/shared/links"
	"github.com/dflow-sh/cloud-accounts/shared/motoserver"
	"github.com/dflow-sh/cloud-accounts/shared/rotation"
	"github.com/dflow-sh/cloud-accounts/shared/sdkfault"
	"github.com/dflow-sh/cloud-accounts/shared/vault"
)

func TestStartRotatesThenSweepDeletesOldKey(t *testing.T) {
	e := newEnv(t)
	r, err := e.svc.Start(e.ctx, e.link, e.rec, rotation.ReasonManual, "req-2")
	if err != nil {
		t.Fatal(err)
	}
	if r.Step != rotation.StepRetire || r.Outcome != rotation.OutcomeRotated || r.RetireAfter == nil || r.PromotedAt == nil {
		t.Fatalf("after Start: step %s outcome %s", r.Step, r.Outcome)
	}
	newKey := e.currentWorks()
	if newKey == e.oldKey {
		t.Fatal("AWSCURRENT still holds the old key")
	}
	if st := e.stages(); !slices.Contains(st[r.PendingVersionID], vault.StageCurrent) || slices.Contains(st[r.PendingVersionID], vault.StagePending) || !slices.Contains(st[r.OldVersionID], vault.StagePrevious) {
		t.Fatalf("stages %v", st)
	}
	if k := e.keys(); len(k) != 2 || k[e.oldKey] != "Inactive" || k[newKey] != "Active" {
		t.Fatalf("keys %v", k)
	}
	if r.NewKeyMasked != links.MaskKeyID(newKey) || r.OldKeyMasked != links.MaskKeyID(e.oldKey) {
		t.Fatalf("masked keys %s %s", r.NewKeyMasked, r.OldKeyMasked)
	}
	l, rec := e.getLink()
	if l.Credentials.AccessKeyIDMasked != links.MaskKeyID(newKey) || !l.KeyCreatedAt.Equal(*r.PromotedAt) ||
		l.Rotation.LastRotatedAt == nil || !l.Rotation.NextRotationAt.Equal(r.PromotedAt.AddDate(0, 0, 30)) || l.Version != e.link.Version+1 {
		t.Fatalf("link not moved: %+v %+v", l.Credentials, l.Rotation)
	}
	if rec.CredKey != rotation.KeyRef(newKey) {
		t.Fatal("credKey claim did not move")
	}
	// The claim item moved: the new key counts as linked, the old one not.
	_, newTaken, _ := e.store.Taken(e.ctx, e.link.OrgID, "x", rotation.KeyRef(newKey))
	_, oldTaken, _ := e.store.Taken(e.ctx, e.link.OrgID, "x", e.rec.CredKey)
	if !newTaken || oldTaken {
		t.Fatalf("claims: new %v old %v", newTaken, oldTaken)
	}

	// Within the grace period the sweep leaves the old key alone.
	sum, err := e.svc.FinishRetirements(e.ctx, e.clock.Now())
	if err != nil || sum.Retired != 0 || len(e.keys()) != 2 {
		t.Fatalf("early sweep: %+v %v", sum, err)
	}
	e.clock.Advance(rotation.DefaultGrace + time.Hour)
	sum, err = e.svc.FinishRetirements(e.ctx, e.clock.Now())
	if err != nil || sum.Retired != 1 || len(sum.Errors) != 0 {
		t.Fatalf("sweep: %+v %v", sum, err)
	}
	if k := e.keys(); len(k) != 1 || k[newKey] != "Active" {
		t.Fatalf("keys after sweep %v", k)
	}
	got, err := e.svc.Get(e.ctx, e.link.OrgID, e.link.ID, r.ID)
	if err != nil || got.Step != rotation.StepDone || got.OldKeyDeletedAt == nil || len(got.Warnings) != 0 {
		t.Fatalf("journal %+v %v", got, err)
	}
	// Finished journals leave the index.
	if sum, _ := e.svc.FinishRetirements(e.ctx, e.clock.Now()); sum.Examined != 0 {
		t.Fatalf("finished journal still swept: %+v", sum)
	}
	list, _, err := e.svc.List(e.ctx, e.link.OrgID, e.link.ID, tenancyPage(10))
	if err != nil || len(list) != 1 || list[0].ID != r.ID {
		t.Fatalf("list %v %v", list, err)
	}
	e.currentWorks()
}

func TestOldKeyUsedAfterPromotionWarns(t *testing.T) {
	e := newEnv(t)
	b, _, _ := e.vault.GetVersion(e.ctx, e.rec.SecretName, vault.StageCurrent)
	old, _ := links.ParseSecret(b)
	r, err := e.svc.Start(e.ctx, e.link, e.rec, rotation.ReasonScheduled, "")
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(1100 * time.Millisecond) // moto keeps last use to the second
	// Something else still uses the old key (moto lets inactive keys sign).
	if _, err := e.checker.CheckAccessKey(e.ctx, awsauth.AccessKey{ID: old.AccessKeyID, Secret: old.SecretAccessKey}); err != nil {
		t.Fatal(err)
	}
	e.clock.Advance(25 * time.Hour)
	if sum, err := e.svc.FinishRetirements(e.ctx, e.clock.Now()); err != nil || sum.Retired != 1 {
		t.Fatalf("sweep %+v %v", sum, err)
	}
	got, _ := e.svc.Get(e.ctx, e.link.OrgID, e.link.ID, r.ID)
	if len(got.Warnings) != 1 || got.Warnings[0].Code != rotation.CodeOldKeyUsed {
		t.Fatalf("journal warnings %v", got.Warnings)
	}
	l, _ := e.getLink()
	if len(l.Warnings) != 1 || l.Warnings[0].Code != rotation.CodeOldKeyUsed {
		t.Fatalf("link warnings %v", l.Warnings)
	}
	if _, ok := e.keys()[old.AccessKeyID]; ok {
		t.Fatal("old key not deleted")
	}
}

// blockingVerifier holds the first test of a new key until released.
type blockingVerifier struct {
	inner   rotation.Verifier
	started chan struct{}
	release chan struct{}
}

func (b *blockingVerifier) CheckAccessKey(ctx context.Context, region, id, secret string) (links.Identity, error) {
	select {
	case b.started <- struct{}{}:
		<-b.release
	default:
	}
	return b.inner.CheckAccessKey(ctx, region, id, secret)
}

func TestConcurrentStartsRunOne(t *testing.T) {
	bv := &blockingVerifier{started: make(chan struct{}), release: make(chan struct{})}
	e := newEnv(t, func(d *rotation.Deps) { bv.inner = d.Verifier; d.Verifier = bv })
	done := make(chan error, 1)
	go func() {
		_, err := e.svc.Start(e.ctx, e.link, e.rec, rotation.ReasonManual, "a")
		done <- err
	}()
	<-bv.started
	_, err := e.svc.Start(e.ctx, e.link, e.rec, rotation.ReasonManual, "b")
	if !fault.Is(err, rotation.CodeInProgress) {
		t.Fatalf("second Start: %v", err)
	}
	close(bv.release)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if k := e.keys(); len(k) != 2 {
		t.Fatalf("keys %v", k)
	}
	list, _, _ := e.svc.List(e.ctx, e.link.OrgID, e.link.ID, tenancyPage(10))
	if len(list) != 1 {
		t.Fatalf("%d journals", len(list))
	}
}

func TestKeyLimit(t *testing.T) {
	t.Run("another active key: nothing touched", func(t *testing.T) {
		e := newEnv(t)
		other := e.addKey(true)
		before := e.stages()
		r, err := e.svc.Start(e.ctx, e.link, e.rec, rotation.ReasonManual, "")
		if !fault.Is(err, rotation.CodeKeyLimit) || r.Step != rotation.StepFailed || r.LastError.Code != rotation.CodeKeyLimit {
			t.Fatalf("Start: %v, step %s", err, r.Step)
		}
		if k := e.keys(); len(k) != 2 || k[other] != "Active" || k[e.oldKey] != "Active" {
			t.Fatalf("keys %v", k)
		}
		if after := e.stages(); len(after) != len(before) {
			t.Fatalf("stages %v → %v", before, after)
		}
		if e.currentWorks() != e.oldKey {
			t.Fatal("current moved")
		}
	})
	t.Run("an inactive key dFlow did not retire: nothing touched", func(t *testing.T) {
		e := newEnv(t)
		other := e.addKey(false)
		_, err := e.svc.Start(e.ctx, e.link, e.rec, rotation.ReasonManual, "")
		if !fault.Is(err, rotation.CodeKeyLimit) {
			t.Fatalf("Start: %v", err)
		}
		if k := e.keys(); len(k) != 2 || k[other] != "Inactive" {
			t.Fatalf("keys %v", k)
		}
	})
	t.Run("the inactive key dFlow retired is deleted", func(t *testing.T) {
		e := newEnv(t)
		if _, err := e.svc.Start(e.ctx, e.link, e.rec, rotation.ReasonManual, ""); err != nil {
			t.Fatal(err)
		}
		first := e.currentWorks()
		l, rec := e.getLink()
		r, err := e.svc.Start(e.ctx, l, rec, rotation.ReasonManual, "")
		if err != nil || r.Step != rotation.StepRetire {
			t.Fatalf("second rotation: %v %s", err, r.Step)
		}
		second := e.currentWorks()
		if k := e.keys(); len(k) != 2 || k[first] != "Inactive" || k[second] != "Active" {
			t.Fatalf("keys %v (old %s)", k, e.oldKey)
		}
		// The first journal's retirement finds its key gone and finishes.
		// One link's journals take turns (the lease): a second sweep may
		// be needed.
		e.clock.Advance(25 * time.Hour)
		retired := 0
		for range 2 {
			sum, err := e.svc.FinishRetirements(e.ctx, e.clock.Now())
			if err != nil || len(sum.Errors) != 0 {
				t.Fatalf("sweep %+v %v", sum, err)
			}
			retired += sum.Retired
		}
		if retired != 2 {
			t.Fatalf("retired %d", retired)
		}
		if k := e.keys(); len(k) != 1 || k[second] != "Active" {
			t.Fatalf("keys %v", k)
		}
	})
}

func TestLeak(t *testing.T) {
	t.Run("new key: old one deleted at once", func(t *testing.T) {
		e := newEnv(t)
		r, err := e.svc.Start(e.ctx, e.link, e.rec, rotation.ReasonLeak, "")
		if err != nil || r.Step != rotation.StepDone || r.Outcome != rotation.OutcomeRotated {
			t.Fatalf("leak: %v %s", err, r.Step)
		}
		cur := e.currentWorks()
		if k := e.keys(); len(k) != 1 || k[cur] != "Active" {
			t.Fatalf("keys %v", k)
		}
	})
	t.Run("no new key: old one deactivated, link compromised", func(t *testing.T) {
		e := newEnv(t)
		other := e.addKey(true)
		r, err := e.svc.Start(e.ctx, e.link, e.rec, rotation.ReasonLeak, "")
		if !fault.Is(err, rotation.CodeKeyLimit) || r.Outcome != rotation.OutcomeCompromised || r.Step != rotation.StepFailed {
			t.Fatalf("leak: %v %+v", err, r)
		}
		if k := e.keys(); k[e.oldKey] != "Inactive" || k[other] != "Active" || len(k) != 2 {
			t.Fatalf("keys %v", k)
		}
	})
}

// Each AWS call of a rotation fails in turn: AWSCURRENT keeps working,
// and Resume (or Start again, when no journal was written) completes; a
// Rollback of an unpromoted rotation leaves no key behind.
func TestFaultAtEachCall(t *testing.T) {
	base := newEnv(t)
	if _, err := base.svc.Start(base.ctx, base.link, base.rec, rotation.ReasonManual, ""); err != nil {
		t.Fatal(err)
	}
	calls := sdkfault.Occurrences(base.faults.Calls())
	if len(calls) < 10 {
		t.Fatalf("only %d calls recorded: %v", len(calls), calls)
	}
	for _, oc := range calls {
		for _, mode := range []string{"resume", "rollback"} {
			t.Run(oc.String()+"/"+mode, func(t *testing.T) {
				e := newEnv(t)
				e.faults.FailNth(oc.Call, oc.Nth, nil)
				r, err := e.svc.Start(e.ctx, e.link, e.rec, rotation.ReasonManual, "")
				e.faults.Reset()
				e.currentWorks()
				if err == nil && r.Step != rotation.StepRetire {
					t.Fatalf("no error but step %s", r.Step)
				}
				if err != nil && strings.Contains(err.Error(), "wJalr") {
					t.Fatal("an error carries a secret")
				}
				if mode == "rollback" && r.ID != "" && r.Pending() {
					rb, err := e.svc.Rollback(e.ctx, e.link.OrgID, e.link.ID, r.ID)
					if err != nil || rb.Step != rotation.StepRolledBack {
						t.Fatalf("rollback: %v %s", err, rb.Step)
					}
					if k := e.keys(); len(k) != 1 || k[e.oldKey] != "Active" {
						t.Fatalf("keys after rollback %v", k)
					}
					for v, st := range e.stages() {
						if slices.Contains(st, vault.StagePending) {
							t.Fatalf("version %s still AWSPENDING", v)
						}
					}
					if e.currentWorks() != e.oldKey {
						t.Fatal("current moved")
					}
					return
				}
				switch {
				case r.ID == "":
					r, err = e.svc.Start(e.ctx, e.link, e.rec, rotation.ReasonManual, "")
				default:
					r, err = e.svc.Resume(e.ctx, e.link.OrgID, e.link.ID, r.ID)
				}
				if err != nil || r.Step != rotation.StepRetire {
					t.Fatalf("finish: %v, step %s", err, r.Step)
				}
				cur := e.currentWorks()
				if k := e.keys(); len(k) != 2 || k[cur] != "Active" || k[e.oldKey] != "Inactive" {
					t.Fatalf("keys %v", k)
				}
				l, rec := e.getLink()
				if rec.CredKey != rotation.KeyRef(cur) || l.Credentials.AccessKeyIDMasked != links.MaskKeyID(cur) {
					t.Fatal("link metadata not moved")
				}
			})
		}
	}
}

func TestSecretsManagerSteps(t *testing.T) {
	e := newEnv(t)
	token := vault.RequestToken("sm-event", e.rec.SecretName)
	sm := secretsmanager.NewFromConfig(motoserver.TestConfig(t))
	d, err := sm.DescribeSecret(e.ctx, &secretsmanager.DescribeSecretInput{SecretId: aws.String(e.rec.SecretName)})
	if err != nil {
		t.Fatal(err)
	}
	arn := aws.ToString(d.ARN)
	for _, step := range []struct {
		name, id, want string
	}{
		{rotation.SMCreateSecret, e.rec.SecretName, rotation.StepTest},
		{rotation.SMSetSecret, arn, rotation.StepTest},
		{rotation.SMTestSecret, arn, rotation.StepPromote},
		{rotation.SMFinishSecret, arn, rotation.StepRetire},
	} {
		for i := range 2 {
			r, err := e.svc.HandleSecretsManagerStep(e.ctx, step.id, token, step.name)
			if err != nil || r.Step != step.want {
				t.Fatalf("%s #%d: %v, step %s", step.name, i+1, err, r.Step)
			}
			switch step.name {
			case rotation.SMCreateSecret:
				if st := e.stages(); !slices.Contains(st[token], vault.StagePending) {
					t.Fatalf("stages %v", st)
				}
				if k := e.keys(); len(k) != 2 {
					t.Fatalf("keys %v", k)
				}
				if e.currentWorks() != e.oldKey {
					t.Fatal("current moved before finishSecret")
				}
			}
		}
	}
	if st := e.stages(); !slices.Contains(st[token], vault.StageCurrent) {
		t.Fatalf("stages %v", st)
	}
	cur := e.currentWorks()
	if k := e.keys(); len(k) != 2 || k[e.oldKey] != "Inactive" || k[cur] != "Active" {
		t.Fatalf("keys %v", k)
	}
	if _, err := e.svc.HandleSecretsManagerStep(e.ctx, "dflow/other/thing", token, rotation.SMCreateSecret); !fault.Is(err, rotation.CodeSecretUnknown) {
		t.Fatalf("foreign secret: %v", err)
	}
}

func TestStartRefusesRoleLinks(t *testing.T) {
	svc := rotation.NewService(rotation.Deps{})
	_, err := svc.Start(context.Background(), links.Link{Credentials: links.CredentialsInfo{Type: links.TypeAssumeRole}}, links.Record{}, rotation.ReasonManual, "")
	if !fault.Is(err, rotation.CodeNotAccessKey) {
		t.Fatal(err)
	}
}

func TestSecretsRedact(t *testing.T) {
	c := rotation.Credentials{AccessKeyID: "AKIAABCDEFGHIJKLMNOP", SecretAccessKey: "s3cr3t-value"}
	k := rotation.NewKey{ID: "AKIAABCDEFGHIJKLMNOP", Secret: "s3cr3t-value"}
	for _, s := range []string{fmt.Sprint(c), fmt.Sprintf("%+v %#v %v", c, k, &k), fmt.Sprintf("%s %d", c, k)} {
		if strings.Contains(s, "s3cr3t") || strings.Contains(s, "AKIA") {
			t.Fatalf("leaked: %s", s)
		}
	}
}

// Each call of the sweep's retirement fails in turn: the journal records
// the error, the sweep goes on, and the next sweep deletes the old key.
func TestSweepFaultAtEachCall(t *testing.T) {
	prepare := func(t *testing.T) *env {
		e := newEnv(t)
		if _, err := e.svc.Start(e.ctx, e.link, e.rec, rotation.ReasonManual, ""); err != nil {
			t.Fatal(err)
		}
		e.clock.Advance(25 * time.Hour)
		e.faults.Reset()
		return e
	}
	base := prepare(t)
	if sum, err := base.svc.FinishRetirements(base.ctx, base.clock.Now()); err != nil || sum.Retired != 1 {
		t.Fatalf("%+v %v", sum, err)
	}
	for _, oc := range sdkfault.Occurrences(base.faults.Calls()) {
		t.Run(oc.String(), func(t *testing.T) {
			e := prepare(t)
			e.faults.FailNth(oc.Call, oc.Nth, nil)
			sum, err := e.svc.FinishRetirements(e.ctx, e.clock.Now())
			e.faults.Reset()
			if err == nil && sum.Retired == 1 {
				return // a best-effort call (the lease release)
			}
			e.currentWorks()
			if err == nil && len(sum.Errors) != 1 {
				t.Fatalf("item error not reported: %+v", sum)
			}
			// The failed run pushed the journal back; the next sweep is later.
			e.clock.Advance(24 * time.Hour)
			if sum, err := e.svc.FinishRetirements(e.ctx, e.clock.Now()); err != nil || sum.Retired != 1 {
				t.Fatalf("second sweep %+v %v", sum, err)
			}
			if k := e.keys(); len(k) != 1 {
				t.Fatalf("keys %v", k)
			}
		})
	}
}
