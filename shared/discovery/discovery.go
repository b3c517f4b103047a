// Package discovery answers what a linked AWS account can provision into:
// its regions, zones, VPCs, subnets, security groups, key pairs, instance
// types and current OS images, a per-region inventory, and a check of the
// permissions dFlow needs. It calls EC2, SSM and (for the permission check)
// IAM through the small interfaces below, acting as the linked account, and
// turns AWS errors into domain faults (see classify). The HTTP layer renders
// the result types as JSON; their json names are the API's.
package discovery

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/dflow-sh/cloud-accounts/shared/partition"
)

// Clients gives AWS clients acting as the linked account in a region. The
// caller caches credentials and clients per link; a credentials problem it
// meets may be returned as a *fault.Error, which discovery passes through.
type Clients interface {
	EC2(ctx context.Context, region string) (EC2API, error)
	SSM(ctx context.Context, region string) (SSMAPI, error)
}

// IAMClients is implemented by the Clients of access-key links that want
// PermissionsCheck to try the read-only IAM rotation actions for real. IAM
// is global: one client per partition.
type IAMClients interface {
	IAM(ctx context.Context) (IAMAPI, error)
}

// Target is the linked account discovery acts for.
type Target struct {
	LinkID    string
	Partition partition.Partition
	// DefaultRegion is where partition-wide calls (DescribeRegions) go;
	// empty means the partition's default region.
	DefaultRegion string
	// AccessKeyUser is true for links that sign with an IAM user's access
	// key: only they need, and are checked for, the IAM rotation actions
	// (as awsperms.PermissionsPolicy grants them).
	AccessKeyUser bool
}

func (t Target) check() error {
	if t.LinkID == "" || t.Partition.ID == "" {
		return errors.New("discovery: target needs a link id and a partition")
	}
	if t.DefaultRegion != "" && !t.Partition.HasRegion(t.DefaultRegion) {
		return fmt.Errorf("discovery: default region %s is not in partition %s", t.DefaultRegion, t.Partition.ID)
	}
	return nil
}

func (t Target) defaultRegion() string {
	if t.DefaultRegion != "" {
		return t.DefaultRegion
	}
	return t.Partition.DefaultRegion
}

// Cache keeps discovery answers per link. Get decodes a fresh entry into
// out (a pointer) and reports when it was stored; ok is false when there is
// none or it has expired. Implemented over DynamoDB elsewhere.
type Cache interface {
	Get(ctx context.Context, linkID, key string, out any) (cachedAt time.Time, ok bool, err error)
	Put(ctx context.Context, linkID, key string, v any, ttl time.Duration) error
}

// List is a cached list answer. CachedAt is when the items were fetched
// from AWS (now, for a fresh answer).
type List[T any] struct {
	Items    []T       `json:"items"`
	CachedAt time.Time `json:"cachedAt"`
}

// Defaults of the options.
const (
	DefaultTTL = 5 * time.Minute
	// DefaultConcurrency bounds the AWS calls in flight in one fan-out
	// (Inventory, PermissionsCheck). It is sized so that every region of the
	// largest partition (36 regions × 4 inventory calls) is gathered in one
	// wave: the all-regions answer then takes about as long as one region,
	// which is the bar the feature was accepted on (≤ 2×). EC2 throttles per
	// account and per region, and a fan-out puts at most a few dozen calls
	// on any one region, so the bound protects this process (goroutines,
	// sockets, Lambda's file descriptors), not AWS. At 8, the all-regions
	// inventory is ~18× one region's time (see BenchmarkInventory).
	DefaultConcurrency = 160
)

// Service answers discovery questions for linked accounts. It holds no
// per-link state besides what it puts in the Cache; one Service serves
// every link.
type Service struct {
	cache       Cache
	ttl         time.Duration
	concurrency int
	pageSize    int32
	now         func() time.Time
	log         *slog.Logger
}

