package rotation

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/dflow-sh/cloud-accounts/shared/fault"
	"github.com/dflow-sh/cloud-accounts/shared/links"
	"github.com/dflow-sh/cloud-accounts/shared/tenancy"
	"github.com/dflow-sh/cloud-accounts/shared/vault"
)

// Config tunes the service; zero fields take the defaults.
type Config struct {
	// Grace is how long a deactivated old key waits before it is deleted.
	Grace time.Duration
	// TestBudget is how long the new key may take to work (IAM is
	// eventually consistent); TestInterval the first wait, doubled each time.
	TestBudget   time.Duration
	TestInterval time.Duration
	// LeaseTTL bounds one run; a run that dies frees the link after it.
	LeaseTTL time.Duration
	// MaxAttempts failed runs before an unpromoted rotation is rolled back.
	MaxAttempts int
	// RetryAfter is the sweep's first wait after a failed run, doubled each time.
	RetryAfter time.Duration
	// SweepLimit and SweepConcurrency bound one FinishRetirements.
	SweepLimit       int
	SweepConcurrency int
}

// Defaults of Config.
const (
	DefaultGrace        = 24 * time.Hour
	DefaultTestBudget   = 60 * time.Second
	DefaultTestInterval = time.Second
	DefaultLeaseTTL     = 10 * time.Minute
	DefaultMaxAttempts  = 5
	DefaultRetryAfter   = 15 * time.Minute
)

// Deps are what the service consumes.
type Deps struct {
	Store    Store
	Vault    Vault
	Keys     Keys
	Verifier Verifier
	// Labels is optional: without it a rollback leaves the abandoned
	// version's AWSPENDING label (harmless: the next pending version takes it).
	Labels PendingLabels
	Config Config
	Log    *slog.Logger
	Now    func() time.Time
	// Sleep waits between tests of a new key; tests make it instant.
	Sleep func(ctx context.Context, d time.Duration) error
}

// Service runs rotations.
type Service struct {
	store  Store
	vault  Vault
	keys   Keys
	verify Verifier
	labels PendingLabels
	cfg    Config
	log    *slog.Logger
	now    func() time.Time
	sleep  func(ctx context.Context, d time.Duration) error
}

// NewService returns the service.
func NewService(d Deps) *Service {
	c := d.Config
	def := func(v *time.Duration, dv time.Duration) {
		if *v <= 0 {
			*v = dv
		}
	}
	def(&c.Grace, DefaultGrace)
	def(&c.TestBudget, DefaultTestBudget)
	def(&c.TestInterval, DefaultTestInterval)
	def(&c.LeaseTTL, DefaultLeaseTTL)
	def(&c.RetryAfter, DefaultRetryAfter)
	if c.MaxAttempts <= 0 {
		c.MaxAttempts = DefaultMaxAttempts
	}
	if c.SweepLimit <= 0 {
		c.SweepLimit = 100
	}
	if c.SweepConcurrency <= 0 {
		c.SweepConcurrency = 4
	}
	s := &Service{store: d.Store, vault: d.Vault, keys: d.Keys, verify: d.Verifier, labels: d.Labels, cfg: c, log: d.Log, now: d.Now, sleep: d.Sleep}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.now == nil {
		s.now = time.Now
	}
	now := s.now
	s.now = func() time.Time { return now().UTC() }
	if s.sleep == nil {
		s.sleep = func(ctx context.Context, d time.Duration) error {
			t := time.NewTimer(d)
			defer t.Stop()
			select {
			case <-t.C:
				return nil
			case <-ctx.Done():
				return ctx.Err()
			}
		}
	}
	return s
}

// run is one rotation run's view of its link.
type run struct {
	r    *Rotation
	link links.Link
	rec  links.Record
	user string
}

func (x *run) region() string { return x.link.DefaultRegion }

