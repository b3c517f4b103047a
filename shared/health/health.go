// Package health is the daily health sweep of linked accounts: every link is
// checked again with AWS (STS for keys; for roles, assuming the role and
// confirming it still requires the organisation's external ID) through
// links.Service.Validate, which records the outcome as the link's status.
// Each change of status is audited.
//
// A sweep that runs out of time stops starting checks shortly before its
// deadline and reports itself incomplete with where it stopped. The next run
// starts over from the first shard: for a daily sweep, re-checking some links
// early is cheaper than keeping a cursor between runs.
package health

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/dflow-sh/cloud-accounts/shared/audit"
	"github.com/dflow-sh/cloud-accounts/shared/fault"
	"github.com/dflow-sh/cloud-accounts/shared/ids"
	"github.com/dflow-sh/cloud-accounts/shared/links"
)

// Audit event fields of a status change.
const (
	ActorID = "system:health-sweep"
	Action  = "accounts.health"
)

// DefaultShards is how many index partitions links are spread over; the
// dynamo adapter checks at compile time that it matches its own count.
const DefaultShards = 4

// Defaults of the options.
const (
	DefaultConcurrency    = 8
	DefaultPageSize       = 100
	DefaultDeadlineMargin = 2 * time.Second
	// MaxErrors bounds Summary.Errors: a systemic outage fails every link,
	// and the summary must stay small enough to log and return.
	MaxErrors = 100
)

// LinkRef names a link in the sweep index.
type LinkRef struct {
	OrgID  string `json:"orgId"`
	LinkID string `json:"accountId"`
}

// Links checks and reads links: links.Service.
type Links interface {
	Validate(ctx context.Context, orgID, id, requestID string) (links.Link, error)
	Get(ctx context.Context, orgID, id string) (links.Link, error)
}

// Index pages through the links of one index shard, in a stable order;
// next is "" after the last page.
type Index interface {
	LinksForSweep(ctx context.Context, shard int, after string, limit int) (refs []LinkRef, next string, err error)
}

// Auditor writes audit events: the dynamo store.
type Auditor interface {
	Record(ctx context.Context, e audit.Event) error
}

// LinkFailure is a link the sweep could not check.
type LinkFailure struct {
	OrgID     string `json:"orgId"`
	AccountID string `json:"accountId"`
	Code      string `json:"code"`
	Message   string `json:"message"`
}

// Resume says where an incomplete sweep stopped: the shard, the index
// cursor its unfinished page was read from, and the first link not started.
// It is a hint for operators; sweeps always start over.
type Resume struct {
	Shard int     `json:"shard"`
	After string  `json:"after"`
	Next  LinkRef `json:"next"`
}

// Summary is what a sweep did. Checked counts the checks started; each ends
// healthy, unhealthy or in Errors (ErrorsOmitted beyond MaxErrors). Errors
// also names a change of status that could not be audited (code
// "audit_failed"; that link counts as healthy or unhealthy too).
// Skipped counts links deleted meanwhile or marked compromised (those need
// new credentials, and a check would overwrite the mark).
type Summary struct {
	RequestID     string        `json:"requestId"`
	StartedAt     time.Time     `json:"startedAt"`
	FinishedAt    time.Time     `json:"finishedAt"`
	Checked       int           `json:"checked"`
	Healthy       int           `json:"healthy"`
	Unhealthy     int           `json:"unhealthy"`
	Changed       int           `json:"changed"`
	Skipped       int           `json:"skipped"`
	Errors        []LinkFailure `json:"errors"`
	ErrorsOmitted int           `json:"errorsOmitted,omitempty"`
	Incomplete    bool          `json:"incomplete"`
	Resume        *Resume       `json:"resume,omitempty"`
}

type options struct {
	concurrency int
	shards      int
	pageSize    int
	margin      time.Duration
	now         func() time.Time
	log         *slog.Logger
}

// Option tunes the service.
type Option func(*options)

// WithConcurrency bounds how many links are checked at once (default 8).
func WithConcurrency(n int) Option { return func(o *options) { o.concurrency = n } }

