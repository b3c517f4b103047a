package rotation

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/dflow-sh/cloud-accounts/shared/fault"
	"github.com/dflow-sh/cloud-accounts/shared/ids"
	"github.com/dflow-sh/cloud-accounts/shared/links"
)

// DueShards is how many partitions the link rotation index has (dynamo
// checks at compile time that its own count agrees).
const DueShards = 4

// Defaults of SweepDeps.
const (
	DefaultSweepLinks = 1000
	sweepPage         = 100
	// sweepMarginExtra is added to the test budget: a rotation started
	// later than this before the deadline might not finish.
	sweepMarginExtra = 20 * time.Second
)

// Codes the rotation sweep records.
const (
	CodeSweepInterrupted = "sweep_interrupted"
)

// DueLink is a link whose next rotation is due, as the rotation index
// lists it.
type DueLink struct {
	OrgID  string    `json:"orgId"`
	LinkID string    `json:"linkId"`
	DueAt  time.Time `json:"dueAt"`
}

// DueLister reads the rotation index (dynamo.Store): one shard's links due
// by now, earliest first, a page at a time ("" after the last page).
type DueLister interface {
	DueLinks(ctx context.Context, shard int, now time.Time, after string, limit int) ([]DueLink, string, error)
}

// LinkResolver reads a link (links.Service).
type LinkResolver interface {
	Resolve(ctx context.Context, orgID, id string) (links.Link, links.Record, error)
}

// SweepDeps are what a rotation sweep reads; zero fields take defaults.
type SweepDeps struct {
	Due DueLister
	// Links resolves each due link; the service's store when nil.
	Links LinkResolver
	// Concurrency bounds the rotations running at once (Config.SweepConcurrency).
	Concurrency int
	// Limit is the most due links one sweep reads (DefaultSweepLinks); the
	// rest wait for the next sweep.
	Limit int
	// Margin: no rotation starts once ctx's deadline is nearer than this
	// (the test budget plus 20 s, since a rotation may wait that long for
	// its new key to work).
	Margin time.Duration
}

// SweepSummary is what one rotation sweep did.
type SweepSummary struct {
	// Due links were read from the index; each one started, was skipped,
	// failed, or (when incomplete) was left for the next sweep.
	Due     int `json:"due"`
	Started int `json:"started"`
	Rotated int `json:"rotated"`
	Failed  int `json:"failed"`
	// Skipped: a rotation of the link was already running or unfinished,
	// or the link is gone, has rotation off, or is no longer due.
	Skipped int `json:"skipped"`
	// Incomplete: the sweep stopped starting rotations (its time ran out
	// or more links were due than Limit); the next sweep takes the rest.
	Incomplete bool         `json:"incomplete"`
	Errors     []SweepError `json:"errors"`
	// Retirements is the FinishRetirements pass that follows.
	Retirements Summary `json:"retirements"`
}

// SweepError is a due link the sweep could not rotate.
type SweepError struct {
	OrgID      string `json:"orgId"`
	AccountID  string `json:"accountId"`
	RotationID string `json:"rotationId,omitempty"`
	Code       string `json:"code"`
	Message    string `json:"message"`
}

type sweepResult int

const (
	sweepSkipped sweepResult = iota
	sweepRotated
	sweepFailed
)