// Start rotates the link's key: it takes the link's lease and runs create,
// test, promote and the old key's deactivation (with reason "leak", its
// deletion too). It returns the journal as far as it got; an error means
// the rotation stopped, and the journal (if it has an id) says where.
func (s *Service) Start(ctx context.Context, link links.Link, rec links.Record, reason, requestID string) (Rotation, error) {
	switch reason {
	case ReasonScheduled, ReasonManual, ReasonLeak:
	default:
		return Rotation{}, fault.Field("reason", "must be scheduled, manual or leak")
	}
	user, err := checkLink(link)
	if err != nil {
		return Rotation{}, err
	}
	now := s.now()
	id := NewID(now)
	r := Rotation{
		ID: id, OrgID: link.OrgID, LinkID: link.ID, Reason: reason, RequestID: requestID,
		Step: StepCreate, Token: vault.RequestToken("rotation", link.OrgID, link.ID, id),
		StartedAt: now, NextAttemptAt: now.Add(s.cfg.LeaseTTL), Warnings: []links.Warning{}, Version: 1, UpdatedAt: now,
	}
	if err := s.begin(ctx, &r); err != nil {
		return Rotation{}, err
	}
	defer s.release(ctx, &r)
	x := &run{r: &r, link: link, rec: rec, user: user}
	err = s.advance(ctx, x, "")
	return r, err
}

// begin takes the lease for a new journal and writes it, refusing while an
// earlier rotation of the link is unpromoted (Resume or Rollback it first).
func (s *Service) begin(ctx context.Context, r *Rotation) error {
	now := s.now()
	if err := s.store.AcquireRotationLease(ctx, r.OrgID, r.LinkID, r.ID, now, now.Add(s.cfg.LeaseTTL)); err != nil {
		return err
	}
	prev, _, err := s.store.ListRotations(ctx, r.OrgID, r.LinkID, tenancy.Page{Limit: 20})
	if err == nil {
		for _, p := range prev {
			if p.ID != r.ID && !p.Finished() && p.Pending() {
				err = fault.Conflictf(CodeInProgress, "rotation %s of this link has not finished; resume or roll it back first", p.ID).With("rotationId", p.ID)
				break
			}
		}
	}
	if err == nil {
		err = s.store.CreateRotation(ctx, *r)
	}
	if err != nil {
		s.release(ctx, r)
		return err
	}
	return nil
}

func (s *Service) release(ctx context.Context, r *Rotation) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if err := s.store.ReleaseRotationLease(ctx, r.OrgID, r.LinkID, r.ID); err != nil {
		// The lease expires by itself; until then the link waits.
		s.log.WarnContext(ctx, "rotation lease not released", "orgId", r.OrgID, "linkId", r.LinkID, "rotationId", r.ID, "error", err.Error())
	}
}

// Resume continues an unfinished rotation from its journal's step.
func (s *Service) Resume(ctx context.Context, orgID, linkID, rotationID string) (Rotation, error) {
	r, err := s.store.GetRotation(ctx, orgID, linkID, rotationID)
	if err != nil {
		return Rotation{}, err
	}
	if r.Finished() {
		return r, nil
	}
	x, err := s.load(ctx, &r)
	if err != nil {
		return r, err
	}
	now := s.now()
	if err := s.store.AcquireRotationLease(ctx, orgID, linkID, r.ID, now, now.Add(s.cfg.LeaseTTL)); err != nil {
		return r, err
	}
	defer s.release(ctx, &r)
	err = s.advance(ctx, x, "")
	return r, err
}

// Rollback undoes a rotation that was never promoted: the new key is
// deleted from IAM and its secret version loses the AWSPENDING label.
func (s *Service) Rollback(ctx context.Context, orgID, linkID, rotationID string) (Rotation, error) {
	r, err := s.store.GetRotation(ctx, orgID, linkID, rotationID)
	if err != nil {
		return Rotation{}, err
	}
	if r.Step == StepRolledBack {
		return r, nil
	}
	if r.Finished() || !r.Pending() {
		return r, fault.Conflictf(CodePromoted, "rotation %s has promoted its new key (step %s); it cannot be rolled back", r.ID, r.Step)
	}
	x, err := s.load(ctx, &r)
	if err != nil {
		return r, err
	}
	now := s.now()
	if err := s.store.AcquireRotationLease(ctx, orgID, linkID, r.ID, now, now.Add(s.cfg.LeaseTTL)); err != nil {
		return r, err
	}
	defer s.release(ctx, &r)
	err = s.rollback(ctx, x, OutcomeRolledBack)
	return r, err
}