// WithNow sets the clock of audit events and the summary.
func WithNow(now func() time.Time) Option { return func(o *options) { o.now = now } }

// WithLogger sets the logger (default: discard).
func WithLogger(l *slog.Logger) Option { return func(o *options) { o.log = l } }

// WithShards sets how many index shards there are (default DefaultShards).
func WithShards(n int) Option { return func(o *options) { o.shards = n } }

// WithPageSize sets how many links one index read returns (default 100).
func WithPageSize(n int) Option { return func(o *options) { o.pageSize = n } }

// WithDeadlineMargin sets how long before the context's deadline no new
// check starts (default 2 s), so checks in flight can finish.
func WithDeadlineMargin(d time.Duration) Option { return func(o *options) { o.margin = d } }

// Service runs sweeps.
type Service struct {
	links   Links
	index   Index
	auditor Auditor
	opt     options
}

// NewService returns the sweep.
func NewService(l Links, index Index, auditor Auditor, opts ...Option) *Service {
	o := options{
		concurrency: DefaultConcurrency, shards: DefaultShards, pageSize: DefaultPageSize,
		margin: DefaultDeadlineMargin, now: time.Now,
	}
	for _, fn := range opts {
		fn(&o)
	}
	if o.concurrency < 1 {
		o.concurrency = 1
	}
	if o.shards < 1 {
		o.shards = DefaultShards
	}
	if o.pageSize < 1 {
		o.pageSize = DefaultPageSize
	}
	if o.log == nil {
		o.log = slog.New(slog.DiscardHandler)
	}
	return &Service{links: l, index: index, auditor: auditor, opt: o}
}

// sweep is one run's shared state.
type sweep struct {
	*Service
	requestID string
	mu        sync.Mutex
	sum       Summary
}

var errStop = errors.New("sweep out of time")

// Sweep checks every link once. One link's failure is in Summary.Errors and
// the sweep goes on; an error is returned only when the index cannot be
// read (the summary then says how far it got).
func (s *Service) Sweep(ctx context.Context) (Summary, error) {
	w := &sweep{Service: s, requestID: ids.New("sweep")}
	w.sum = Summary{RequestID: w.requestID, StartedAt: s.opt.now().UTC(), Errors: []LinkFailure{}}

	// Stop starting checks a margin before the deadline. Deadlines are wall
	// clock, so this uses time.Now, not the injectable clock.
	var stop <-chan time.Time
	if dl, ok := ctx.Deadline(); ok {
		t := time.NewTimer(time.Until(dl.Add(-s.opt.margin)))
		defer t.Stop()
		stop = t.C
	}
	sem := make(chan struct{}, s.opt.concurrency)
	var wg sync.WaitGroup
	err := w.each(ctx, func(ref LinkRef) error {
		// Checked first: a slot freeing up and the stop time arriving
		// together must not start one more check.
		select {
		case <-stop:
			return errStop
		case <-ctx.Done():
			return errStop
		default:
		}
		select {
		case sem <- struct{}{}:
		case <-stop:
			return errStop
		case <-ctx.Done():
			return errStop
		}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			w.check(ctx, ref)
		}()
		return nil
	})
	wg.Wait()
	w.sum.FinishedAt = s.opt.now().UTC()
	if w.sum.Incomplete {
		s.opt.log.WarnContext(ctx, "health sweep incomplete: the next run starts over",
			"requestId", w.requestID, "checked", w.sum.Checked, "resume", w.sum.Resume)
	} else {
		s.opt.log.InfoContext(ctx, "health sweep done", "requestId", w.requestID, "checked", w.sum.Checked,
			"healthy", w.sum.Healthy, "unhealthy", w.sum.Unhealthy, "changed", w.sum.Changed, "errors", len(w.sum.Errors)+w.sum.ErrorsOmitted)
	}
	return w.sum, err
}