// Sweep is the hourly scheduled rotation: it starts a "scheduled" rotation
// of every link the rotation index lists as due by now (every shard, in
// due order, at most Concurrency at once), then runs FinishRetirements.
// One link's failure is recorded in the summary (its journal has it too)
// and the sweep goes on; no link is tried twice in one sweep. A link
// already rotating is skipped. When ctx's deadline comes within Margin,
// no further rotation starts and the summary says incomplete: the links
// left stay due (nextRotationAt moves only when a rotation promotes), so
// the next sweep takes them. The error is the index's or FinishRetirements'.
func (s *Service) Sweep(ctx context.Context, now time.Time, deps SweepDeps) (SweepSummary, error) {
	if deps.Due == nil {
		return SweepSummary{}, errors.New("rotation sweep: no due-link index")
	}
	resolve := s.store.GetLink
	if deps.Links != nil {
		resolve = deps.Links.Resolve
	}
	conc := cmp.Or(max(deps.Concurrency, 0), s.cfg.SweepConcurrency)
	limit := cmp.Or(max(deps.Limit, 0), DefaultSweepLinks)
	margin := deps.Margin
	if margin <= 0 {
		margin = s.cfg.TestBudget + sweepMarginExtra
	}
	now = now.UTC()
	sum := SweepSummary{Errors: []SweepError{}}

	due, more, err := s.dueLinks(ctx, deps.Due, now, limit)
	if err != nil {
		return sum, err
	}
	sum.Due, sum.Incomplete = len(due), more

	requestID := ids.New("sweep")
	var mu sync.Mutex
	var wg sync.WaitGroup
	sem := make(chan struct{}, conc)
loop:
	for _, d := range due {
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
			sum.Incomplete = true
			break loop
		}
		if dl, ok := ctx.Deadline(); ok && time.Until(dl) < margin || ctx.Err() != nil {
			<-sem
			sum.Incomplete = true
			break
		}
		wg.Add(1)
		go func(d DueLink) {
			defer func() { <-sem; wg.Done() }()
			res, r, err := s.sweepLink(ctx, d, now, resolve, requestID)
			mu.Lock()
			defer mu.Unlock()
			if r.ID != "" {
				sum.Started++
			}
			switch res {
			case sweepRotated:
				sum.Rotated++
			case sweepSkipped:
				sum.Skipped++
			case sweepFailed:
				sum.Failed++
				e := sweepErrorOf(err, now)
				if e.Code == CodeSweepInterrupted {
					sum.Incomplete = true
				}
				sum.Errors = append(sum.Errors, SweepError{OrgID: d.OrgID, AccountID: d.LinkID, RotationID: r.ID, Code: e.Code, Message: e.Message})
				s.log.WarnContext(ctx, "scheduled rotation failed", "orgId", d.OrgID, "linkId", d.LinkID, "rotationId", r.ID, "code", e.Code, "error", errText(err))
			}
		}(d)
	}
	wg.Wait()

	ret, err := s.FinishRetirements(ctx, now)
	sum.Retirements = ret
	if err != nil {
		return sum, fmt.Errorf("rotation sweep: finish retirements: %w", err)
	}
	return sum, nil
}

// dueLinks reads up to limit due links from every shard, in due order;
// more reports that the limit left some unread.
func (s *Service) dueLinks(ctx context.Context, idx DueLister, now time.Time, limit int) ([]DueLink, bool, error) {
	var out []DueLink
	seen := map[string]bool{}
	more := false
	for shard := range DueShards {
		after := ""
		for {
			page, next, err := idx.DueLinks(ctx, shard, now, after, sweepPage)
			if err != nil {
				return nil, false, fmt.Errorf("rotation sweep: read due links of shard %d: %w", shard, err)
			}
			for _, d := range page {
				if k := d.OrgID + "/" + d.LinkID; !seen[k] {
					seen[k] = true
					out = append(out, d)
				}
			}
			if next == "" {
				break
			}
			if len(out) >= limit {
				more = true
				break
			}
			after = next
		}
	}
	// Each shard is in due order; the earliest due of all go first.
	slices.SortFunc(out, func(a, b DueLink) int {
		return cmp.Or(a.DueAt.Compare(b.DueAt), cmp.Compare(a.OrgID, b.OrgID), cmp.Compare(a.LinkID, b.LinkID))
	})
	if len(out) > limit {
		out, more = out[:limit], true
	}
	return out, more, nil
}

// sweepLink starts one due link's rotation, after checking the link
// itself: the index may lag behind a rotation that just moved it.
func (s *Service) sweepLink(ctx context.Context, d DueLink, now time.Time, resolve func(context.Context, string, string) (links.Link, links.Record, error), requestID string) (sweepResult, Rotation, error) {
	l, rec, err := resolve(ctx, d.OrgID, d.LinkID)
	if fault.KindOf(err) == fault.NotFound {
		return sweepSkipped, Rotation{}, nil
	}
	if err != nil {
		return sweepFailed, Rotation{}, err
	}
	if l.Rotation == nil || !l.Rotation.Enabled || l.Rotation.NextRotationAt == nil || l.Rotation.NextRotationAt.After(now) {
		return sweepSkipped, Rotation{}, nil
	}
	r, err := s.Start(ctx, l, rec, ReasonScheduled, requestID)
	switch {
	case fault.Is(err, CodeInProgress):
		return sweepSkipped, r, nil
	case err != nil:
		return sweepFailed, r, err
	case r.Outcome == OutcomeRotated:
		return sweepRotated, r, nil
	}
	return sweepFailed, r, fault.Conflictf(CodeStepUnknown, "the rotation stopped at step %s", r.Step)
}

func sweepErrorOf(err error, at time.Time) *Error {
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
		return &Error{Code: CodeSweepInterrupted, Message: "the sweep ran out of time during this rotation; its journal resumes it later", At: at}
	}
	return errorOf(err, at)
}

// errText is an error for a log line: a domain error's detail, never an
// unclassified error's text (it may carry anything).
func errText(err error) string {
	if e, ok := fault.As(err); ok {
		return e.Code + ": " + e.Detail
	}
	return fmt.Sprintf("%T", err)
}