// List pages through a link's rotations, newest first.
func (s *Service) List(ctx context.Context, orgID, linkID string, p tenancy.Page) ([]Rotation, string, error) {
	return s.store.ListRotations(ctx, orgID, linkID, p)
}

// Get returns one rotation.
func (s *Service) Get(ctx context.Context, orgID, linkID, rotationID string) (Rotation, error) {
	return s.store.GetRotation(ctx, orgID, linkID, rotationID)
}

func (s *Service) load(ctx context.Context, r *Rotation) (*run, error) {
	link, rec, err := s.store.GetLink(ctx, r.OrgID, r.LinkID)
	if err != nil {
		return nil, err
	}
	user, err := checkLink(link)
	if err != nil {
		return nil, err
	}
	return &run{r: r, link: link, rec: rec, user: user}, nil
}

func checkLink(l links.Link) (string, error) {
	if l.Credentials.Type != links.TypeAccessKey {
		return "", fault.Unprocessablef(CodeNotAccessKey, "only access-key links have a key to rotate")
	}
	user, ok := userFromARN(l.PrincipalARN)
	if !ok {
		return "", fault.Unprocessablef(CodeNotIAMUser, "the link's principal is not an IAM user, whose keys dFlow could rotate")
	}
	return user, nil
}

// userFromARN is the user name of arn:<partition>:iam::<account>:user[/path]/<name>.
func userFromARN(arn string) (string, bool) {
	parts := strings.SplitN(arn, ":", 6)
	if len(parts) != 6 || parts[0] != "arn" || parts[2] != "iam" || !strings.HasPrefix(parts[5], "user/") {
		return "", false
	}
	res := parts[5]
	name := res[strings.LastIndex(res, "/")+1:]
	return name, name != ""
}

// advance runs steps until the rotation finishes, waits for its grace
// period, fails, or reaches the step stop ("" for no stop).
func (s *Service) advance(ctx context.Context, x *run, stop string) error {
	for !x.r.Finished() && x.r.Step != stop {
		before := x.r.Step
		var err error
		switch x.r.Step {
		case StepCreate:
			err = s.create(ctx, x)
		case StepTest:
			err = s.test(ctx, x)
		case StepPromote:
			err = s.promote(ctx, x)
		case StepRetire:
			var waiting bool
			waiting, err = s.retire(ctx, x)
			if err == nil && waiting {
				return nil
			}
		default:
			err = fault.Conflictf(CodeStepUnknown, "the journal is at an unknown step %q", x.r.Step)
		}
		if err != nil {
			return s.failed(ctx, x, before, err)
		}
	}
	return nil
}

// failed records a step's error on the journal. Some errors end the
// rotation: a full key slot, replaced credentials, and for a leak any
// failure to make a new key.
func (s *Service) failed(ctx context.Context, x *run, step string, err error) error {
	r := x.r
	if errors.Is(err, context.Canceled) {
		return err
	}
	now := s.now()
	if r.Finished() {
		// The step finished and only writing that down failed: write again.
		if serr := s.save(ctx, r); serr != nil {
			return errors.Join(err, serr)
		}
		return nil
	}
	switch {
	case fault.Is(err, CodeCredsReplaced) && r.Pending():
		r.LastError = errorOf(err, now)
		if rbErr := s.rollback(ctx, x, OutcomeFailed); rbErr != nil {
			return errors.Join(err, rbErr)
		}
		return err
	case r.Reason == ReasonLeak && step == StepCreate && r.PendingVersionID == "":
		return s.compromised(ctx, x, err)
	case fault.Is(err, CodeKeyLimit):
		r.Step, r.Outcome, r.FinishedAt = StepFailed, OutcomeFailed, &now
	}
	r.LastError = errorOf(err, now)
	r.Attempts++
	backoff := s.cfg.RetryAfter << min(r.Attempts-1, 6)
	r.NextAttemptAt = now.Add(min(backoff, 24*time.Hour))
	if serr := s.save(ctx, r); serr != nil {
		return errors.Join(err, serr)
	}
	return err
}