// each pages through every shard and hands each link to start; it stops,
// marking the summary incomplete, when start says errStop or a read fails.
func (w *sweep) each(ctx context.Context, start func(LinkRef) error) error {
	for shard := 0; shard < w.opt.shards; shard++ {
		after := ""
		for {
			if ctx.Err() != nil {
				w.stopped(Resume{Shard: shard, After: after})
				return nil
			}
			refs, next, err := w.index.LinksForSweep(ctx, shard, after, w.opt.pageSize)
			if err != nil {
				w.stopped(Resume{Shard: shard, After: after})
				return fmt.Errorf("health sweep: read shard %d: %w", shard, err)
			}
			for _, ref := range refs {
				if err := start(ref); err != nil {
					w.stopped(Resume{Shard: shard, After: after, Next: ref})
					return nil
				}
			}
			if next == "" {
				break
			}
			after = next
		}
	}
	return nil
}

func (w *sweep) stopped(r Resume) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.sum.Incomplete, w.sum.Resume = true, &r
}

// check validates one link and audits a change of its status.
func (w *sweep) check(ctx context.Context, ref LinkRef) {
	before, err := w.links.Get(ctx, ref.OrgID, ref.LinkID)
	if fault.Is(err, "account_not_found") {
		w.skip()
		return
	}
	if err != nil {
		w.fail(ctx, ref, err)
		return
	}
	if before.Status == links.Compromised {
		w.skip()
		return
	}
	after, err := w.links.Validate(ctx, ref.OrgID, ref.LinkID, w.requestID)
	if fault.Is(err, "account_not_found") {
		// Unlinked between the read and the check.
		w.skip()
		return
	}
	if err != nil {
		w.fail(ctx, ref, err)
		return
	}
	changed := after.Status != before.Status
	w.mu.Lock()
	w.sum.Checked++
	if after.Status == links.Healthy {
		w.sum.Healthy++
	} else {
		w.sum.Unhealthy++
	}
	if changed {
		w.sum.Changed++
	}
	w.mu.Unlock()
	if !changed {
		return
	}
	w.opt.log.InfoContext(ctx, "linked account health changed", "requestId", w.requestID,
		"orgId", ref.OrgID, "accountId", ref.LinkID, "from", before.Status, "to", after.Status)
	e := audit.Event{
		ID: ids.New(ids.Event), OrgID: ref.OrgID, At: w.opt.now().UTC(), ActorID: ActorID, Action: Action,
		Target:  "/v1/orgs/" + ref.OrgID + "/accounts/" + ref.LinkID,
		Outcome: audit.Success, Status: 200, Code: after.Status, RequestID: w.requestID,
	}
	// The status is recorded already; the event must not be lost to the
	// sweep's deadline arriving meanwhile.
	actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if err := w.auditor.Record(actx, e); err != nil {
		w.opt.log.ErrorContext(ctx, "health change not audited", "requestId", w.requestID,
			"orgId", ref.OrgID, "accountId", ref.LinkID, "error", err.Error())
		w.addError(LinkFailure{OrgID: ref.OrgID, AccountID: ref.LinkID, Code: "audit_failed",
			Message: "the status changed to " + after.Status + " but the audit event could not be written"})
	}
}

func (w *sweep) skip() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.sum.Skipped++
}

// fail records a check that ended without a verdict. Only a domain error's
// code and detail reach the summary; causes are logged.
func (w *sweep) fail(ctx context.Context, ref LinkRef, err error) {
	w.opt.log.WarnContext(ctx, "linked account not checked", "requestId", w.requestID,
		"orgId", ref.OrgID, "accountId", ref.LinkID, "error", err.Error())
	f := LinkFailure{OrgID: ref.OrgID, AccountID: ref.LinkID, Code: "internal_error", Message: "the check failed unexpectedly"}
	if e, ok := fault.As(err); ok && e.Kind != fault.Internal {
		f.Code, f.Message = e.Code, e.Detail
	} else if ok {
		f.Code = e.Code
	}
	if ctx.Err() != nil {
		f.Code, f.Message = "sweep_deadline", "the sweep ran out of time during the check"
	}
	w.mu.Lock()
	w.sum.Checked++
	w.mu.Unlock()
	w.addError(f)
}

func (w *sweep) addError(f LinkFailure) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.sum.Errors) >= MaxErrors {
		w.sum.ErrorsOmitted++
		return
	}
	w.sum.Errors = append(w.sum.Errors, f)
}
