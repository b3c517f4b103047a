package dynamo

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/dflow-sh/cloud-accounts/shared/fault"
	"github.com/dflow-sh/cloud-accounts/shared/ids"
	"github.com/dflow-sh/cloud-accounts/shared/links"
	"github.com/dflow-sh/cloud-accounts/shared/rotation"
)

func dueTestLink(t *testing.T, s *Store, org string, i int, rot *links.Rotation) links.Link {
	t.Helper()
	now := time.Now().UTC()
	l := links.Link{OrgID: org, ID: ids.New(ids.Account), Name: fmt.Sprintf("link %d", i), Provider: "aws", Environments: []string{"*"},
		DefaultRegion: "us-east-1", Credentials: links.CredentialsInfo{Type: links.TypeAccessKey, AccessKeyIDMasked: "AKIA…AAAA"},
		Rotation: rot, Status: links.Healthy, Warnings: []links.Warning{}, Version: 1, CreatedAt: now, UpdatedAt: now}
	if err := s.CreateLink(context.Background(), l, links.Record{SecretName: "s", CredKey: fmt.Sprintf("key-%d", i)}); err != nil {
		t.Fatal(err)
	}
	return l
}

// allDue reads every shard page by page (limit per page).
func allDue(t *testing.T, s *Store, now time.Time, limit int) (map[string]rotation.DueLink, int) {
	t.Helper()
	ctx := context.Background()
	got := map[string]rotation.DueLink{}
	pages := 0
	for shard := range rotation.DueShards {
		after := ""
		var last time.Time
		for {
			page, next, err := s.DueLinks(ctx, shard, now, after, limit)
			if err != nil {
				t.Fatal(err)
			}
			pages++
			if len(page) > limit {
				t.Fatalf("page of %d > limit %d", len(page), limit)
			}
			for _, d := range page {
				if d.DueAt.Before(last) {
					t.Fatalf("shard %d out of due order: %v after %v", shard, d.DueAt, last)
				}
				last = d.DueAt
				if _, dup := got[d.LinkID]; dup {
					t.Fatalf("%s listed twice", d.LinkID)
				}
				got[d.LinkID] = d
			}
			if next == "" {
				break
			}
			after = next
		}
	}
	return got, pages
}

func TestDueLinks(t *testing.T) {
	s, _ := newStore(t)
	ctx := context.Background()
	org := ids.New(ids.Org)
	now := time.Now().UTC().Truncate(time.Microsecond)
	at := func(d time.Duration) *links.Rotation {
		next := now.Add(d)
		return &links.Rotation{Enabled: true, MaxAgeDays: 30, NextRotationAt: &next}
	}
	due := map[string]links.Link{}
	for i := range 9 {
		l := dueTestLink(t, s, org, i, at(-time.Duration(i+1)*time.Hour))
		due[l.ID] = l
	}
	exact := dueTestLink(t, s, org, 20, at(0)) // due at now exactly: listed
	due[exact.ID] = exact
	later := dueTestLink(t, s, org, 30, at(time.Nanosecond))
	dueTestLink(t, s, org, 31, at(24*time.Hour))
	dueTestLink(t, s, org, 32, &links.Rotation{Enabled: false, MaxAgeDays: 30})
	dueTestLink(t, s, org, 33, nil)

	for _, limit := range []int{1, 3, 100} {
		got, pages := allDue(t, s, now, limit)
		if len(got) != len(due) {
			t.Fatalf("limit %d: %d due, want %d: %v", limit, len(got), len(due), got)
		}
		for id, l := range due {
			d, ok := got[id]
			if !ok || d.OrgID != org || !d.DueAt.Equal(*l.Rotation.NextRotationAt) {
				t.Fatalf("limit %d: %s: %+v %v", limit, id, d, ok)
			}
		}
		if limit == 1 && pages < len(due) {
			t.Fatalf("limit 1 read %d in %d pages", len(due), pages)
		}
	}
	// A nanosecond later the next link falls due too.
	if got, _ := allDue(t, s, now.Add(time.Nanosecond), 100); len(got) != len(due)+1 || got[later.ID].LinkID == "" {
		t.Fatalf("a nanosecond later: %d", len(got))
	}
	// Before any is due, none is listed.
	if got, _ := allDue(t, s, now.Add(-48*time.Hour), 100); len(got) != 0 {
		t.Fatalf("early: %v", got)
	}

	// Moving nextRotationAt (a promoted rotation) takes a link out.
	l := due[exact.ID]
	l2 := l
	l2.Rotation = at(30 * 24 * time.Hour)
	l2.Version++
	if err := s.UpdateLink(ctx, l2, l); err != nil {
		t.Fatal(err)
	}
	if got, _ := allDue(t, s, now, 100); len(got) != len(due)-1 || got[exact.ID].LinkID != "" {
		t.Fatalf("after update: %d", len(got))
	}

	if _, _, err := s.DueLinks(ctx, rotation.DueShards, now, "", 10); fault.KindOf(err) != fault.Invalid {
		t.Fatalf("bad shard: %v", err)
	}
	if _, _, err := s.DueLinks(ctx, 0, now, `{"GSI2PK":"ROTATION#1"}`, 10); fault.KindOf(err) != fault.Invalid {
		t.Fatalf("cursor of another shard: %v", err)
	}
}