// compromised ends a leak rotation that could make no new key: the leaked
// key is deactivated anyway, and the link's owner must act.
func (s *Service) compromised(ctx context.Context, x *run, cause error) error {
	r := x.r
	now := s.now()
	r.LastError = errorOf(cause, now)
	old, _, err := s.current(ctx, x)
	if err == nil {
		creds := Credentials{Region: x.region(), AccessKeyID: old.AccessKeyID, SecretAccessKey: old.SecretAccessKey}
		if r.OldKeyMasked == "" {
			r.OldKeyMasked, r.OldKeyRef = links.MaskKeyID(old.AccessKeyID), KeyRef(old.AccessKeyID)
		}
		err = s.keys.Deactivate(ctx, creds, x.user, old.AccessKeyID)
	}
	if err != nil {
		// Try again on the next run: the leaked key is still active.
		r.LastError = errorOf(fault.Conflictf(CodeOldKeyNotRetired, "no new key could be made and the leaked key could not be deactivated either"), now)
		r.Attempts++
		r.NextAttemptAt = now.Add(s.cfg.RetryAfter)
		return errors.Join(cause, err, s.save(ctx, r))
	}
	r.OldKeyDeactivatedAt = &now
	r.Step, r.Outcome, r.FinishedAt = StepFailed, OutcomeCompromised, &now
	if serr := s.save(ctx, r); serr != nil {
		return errors.Join(cause, serr)
	}
	return cause
}

func (s *Service) save(ctx context.Context, r *Rotation) error {
	prev := r.Version
	r.Version++
	r.UpdatedAt = s.now()
	if err := s.store.SaveRotation(ctx, *r, prev); err != nil {
		r.Version = prev
		return fmt.Errorf("save rotation %s: %w", r.ID, err)
	}
	return nil
}

func (s *Service) current(ctx context.Context, x *run) (links.Secret, string, error) {
	b, version, err := s.vault.Current(ctx, x.rec.SecretName)
	if err != nil {
		return links.Secret{}, "", err
	}
	sec, err := links.ParseSecret(b)
	if err != nil {
		return links.Secret{}, "", err
	}
	if sec.Type != links.TypeAccessKey {
		return links.Secret{}, "", fault.Unprocessablef(CodeNotAccessKey, "the link's secret holds no access key")
	}
	return sec, version, nil
}

// pending reads the new key's version; NotFound when none was stored.
func (s *Service) pending(ctx context.Context, x *run) (links.Secret, string, error) {
	ref := x.r.PendingVersionID
	if ref == "" {
		ref = x.r.Token
	}
	b, version, err := s.vault.GetVersion(ctx, x.rec.SecretName, ref)
	if err != nil {
		return links.Secret{}, "", err
	}
	sec, err := links.ParseSecret(b)
	return sec, version, err
}

func creds(region string, sec links.Secret) Credentials {
	return Credentials{Region: region, AccessKeyID: sec.AccessKeyID, SecretAccessKey: sec.SecretAccessKey}
}

// checkCurrent makes sure nobody replaced the link's credentials since the
// rotation began: promoting then would overwrite theirs.
func (s *Service) checkCurrent(x *run, version string) error {
	r := x.r
	if r.OldVersionID != "" && version != r.OldVersionID && version != r.PendingVersionID {
		return fault.Conflictf(CodeCredsReplaced, "the link's credentials were replaced while the rotation ran")
	}
	return nil
}

