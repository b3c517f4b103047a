package dynamo

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/dflow-sh/cloud-accounts/shared/fault"
	"github.com/dflow-sh/cloud-accounts/shared/ids"
	"github.com/dflow-sh/cloud-accounts/shared/links"
)

func TestLinksForSweepPagesEveryShard(t *testing.T) {
	s, _ := newStore(t)
	ctx := context.Background()
	want := map[LinkRef]bool{}
	now := time.Now().UTC()
	for i := range 10 {
		org := ids.New(ids.Org)
		l := links.Link{OrgID: org, ID: ids.New(ids.Account), Name: fmt.Sprintf("acct %d", i), Provider: "aws",
			Environments: []string{"*"}, Status: links.Healthy, Warnings: []links.Warning{}, Version: 1, CreatedAt: now, UpdatedAt: now}
		if err := s.CreateLink(ctx, l, links.Record{SecretName: "s/" + l.ID, CredKey: "k" + l.ID}); err != nil {
			t.Fatal(err)
		}
		want[LinkRef{OrgID: org, LinkID: l.ID}] = true
	}
	// Other items in the organisation's partition (claims, external id)
	// are not in the index.
	if _, err := s.ExternalID(ctx, ids.New(ids.Org), "x"); err != nil {
		t.Fatal(err)
	}

	got := map[LinkRef]bool{}
	nonEmpty := 0
	for shard := range LinkShards {
		after, pages, n := "", 0, 0
		for {
			refs, next, err := s.LinksForSweep(ctx, shard, after, 2)
			if err != nil {
				t.Fatal(err)
			}
			pages++
			for _, r := range refs {
				if got[r] {
					t.Fatalf("%v twice", r)
				}
				got[r] = true
				n++
			}
			if next == "" {
				break
			}
			if pages > 10 {
				t.Fatal("paging does not end")
			}
			after = next
		}
		if n > 0 {
			nonEmpty++
		}
	}
	if len(got) != len(want) {
		t.Fatalf("got %d links, want %d", len(got), len(want))
	}
	for r := range want {
		if !got[r] {
			t.Fatalf("%v not visited", r)
		}
	}
	if nonEmpty < 2 {
		t.Fatalf("10 links in %d shard(s)", nonEmpty)
	}

	// A cursor is only good in its own shard; shards outside the range are refused.
	for shard := range LinkShards {
		_, next, err := s.LinksForSweep(ctx, shard, "", 1)
		if err != nil {
			t.Fatal(err)
		}
		if next == "" {
			continue
		}
		other := (shard + 1) % LinkShards
		if _, _, err := s.LinksForSweep(ctx, other, next, 1); fault.KindOf(err) != fault.Invalid {
			t.Fatalf("cursor of shard %d in shard %d: %v", shard, other, err)
		}
		break
	}
	for _, bad := range []int{-1, LinkShards} {
		if _, _, err := s.LinksForSweep(ctx, bad, "", 1); fault.KindOf(err) != fault.Invalid {
			t.Fatalf("shard %d: %v", bad, err)
		}
	}
}