// Option tunes NewService.
type Option func(*Service)

// WithTTL sets how long answers stay cached (default 5 minutes).
func WithTTL(d time.Duration) Option { return func(s *Service) { s.ttl = d } }

// WithConcurrency bounds the AWS calls in flight in one fan-out; 1 makes
// Inventory and PermissionsCheck call AWS one call at a time.
func WithConcurrency(n int) Option { return func(s *Service) { s.concurrency = n } }

// WithNow sets the clock (tests).
func WithNow(now func() time.Time) Option { return func(s *Service) { s.now = now } }

// WithPageSize sets MaxResults on every paginated call (0: AWS's default
// page). Values are raised to each API's minimum (5) and capped at its
// maximum. Tests make it small to force several pages.
func WithPageSize(n int32) Option { return func(s *Service) { s.pageSize = n } }

// WithLogger sets where cache failures are reported (default slog.Default()).
func WithLogger(l *slog.Logger) Option { return func(s *Service) { s.log = l } }

// NewService builds the service. A nil cache disables caching.
func NewService(cache Cache, opts ...Option) *Service {
	s := &Service{cache: cache, ttl: DefaultTTL, concurrency: DefaultConcurrency, now: time.Now, log: slog.Default()}
	for _, o := range opts {
		o(s)
	}
	if s.concurrency < 1 {
		s.concurrency = 1
	}
	if s.ttl <= 0 {
		s.ttl = DefaultTTL
	}
	return s
}

// maxResults is the MaxResults to send to an API whose page is min..max
// items, or nil for AWS's default.
func (s *Service) maxResults(min, max int32) *int32 {
	if s.pageSize <= 0 {
		return nil
	}
	n := s.pageSize
	if n < min {
		n = min
	}
	if n > max {
		n = max
	}
	return &n
}

// cacheKeyVersion starts every cache key, so a change of an answer's shape
// can retire old entries by bumping it.
const cacheKeyVersion = "v2"

// cacheKey is <version>/<scope>/<kind>[/<params>]: scope is a region or
// "partition"; params are already normalised by the caller.
func cacheKey(scope, kind string, params ...string) string {
	k := cacheKeyVersion + "/" + scope + "/" + kind
	for _, p := range params {
		k += "/" + p
	}
	return k
}

// cached answers from the cache unless refresh is set or the entry is
// stale, and otherwise fetches and stores the answer. It reports whether the
// answer came from the cache. A failing cache never fails the request: it
// is logged and the answer is fetched (or returned unstored).
func cached[T any](ctx context.Context, s *Service, t Target, key string, refresh bool, fetch func(context.Context) ([]T, error)) (List[T], bool, error) {
	if !refresh && s.cache != nil {
		// The entry is the answer itself, cachedAt included, so a hit
		// shows the very time the fresh answer showed.
		var hit List[T]
		_, ok, err := s.cache.Get(ctx, t.LinkID, key, &hit)
		switch {
		case err != nil:
			s.log.WarnContext(ctx, "discovery cache read failed", "link", t.LinkID, "key", key, "err", err)
		// The store's TTL deletes late (DynamoDB) or never (moto): the age
		// is checked here too.
		case ok && !hit.CachedAt.IsZero() && s.now().Sub(hit.CachedAt) < s.ttl:
			if hit.Items == nil {
				hit.Items = []T{}
			}
			return hit, true, nil
		}
	}
	items, err := fetch(ctx)
	if err != nil {
		return List[T]{}, false, err
	}
	if items == nil {
		items = []T{}
	}
	answer := List[T]{Items: items, CachedAt: s.now()}
	if s.cache != nil {
		if err := s.cache.Put(ctx, t.LinkID, key, answer, s.ttl); err != nil {
			s.log.WarnContext(ctx, "discovery cache write failed", "link", t.LinkID, "key", key, "err", err)
		}
	}
	return answer, false, nil
}