// create makes the new key with the current one and stores it as the
// AWSPENDING version under the rotation's token. A rerun finds that
// version instead of making a second key.
func (s *Service) create(ctx context.Context, x *run) error {
	r := x.r
	old, oldVersion, err := s.current(ctx, x)
	if err != nil {
		return err
	}
	if err := s.checkCurrent(x, oldVersion); err != nil {
		return err
	}
	if r.OldVersionID == "" {
		r.OldVersionID = oldVersion
		r.OldKeyMasked, r.OldKeyRef = links.MaskKeyID(old.AccessKeyID), KeyRef(old.AccessKeyID)
	}
	if sec, version, err := s.pending(ctx, x); err == nil {
		return s.created(ctx, r, sec.AccessKeyID, version)
	} else if fault.KindOf(err) != fault.NotFound {
		return err
	}
	oc := creds(x.region(), old)
	keys, err := s.keys.List(ctx, oc, x.user)
	if err != nil {
		return err
	}
	for _, k := range keys {
		if k.ID == old.AccessKeyID || len(keys) < 2 {
			continue
		}
		retired, err := s.retiredByDFlow(ctx, r, KeyRef(k.ID))
		if err != nil {
			return err
		}
		if k.Active || !retired {
			return fault.Conflictf(CodeKeyLimit, "the IAM user already has two access keys and %s is not one dFlow retired; delete it, or deactivate and delete it yourself", links.MaskKeyID(k.ID))
		}
		if err := s.keys.Delete(ctx, oc, x.user, k.ID); err != nil && fault.KindOf(err) != fault.NotFound {
			return err
		}
	}
	nk, err := s.keys.Create(ctx, oc, x.user)
	if err != nil {
		return err
	}
	payload := links.Secret{Type: links.TypeAccessKey, AccessKeyID: nk.ID, SecretAccessKey: nk.Secret}.Payload()
	version, err := s.vault.PutPending(ctx, x.rec.SecretName, payload, r.Token)
	if err != nil {
		// The key's secret exists nowhere else: remove the key now.
		dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		if derr := s.keys.Delete(dctx, oc, x.user, nk.ID); derr != nil {
			s.log.ErrorContext(ctx, "orphan access key: its secret could not be stored nor the key deleted",
				"orgId", r.OrgID, "linkId", r.LinkID, "rotationId", r.ID, "key", links.MaskKeyID(nk.ID), "error", derr.Error())
		}
		return fmt.Errorf("store new key of %s: %w", r.LinkID, err)
	}
	return s.created(ctx, r, nk.ID, version)
}

func (s *Service) created(ctx context.Context, r *Rotation, keyID, version string) error {
	r.PendingVersionID = version
	r.NewKeyMasked, r.NewKeyRef = links.MaskKeyID(keyID), KeyRef(keyID)
	r.Step, r.LastError = StepTest, nil
	return s.save(ctx, r)
}

// retiredByDFlow reports whether an earlier rotation of the link
// deactivated the key: only such a key may be deleted to make room.
func (s *Service) retiredByDFlow(ctx context.Context, r *Rotation, ref string) (bool, error) {
	after := ""
	for range 10 {
		page, next, err := s.store.ListRotations(ctx, r.OrgID, r.LinkID, tenancy.Page{Limit: 50, After: after})
		if err != nil {
			return false, err
		}
		for _, p := range page {
			if p.ID != r.ID && p.OldKeyRef == ref && p.OldKeyDeactivatedAt != nil {
				return true, nil
			}
		}
		if next == "" {
			break
		}
		after = next
	}
	return false, nil
}

// test waits until STS answers to the new key as the link's principal.
func (s *Service) test(ctx context.Context, x *run) error {
	r := x.r
	sec, _, err := s.pending(ctx, x)
	if err != nil {
		return err
	}
	var waited time.Duration
	delay := s.cfg.TestInterval
	for {
		id, err := s.verify.CheckAccessKey(ctx, x.region(), sec.AccessKeyID, sec.SecretAccessKey)
		switch {
		case err == nil && id.ARN == x.link.PrincipalARN:
			r.Step, r.LastError = StepPromote, nil
			return s.save(ctx, r)
		case err == nil:
			return fault.Unprocessablef(CodeWrongPrincipal, "the new key %s answers as another principal than the link's", r.NewKeyMasked)
		case !fault.Is(err, "credentials_invalid") && !fault.Is(err, "provider_unavailable"):
			return err
		}
		if waited >= s.cfg.TestBudget {
			return &fault.Error{Kind: fault.Unavailable, Code: CodeNewKeyFailed, RetryAfter: 60,
				Detail: fmt.Sprintf("the new key %s did not work within %s", r.NewKeyMasked, s.cfg.TestBudget), Err: err}
		}
		if err := s.sleep(ctx, delay); err != nil {
			return err
		}
		waited += delay
		delay = min(delay*2, 8*time.Second)
	}
}

