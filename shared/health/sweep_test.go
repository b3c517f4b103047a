package health_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/dflow-sh/cloud-accounts/shared/audit"
	"github.com/dflow-sh/cloud-accounts/shared/fault"
	"github.com/dflow-sh/cloud-accounts/shared/health"
	"github.com/dflow-sh/cloud-accounts/shared/links"
)

// fakeIndex spreads refs over shards and pages them by position.
type fakeIndex struct {
	shards [][]health.LinkRef
	err    error
}

func newFakeIndex(n int) *fakeIndex {
	ix := &fakeIndex{shards: make([][]health.LinkRef, health.DefaultShards)}
	for i := range n {
		s := i % health.DefaultShards
		ix.shards[s] = append(ix.shards[s], health.LinkRef{OrgID: "org_a", LinkID: fmt.Sprintf("acc_%03d", i)})
	}
	return ix
}

func (f *fakeIndex) LinksForSweep(_ context.Context, shard int, after string, limit int) ([]health.LinkRef, string, error) {
	if f.err != nil {
		return nil, "", f.err
	}
	start := 0
	if after != "" {
		fmt.Sscan(after, &start)
	}
	refs := f.shards[shard][start:]
	if len(refs) <= limit {
		return refs, "", nil
	}
	return refs[:limit], fmt.Sprint(start + limit), nil
}

// slowLinks answers every check healthy after a delay, and tracks when
// checks start.
type slowLinks struct {
	delay  time.Duration
	status map[string]string
	mu     sync.Mutex
	starts []time.Time
}

func (s *slowLinks) Get(_ context.Context, orgID, id string) (links.Link, error) {
	st := links.Healthy
	if v, ok := s.status[id]; ok {
		st = v
	}
	return links.Link{OrgID: orgID, ID: id, Status: st}, nil
}

func (s *slowLinks) Validate(ctx context.Context, orgID, id, _ string) (links.Link, error) {
	s.mu.Lock()
	s.starts = append(s.starts, time.Now())
	s.mu.Unlock()
	select {
	case <-time.After(s.delay):
	case <-ctx.Done():
		return links.Link{}, ctx.Err()
	}
	return links.Link{OrgID: orgID, ID: id, Status: links.Healthy}, nil
}

type auditLog struct {
	mu  sync.Mutex
	evs []audit.Event
}

func (a *auditLog) Record(_ context.Context, e audit.Event) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.evs = append(a.evs, e)
	return nil
}

func TestSweepStopsStartingChecksBeforeTheDeadline(t *testing.T) {
	ix := newFakeIndex(40)
	sl := &slowLinks{delay: 200 * time.Millisecond}
	svc := health.NewService(sl, ix, &auditLog{}, health.WithConcurrency(2), health.WithPageSize(4))
	ctx, cancel := context.WithTimeout(context.Background(), 2600*time.Millisecond)
	defer cancel()
	deadline, _ := ctx.Deadline()

	sum, err := svc.Sweep(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !sum.Incomplete || sum.Resume == nil {
		t.Fatalf("want incomplete with a resume hint: %+v", sum)
	}
	if sum.Checked == 0 || sum.Checked >= 40 || sum.Healthy != sum.Checked || len(sum.Errors) != 0 {
		t.Fatalf("summary: %+v", sum)
	}
	if time.Now().After(deadline) {
		t.Fatal("the sweep ran past its deadline")
	}
	for _, s := range sl.starts {
		if s.After(deadline.Add(-health.DefaultDeadlineMargin)) {
			t.Fatalf("a check started %v before the deadline", deadline.Sub(s))
		}
	}
	// The hint names the first link not started, in the shard it is in.
	r := sum.Resume
	if r.Next.LinkID == "" || ix.shards[r.Shard][indexOf(ix.shards[r.Shard], r.Next)] != r.Next {
		t.Fatalf("resume: %+v", r)
	}
}

func indexOf(refs []health.LinkRef, r health.LinkRef) int {
	for i, x := range refs {
		if x == r {
			return i
		}
	}
	return -1
}

func TestSweepPastItsDeadlineStartsNothing(t *testing.T) {
	sl := &slowLinks{}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	sum, err := health.NewService(sl, newFakeIndex(5), &auditLog{}).Sweep(ctx)
	if err != nil || !sum.Incomplete || sum.Checked != 0 || len(sl.starts) != 0 {
		t.Fatalf("%+v %v (started %d)", sum, err, len(sl.starts))
	}
	if sum.Resume == nil || sum.Resume.Shard != 0 || sum.Resume.Next.LinkID != "acc_000" {
		t.Fatalf("resume: %+v", sum.Resume)
	}
}

func TestSweepAuditsOnlyChangesAndSkipsCompromised(t *testing.T) {
	sl := &slowLinks{status: map[string]string{"acc_001": links.Unhealthy, "acc_002": links.Compromised}}
	al := &auditLog{}
	now := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	sum, err := health.NewService(sl, newFakeIndex(4), al, health.WithNow(func() time.Time { return now })).Sweep(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if sum.Checked != 3 || sum.Healthy != 3 || sum.Changed != 1 || sum.Skipped != 1 || sum.Incomplete || !sum.StartedAt.Equal(now) {
		t.Fatalf("summary: %+v", sum)
	}
	if len(al.evs) != 1 || al.evs[0].Target != "/v1/orgs/org_a/accounts/acc_001" || al.evs[0].Code != links.Healthy || !al.evs[0].At.Equal(now) {
		t.Fatalf("audit: %+v", al.evs)
	}
}

// failingLinks fails Validate for some links.
type failingLinks struct {
	slowLinks
	fail map[string]error
}

func (f *failingLinks) Validate(ctx context.Context, orgID, id, rid string) (links.Link, error) {
	if err := f.fail[id]; err != nil {
		return links.Link{}, err
	}
	return f.slowLinks.Validate(ctx, orgID, id, rid)
}

func TestSweepReportsFailuresWithoutCauses(t *testing.T) {
	fl := &failingLinks{fail: map[string]error{
		"acc_000": fault.Unavailablef(1, "secrets_unavailable", "the secret store is unavailable; try again"),
		"acc_001": fmt.Errorf("wrapped: %w", errors.New("dial tcp 10.0.0.1: secret internals")),
		"acc_002": fault.NotFoundf("account_not_found", "no such linked account"),
	}}
	sum, err := health.NewService(fl, newFakeIndex(5), &auditLog{}, health.WithConcurrency(3)).Sweep(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if sum.Checked != 4 || sum.Healthy != 2 || sum.Skipped != 1 || len(sum.Errors) != 2 {
		t.Fatalf("summary: %+v", sum)
	}
	byID := map[string]health.LinkFailure{}
	for _, f := range sum.Errors {
		byID[f.AccountID] = f
	}
	if byID["acc_000"].Code != "secrets_unavailable" || byID["acc_001"].Code != "internal_error" || byID["acc_001"].Message != "the check failed unexpectedly" {
		t.Fatalf("errors: %+v", sum.Errors)
	}
}

func TestSweepIndexFailureEndsTheSweep(t *testing.T) {
	ix := newFakeIndex(3)
	ix.err = errors.New("query failed")
	sum, err := health.NewService(&slowLinks{}, ix, &auditLog{}).Sweep(context.Background())
	if err == nil || !sum.Incomplete || sum.Resume == nil || sum.Resume.Shard != 0 {
		t.Fatalf("%+v %v", sum, err)
	}
}
