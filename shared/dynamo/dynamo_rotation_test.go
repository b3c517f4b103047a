package dynamo

import (
	"context"
	"testing"
	"time"

	"github.com/dflow-sh/cloud-accounts/shared/fault"
	"github.com/dflow-sh/cloud-accounts/shared/ids"
	"github.com/dflow-sh/cloud-accounts/shared/links"
	"github.com/dflow-sh/cloud-accounts/shared/rotation"
	"github.com/dflow-sh/cloud-accounts/shared/tenancy"
)

func TestRotationLease(t *testing.T) {
	s, _ := newStore(t)
	ctx := context.Background()
	org, link := ids.New(ids.Org), ids.New(ids.Account)
	now := time.Now()
	if err := s.AcquireRotationLease(ctx, org, link, "rot_a", now, now.Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	if err := s.AcquireRotationLease(ctx, org, link, "rot_a", now, now.Add(time.Minute)); err != nil {
		t.Fatalf("re-entrant: %v", err)
	}
	if err := s.AcquireRotationLease(ctx, org, link, "rot_b", now, now.Add(time.Minute)); !fault.Is(err, rotation.CodeInProgress) {
		t.Fatalf("held: %v", err)
	}
	if err := s.AcquireRotationLease(ctx, org, ids.New(ids.Account), "rot_b", now, now.Add(time.Minute)); err != nil {
		t.Fatalf("other link: %v", err)
	}
	// Another rotation's release leaves the lease alone.
	if err := s.ReleaseRotationLease(ctx, org, link, "rot_b"); err != nil {
		t.Fatal(err)
	}
	if err := s.AcquireRotationLease(ctx, org, link, "rot_b", now, now.Add(time.Minute)); err == nil {
		t.Fatal("released by a stranger")
	}
	// An expired lease is taken over.
	later := now.Add(2 * time.Minute)
	if err := s.AcquireRotationLease(ctx, org, link, "rot_b", later, later.Add(time.Minute)); err != nil {
		t.Fatalf("expired: %v", err)
	}
	if err := s.ReleaseRotationLease(ctx, org, link, "rot_b"); err != nil {
		t.Fatal(err)
	}
	if err := s.AcquireRotationLease(ctx, org, link, "rot_c", now, now.Add(time.Minute)); err != nil {
		t.Fatalf("after release: %v", err)
	}
}

func TestRotationJournal(t *testing.T) {
	s, _ := newStore(t)
	ctx := context.Background()
	org, link := ids.New(ids.Org), ids.New(ids.Account)
	t0 := time.Now().UTC().Truncate(time.Millisecond)
	var made []rotation.Rotation
	for i := range 3 {
		at := t0.Add(time.Duration(i) * time.Second)
		r := rotation.Rotation{ID: rotation.NewID(at), OrgID: org, LinkID: link, Reason: rotation.ReasonManual,
			Step: rotation.StepCreate, Token: "tok", StartedAt: at, NextAttemptAt: at, Warnings: []links.Warning{}, Version: 1}
		if err := s.CreateRotation(ctx, r); err != nil {
			t.Fatal(err)
		}
		made = append(made, r)
	}
	if err := s.CreateRotation(ctx, made[0]); !fault.Is(err, "rotation_exists") {
		t.Fatalf("duplicate: %v", err)
	}
	list, next, err := s.ListRotations(ctx, org, link, tenancy.Page{Limit: 2})
	if err != nil || len(list) != 2 || list[0].ID != made[2].ID || list[1].ID != made[1].ID || next == "" {
		t.Fatalf("newest first: %v %q %v", list, next, err)
	}
	rest, _, err := s.ListRotations(ctx, org, link, tenancy.Page{Limit: 2, After: next})
	if err != nil || len(rest) != 1 || rest[0].ID != made[0].ID {
		t.Fatalf("page 2: %v %v", rest, err)
	}

	// Saving is conditional on the version.
	r := made[0]
	r.Step, r.Version = rotation.StepDone, 2
	if err := s.SaveRotation(ctx, r, 1); err != nil {
		t.Fatal(err)
	}
	if err := s.SaveRotation(ctx, r, 1); !fault.Is(err, rotation.CodeStoreConflict) {
		t.Fatalf("stale save: %v", err)
	}
	got, err := s.GetRotation(ctx, org, link, r.ID)
	if err != nil || got.Step != rotation.StepDone || got.OrgID != org {
		t.Fatalf("get: %+v %v", got, err)
	}
	if _, err := s.GetRotation(ctx, org, link, "rot_none"); !fault.Is(err, rotation.CodeNotFound) {
		t.Fatal(err)
	}
	// The index holds unfinished journals due by now.
	due, err := s.DueRotations(ctx, t0.Add(1500*time.Millisecond), 10)
	if err != nil || len(due) != 1 || due[0].ID != made[1].ID {
		t.Fatalf("due: %v %v", due, err)
	}
	due, _ = s.DueRotations(ctx, t0.Add(time.Hour), 10)
	if len(due) != 2 {
		t.Fatalf("due later: %d", len(due))
	}
}

func TestUpdateRotatedLink(t *testing.T) {
	s, _ := newStore(t)
	ctx := context.Background()
	now := time.Now().UTC()
	next := now.AddDate(0, 0, 30)
	l := links.Link{OrgID: ids.New(ids.Org), ID: ids.New(ids.Account), Name: "prod", Provider: "aws", Environments: []string{"*"},
		DefaultRegion: "us-east-1", Credentials: links.CredentialsInfo{Type: links.TypeAccessKey, AccessKeyIDMasked: "AKIA…AAAA"},
		KeyCreatedAt: &now, Rotation: &links.Rotation{Enabled: true, MaxAgeDays: 30, NextRotationAt: &next},
		Status: links.Healthy, Warnings: []links.Warning{}, Version: 1, CreatedAt: now, UpdatedAt: now}
	rec := links.Record{SecretName: "s", CredKey: "key-old"}
	if err := s.CreateLink(ctx, l, rec); err != nil {
		t.Fatal(err)
	}
	l2 := l
	later := now.Add(time.Hour)
	next2 := later.AddDate(0, 0, 30)
	l2.Credentials.AccessKeyIDMasked = "AKIA…BBBB"
	l2.KeyCreatedAt = &later
	l2.Rotation = &links.Rotation{Enabled: true, MaxAgeDays: 30, NextRotationAt: &next2, LastRotatedAt: &later}
	l2.Version, l2.UpdatedAt = 2, later
	rec2 := links.Record{SecretName: "s", CredKey: "key-new"}
	if err := s.UpdateRotatedLink(ctx, l2, l, rec2, rec); err != nil {
		t.Fatal(err)
	}
	if err := s.UpdateRotatedLink(ctx, l2, l, rec2, rec); !fault.Is(err, "concurrent_update") {
		t.Fatalf("stale: %v", err)
	}
	got, gotRec, err := s.GetLink(ctx, l.OrgID, l.ID)
	if err != nil || got.Credentials.AccessKeyIDMasked != "AKIA…BBBB" || gotRec.CredKey != "key-new" || got.Version != 2 ||
		!got.Rotation.NextRotationAt.Equal(next2) || got.Name != "prod" || got.Status != links.Healthy {
		t.Fatalf("%+v %+v %v", got, gotRec, err)
	}
	_, oldTaken, _ := s.Taken(ctx, l.OrgID, "x", "key-old")
	_, newTaken, _ := s.Taken(ctx, l.OrgID, "x", "key-new")
	if oldTaken || !newTaken {
		t.Fatalf("claims old %v new %v", oldTaken, newTaken)
	}
}