// promote makes the new key AWSCURRENT and moves the link's metadata to it.
func (s *Service) promote(ctx context.Context, x *run) error {
	r := x.r
	_, version, err := s.vault.Current(ctx, x.rec.SecretName)
	if err != nil {
		return err
	}
	if err := s.checkCurrent(x, version); err != nil {
		return err
	}
	if version != r.PendingVersionID {
		if err := s.vault.Promote(ctx, x.rec.SecretName, r.PendingVersionID); err != nil {
			return err
		}
	}
	if r.PromotedAt == nil {
		now := s.now()
		r.PromotedAt = &now
		// Recorded before the link moves, so no rollback can follow.
		if err := s.save(ctx, r); err != nil {
			return err
		}
	}
	if err := s.updateLink(ctx, x, func(l *links.Link, rec *links.Record) bool {
		if rec.CredKey == r.NewKeyRef {
			return false
		}
		at := *r.PromotedAt
		l.Credentials.AccessKeyIDMasked = r.NewKeyMasked
		l.KeyCreatedAt = &at
		rot := links.Rotation{MaxAgeDays: links.DefaultMaxAgeDays}
		if l.Rotation != nil {
			rot = *l.Rotation
		}
		rot.LastRotatedAt = &at
		rot.NextRotationAt = nil
		if rot.Enabled {
			next := at.AddDate(0, 0, rot.MaxAgeDays)
			rot.NextRotationAt = &next
		}
		l.Rotation = &rot
		rec.CredKey = r.NewKeyRef
		return true
	}); err != nil {
		return err
	}
	r.Step, r.LastError = StepRetire, nil
	return s.save(ctx, r)
}

// updateLink applies change to the stored link, retrying when a
// concurrent update moved its version.
func (s *Service) updateLink(ctx context.Context, x *run, change func(*links.Link, *links.Record) bool) error {
	var err error
	for range 3 {
		var prev links.Link
		var prevRec links.Record
		prev, prevRec, err = s.store.GetLink(ctx, x.r.OrgID, x.r.LinkID)
		if err != nil {
			return err
		}
		l, rec := prev, prevRec
		l.Warnings = append([]links.Warning(nil), prev.Warnings...)
		if !change(&l, &rec) {
			x.link, x.rec = prev, prevRec
			return nil
		}
		l.Version = prev.Version + 1
		l.UpdatedAt = s.now()
		if err = s.store.UpdateRotatedLink(ctx, l, prev, rec, prevRec); err == nil {
			x.link, x.rec = l, rec
			return nil
		}
		if fault.KindOf(err) != fault.Conflict || fault.Is(err, "account_already_linked") {
			return err
		}
	}
	return err
}

// retire deactivates the old key (signed with the new one) and, once the
// grace period is over (at once for a leak), deletes it. waiting reports
// the grace period still running.
func (s *Service) retire(ctx context.Context, x *run) (bool, error) {
	r := x.r
	cur, _, err := s.current(ctx, x)
	if err != nil {
		return false, err
	}
	nc := creds(x.region(), cur)
	if r.OldKeyDeactivatedAt == nil {
		old, found, err := s.findKey(ctx, x, nc, r.OldKeyRef)
		if err != nil {
			return false, err
		}
		if found && old.Active {
			if err := s.keys.Deactivate(ctx, nc, x.user, old.ID); err != nil && fault.KindOf(err) != fault.NotFound {
				return false, err
			}
		}
		now := s.now()
		after := now.Add(s.cfg.Grace)
		if r.Reason == ReasonLeak {
			after = now
		}
		r.OldKeyDeactivatedAt, r.RetireAfter, r.NextAttemptAt = &now, &after, after
		r.Outcome, r.LastError = OutcomeRotated, nil
		if err := s.save(ctx, r); err != nil {
			return false, err
		}
	}
	if s.now().Before(*r.RetireAfter) {
		return true, nil
	}
	old, found, err := s.findKey(ctx, x, nc, r.OldKeyRef)
	if err != nil {
		return false, err
	}
	if found {
		used, err := s.keys.LastUsed(ctx, nc, old.ID)
		if err != nil && fault.KindOf(err) != fault.NotFound {
			return false, err
		}
		if r.PromotedAt != nil && used.After(*r.PromotedAt) {
			if err := s.warnOldKeyUsed(ctx, x, used); err != nil {
				return false, err
			}
		}
		if err := s.keys.Delete(ctx, nc, x.user, old.ID); err != nil && fault.KindOf(err) != fault.NotFound {
			return false, err
		}
	}
	now := s.now()
	r.OldKeyDeletedAt, r.FinishedAt = &now, &now
	r.Step, r.Outcome, r.LastError = StepDone, OutcomeRotated, nil
	return false, s.save(ctx, r)
}

func (s *Service) warnOldKeyUsed(ctx context.Context, x *run, used time.Time) error {
	w := links.Warning{Code: CodeOldKeyUsed, Message: fmt.Sprintf(
		"the retired access key %s was used at %s, after dFlow switched to %s: something else still has the old key; find and update it",
		x.r.OldKeyMasked, used.UTC().Format(time.RFC3339), x.r.NewKeyMasked)}
	if !hasWarning(x.r.Warnings, CodeOldKeyUsed) {
		x.r.Warnings = append(x.r.Warnings, w)
	}
	return s.updateLink(ctx, x, func(l *links.Link, _ *links.Record) bool {
		for i, lw := range l.Warnings {
			if lw.Code == CodeOldKeyUsed {
				if lw == w {
					return false
				}
				l.Warnings[i] = w
				return true
			}
		}
		l.Warnings = append(l.Warnings, w)
		return true
	})
}

func hasWarning(ws []links.Warning, code string) bool {
	for _, w := range ws {
		if w.Code == code {
			return true
		}
	}
	return false
}

func (s *Service) findKey(ctx context.Context, x *run, c Credentials, ref string) (KeyMeta, bool, error) {
	keys, err := s.keys.List(ctx, c, x.user)
	if err != nil {
		return KeyMeta{}, false, err
	}
	for _, k := range keys {
		if KeyRef(k.ID) == ref {
			return k, true, nil
		}
	}
	return KeyMeta{}, false, nil
}

// rollback deletes the unpromoted new key (signed with the current one)
// and drops its AWSPENDING label. outcome says why.
func (s *Service) rollback(ctx context.Context, x *run, outcome string) error {
	r := x.r
	_, version, err := s.vault.Current(ctx, x.rec.SecretName)
	if err != nil {
		return err
	}
	if r.PromotedAt != nil || (r.PendingVersionID != "" && version == r.PendingVersionID) {
		return fault.Conflictf(CodePromoted, "rotation %s has promoted its new key; it cannot be rolled back", r.ID)
	}
	cur, _, err := s.current(ctx, x)
	if err != nil {
		return err
	}
	cc := creds(x.region(), cur)
	keyID := ""
	pendingVersion := ""
	if sec, v, err := s.pending(ctx, x); err == nil {
		keyID, pendingVersion = sec.AccessKeyID, v
	} else if fault.KindOf(err) != fault.NotFound {
		return err
	}
	if keyID == "" && r.NewKeyRef != "" {
		k, found, err := s.findKey(ctx, x, cc, r.NewKeyRef)
		if err != nil {
			return err
		}
		if found {
			keyID = k.ID
		}
	}
	if keyID != "" && keyID != cur.AccessKeyID {
		if err := s.keys.Delete(ctx, cc, x.user, keyID); err != nil && fault.KindOf(err) != fault.NotFound {
			return err
		}
	}
	if pendingVersion != "" && s.labels != nil {
		if err := s.labels.RemovePending(ctx, x.rec.SecretName, pendingVersion); err != nil && fault.KindOf(err) != fault.NotFound {
			return err
		}
	}
	now := s.now()
	r.Step, r.Outcome, r.FinishedAt = StepRolledBack, outcome, &now
	return s.save(ctx, r)
}

// Summary is what one sweep did.
type Summary struct {
	Examined   int         `json:"examined"`
	Retired    int         `json:"retired"`
	Resumed    int         `json:"resumed"`
	RolledBack int         `json:"rolledBack"`
	Waiting    int         `json:"waiting"`
	Busy       int         `json:"busy"`
	Failed     int         `json:"failed"`
	Errors     []ItemError `json:"errors"`
}

// ItemError is one journal the sweep could not move on.
type ItemError struct {
	OrgID      string `json:"orgId"`
	LinkID     string `json:"linkId"`
	RotationID string `json:"rotationId"`
	Code       string `json:"code"`
	Message    string `json:"message"`
}

// FinishRetirements is the hourly sweep: for each unfinished journal due by
// now (read from the index, never a scan) it deletes an old key past its
// grace period, resumes a rotation that stopped half-way, or rolls back
// one that failed too often. A journal's failure is recorded and the sweep
// goes on; it starts no item once ctx's deadline is near.
func (s *Service) FinishRetirements(ctx context.Context, now time.Time) (Summary, error) {
	due, err := s.store.DueRotations(ctx, now, s.cfg.SweepLimit)
	if err != nil {
		return Summary{}, err
	}
	sum := Summary{Errors: []ItemError{}}
	var mu sync.Mutex
	var wg sync.WaitGroup
	sem := make(chan struct{}, s.cfg.SweepConcurrency)
	for _, r := range due {
		if dl, ok := ctx.Deadline(); ok && time.Until(dl) < 30*time.Second {
			break
		}
		sem <- struct{}{}
		wg.Add(1)
		go func(r Rotation) {
			defer func() { <-sem; wg.Done() }()
			kind, err := s.sweepOne(ctx, r)
			mu.Lock()
			defer mu.Unlock()
			sum.Examined++
			switch kind {
			case "retired":
				sum.Retired++
			case "resumed":
				sum.Resumed++
			case "rolled_back":
				sum.RolledBack++
			case "waiting":
				sum.Waiting++
			case "busy":
				sum.Busy++
			}
			if err != nil {
				sum.Failed++
				e := errorOf(err, now)
				sum.Errors = append(sum.Errors, ItemError{OrgID: r.OrgID, LinkID: r.LinkID, RotationID: r.ID, Code: e.Code, Message: e.Message})
				s.log.WarnContext(ctx, "rotation sweep item failed", "orgId", r.OrgID, "linkId", r.LinkID, "rotationId", r.ID, "code", e.Code, "error", err.Error())
			}
		}(r)
	}
	wg.Wait()
	return sum, nil
}

func (s *Service) sweepOne(ctx context.Context, r Rotation) (string, error) {
	// The index is eventually consistent: read the journal itself.
	r, err := s.store.GetRotation(ctx, r.OrgID, r.LinkID, r.ID)
	if err != nil {
		return "", err
	}
	if r.Finished() {
		return "", nil
	}
	x, err := s.load(ctx, &r)
	if err != nil {
		return "", err
	}
	now := s.now()
	if err := s.store.AcquireRotationLease(ctx, r.OrgID, r.LinkID, r.ID, now, now.Add(s.cfg.LeaseTTL)); err != nil {
		if fault.Is(err, CodeInProgress) {
			return "busy", nil
		}
		return "", err
	}
	defer s.release(ctx, &r)
	if r.Pending() && r.Attempts >= s.cfg.MaxAttempts {
		return "rolled_back", s.rollback(ctx, x, OutcomeFailed)
	}
	wasRetiring := r.Step == StepRetire
	if err := s.advance(ctx, x, ""); err != nil {
		return "", err
	}
	switch {
	case r.Step == StepDone && wasRetiring:
		return "retired", nil
	case r.Step == StepRetire:
		return "waiting", nil
	}
	return "resumed", nil
}
