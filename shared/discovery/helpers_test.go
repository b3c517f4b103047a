package discovery

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsmiddleware "github.com/aws/aws-sdk-go-v2/aws/middleware"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/iam"
	iamtypes "github.com/aws/aws-sdk-go-v2/service/iam/types"
	"github.com/aws/aws-sdk-go-v2/service/ssm"
	ssmtypes "github.com/aws/aws-sdk-go-v2/service/ssm/types"
	"github.com/aws/smithy-go"
	"github.com/aws/smithy-go/middleware"
	smithyhttp "github.com/aws/smithy-go/transport/http"

	"github.com/dflow-sh/cloud-accounts/shared/fault"
	"github.com/dflow-sh/cloud-accounts/shared/motoserver"
	"github.com/dflow-sh/cloud-accounts/shared/partition"
	"github.com/dflow-sh/cloud-accounts/shared/sdkfault"
)

func TestMain(m *testing.M) { motoserver.Main(m) }

// memCache is the Cache in memory, storing JSON as the DynamoDB one will,
// so what the service caches must survive a round trip.
type memCache struct {
	mu      sync.Mutex
	now     func() time.Time
	entries map[string]memEntry
	gets    int
	puts    int
	failGet error
	failPut error
}

type memEntry struct {
	data []byte
	at   time.Time
	ttl  time.Duration
}

func newMemCache(now func() time.Time) *memCache {
	if now == nil {
		now = time.Now
	}
	return &memCache{now: now, entries: map[string]memEntry{}}
}

var _ Cache = (*memCache)(nil)

func (c *memCache) Get(_ context.Context, linkID, key string, out any) (time.Time, bool, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.gets++
	if c.failGet != nil {
		return time.Time{}, false, c.failGet
	}
	e, ok := c.entries[linkID+"|"+key]
	if !ok || c.now().Sub(e.at) >= e.ttl {
		return time.Time{}, false, nil
	}
	return e.at, true, json.Unmarshal(e.data, out)
}

func (c *memCache) Put(_ context.Context, linkID, key string, v any, ttl time.Duration) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.puts++
	if c.failPut != nil {
		return c.failPut
	}
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	c.entries[linkID+"|"+key] = memEntry{data: b, at: c.now(), ttl: ttl}
	return nil
}

func (c *memCache) keys() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var ks []string
	for k := range c.entries {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}

// clock is a settable test clock.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

func mustPartition(t testing.TB, id string) partition.Partition {
	t.Helper()
	p, ok := partition.ByID(id)
	if !ok {
		t.Fatalf("partition %s", id)
	}
	return p
}

func commercial(t testing.TB) Target {
	return Target{LinkID: "lnk_test", Partition: mustPartition(t, partition.Standard)}
}

// wantFault asserts err is a fault of the kind and code.
func wantFault(t *testing.T, err error, kind fault.Kind, code string) *fault.Error {
	t.Helper()
	e, ok := fault.As(err)
	if !ok {
		t.Fatalf("error %v (%T) is not a fault; want %s", err, err, code)
	}
	if e.Kind != kind || e.Code != code {
		t.Fatalf("fault kind %d code %q (%v); want kind %d code %q", e.Kind, e.Code, err, kind, code)
	}
	return e
}

func apiErr(code string) error {
	return &smithy.GenericAPIError{Code: code, Message: code + " (test)"}
}

// ---- moto ----

// motoClients builds real clients against the test process's moto server,
// in one moto account (header x-moto-account-id), counting calls.
type motoClients struct {
	srv     *motoserver.Server
	account string
	faults  *sdkfault.Faults
	counts  *callCounter
	// paging wraps EC2 in pagingEC2, so calls moto answers in one page are
	// served in pages of MaxResults.
	paging bool
}

func newMotoClients(t testing.TB) *motoClients {
	t.Helper()
	return &motoClients{srv: motoserver.Shared(t), account: newAccount(), faults: &sdkfault.Faults{}, counts: &callCounter{}}
}

var accountRand = rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 7))
var accountMu sync.Mutex

// newAccount is a moto account of the test's own, so tests sharing the
// server never see each other's resources.
func newAccount() string {
	accountMu.Lock()
	defer accountMu.Unlock()
	return fmt.Sprintf("%012d", 100000000000+accountRand.Int64N(800000000000))
}

func (m *motoClients) config(ctx context.Context, region string) (aws.Config, error) {
	cfg, err := m.srv.Config(ctx, region)
	if err != nil {
		return cfg, err
	}
	// The standard retryer with no sleep between attempts: tests see the
	// SDK retry without waiting for its backoff.
	cfg.Retryer = func() aws.Retryer {
		return retry.NewStandard(func(o *retry.StandardOptions) {
			o.MaxAttempts = 3
			o.Backoff = retry.BackoffDelayerFunc(func(int, error) (time.Duration, error) { return time.Millisecond, nil })
		})
	}
	cfg = m.faults.Attach(cfg)
	cfg.APIOptions = append(cfg.APIOptions, accountHeader(m.account), m.counts.middleware)
	return cfg, nil
}

func (m *motoClients) EC2(ctx context.Context, region string) (EC2API, error) {
	cfg, err := m.config(ctx, region)
	if err != nil {
		return nil, err
	}
	var api EC2API = ec2.NewFromConfig(cfg)
	if m.paging {
		api = &pagingEC2{EC2API: api, counts: m.counts}
	}
	return api, nil
}

func (m *motoClients) SSM(ctx context.Context, region string) (SSMAPI, error) {
	cfg, err := m.config(ctx, region)
	if err != nil {
		return nil, err
	}
	return ssm.NewFromConfig(cfg), nil
}

// raw is an EC2 client of the account for test set-up.
func (m *motoClients) raw(t testing.TB, region string) *ec2.Client {
	t.Helper()
	cfg, err := m.srv.Config(context.Background(), region)
	if err != nil {
		t.Fatal(err)
	}
	cfg.APIOptions = append(cfg.APIOptions, accountHeader(m.account))
	return ec2.NewFromConfig(cfg)
}

func accountHeader(account string) func(*middleware.Stack) error {
	return func(st *middleware.Stack) error {
		return st.Build.Add(middleware.BuildMiddlewareFunc("motoAccount",
			func(ctx context.Context, in middleware.BuildInput, next middleware.BuildHandler) (middleware.BuildOutput, middleware.Metadata, error) {
				if req, ok := in.Request.(*smithyhttp.Request); ok {
					req.Header.Set("x-moto-account-id", account)
				}
				return next.HandleBuild(ctx, in)
			}), middleware.After)
	}
}

// callCounter counts API calls ("EC2.DescribeVpcs"), one per page.
type callCounter struct {
	mu    sync.Mutex
	calls map[string]int
	pages map[string]int // pagingEC2's pages
}

func (c *callCounter) middleware(st *middleware.Stack) error {
	return st.Initialize.Add(middleware.InitializeMiddlewareFunc("countCalls",
		func(ctx context.Context, in middleware.InitializeInput, next middleware.InitializeHandler) (middleware.InitializeOutput, middleware.Metadata, error) {
			c.mu.Lock()
			if c.calls == nil {
				c.calls = map[string]int{}
			}
			c.calls[awsmiddleware.GetServiceID(ctx)+"."+awsmiddleware.GetOperationName(ctx)]++
			c.mu.Unlock()
			return next.HandleInitialize(ctx, in)
		}), middleware.After)
}

func (c *callCounter) get(name string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.calls[name]
}

func (c *callCounter) pagesOf(op string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.pages[op]
}

func (c *callCounter) total() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for _, v := range c.calls {
		n += v
	}
	return n
}

func (c *callCounter) reset() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.calls, c.pages = nil, nil
}

// pagingEC2 serves, over moto, the pages moto does not: moto 5.2.1 ignores
// MaxResults on DescribeVpcs, DescribeSubnets, DescribeSecurityGroups,
// DescribeInstanceTypeOfferings and DescribeImages and answers in one page.
// It asks moto for everything once per page and hands out MaxResults items
// after the offset in NextToken, so the service's paginators are exercised
// on moto's real data.
type pagingEC2 struct {
	EC2API
	counts *callCounter
}

func (p *pagingEC2) page(op string) {
	p.counts.mu.Lock()
	defer p.counts.mu.Unlock()
	if p.counts.pages == nil {
		p.counts.pages = map[string]int{}
	}
	p.counts.pages[op]++
}

func window[T any](all []T, maxResults *int32, token *string) ([]T, *string) {
	start := 0
	if token != nil {
		fmt.Sscanf(*token, "offset-%d", &start)
	}
	if start > len(all) {
		start = len(all)
	}
	end := len(all)
	if maxResults != nil && start+int(*maxResults) < end {
		end = start + int(*maxResults)
	}
	if end == len(all) {
		return all[start:end], nil
	}
	return all[start:end], aws.String(fmt.Sprintf("offset-%d", end))
}

func (p *pagingEC2) DescribeVpcs(ctx context.Context, in *ec2.DescribeVpcsInput, opts ...func(*ec2.Options)) (*ec2.DescribeVpcsOutput, error) {
	p.page("DescribeVpcs")
	q := *in
	q.MaxResults, q.NextToken = nil, nil
	out, err := p.EC2API.DescribeVpcs(ctx, &q, opts...)
	if err != nil {
		return nil, err
	}
	out.Vpcs, out.NextToken = window(out.Vpcs, in.MaxResults, in.NextToken)
	return out, nil
}

func (p *pagingEC2) DescribeSubnets(ctx context.Context, in *ec2.DescribeSubnetsInput, opts ...func(*ec2.Options)) (*ec2.DescribeSubnetsOutput, error) {
	p.page("DescribeSubnets")
	q := *in
	q.MaxResults, q.NextToken = nil, nil
	out, err := p.EC2API.DescribeSubnets(ctx, &q, opts...)
	if err != nil {
		return nil, err
	}
	out.Subnets, out.NextToken = window(out.Subnets, in.MaxResults, in.NextToken)
	return out, nil
}

func (p *pagingEC2) DescribeSecurityGroups(ctx context.Context, in *ec2.DescribeSecurityGroupsInput, opts ...func(*ec2.Options)) (*ec2.DescribeSecurityGroupsOutput, error) {
	p.page("DescribeSecurityGroups")
	q := *in
	q.MaxResults, q.NextToken = nil, nil
	out, err := p.EC2API.DescribeSecurityGroups(ctx, &q, opts...)
	if err != nil {
		return nil, err
	}
	out.SecurityGroups, out.NextToken = window(out.SecurityGroups, in.MaxResults, in.NextToken)
	return out, nil
}

func (p *pagingEC2) DescribeInstanceTypeOfferings(ctx context.Context, in *ec2.DescribeInstanceTypeOfferingsInput, opts ...func(*ec2.Options)) (*ec2.DescribeInstanceTypeOfferingsOutput, error) {
	p.page("DescribeInstanceTypeOfferings")
	q := *in
	q.MaxResults, q.NextToken = nil, nil
	out, err := p.EC2API.DescribeInstanceTypeOfferings(ctx, &q, opts...)
	if err != nil {
		return nil, err
	}
	out.InstanceTypeOfferings, out.NextToken = window(out.InstanceTypeOfferings, in.MaxResults, in.NextToken)
	return out, nil
}

func (p *pagingEC2) DescribeInstanceTypes(ctx context.Context, in *ec2.DescribeInstanceTypesInput, opts ...func(*ec2.Options)) (*ec2.DescribeInstanceTypesOutput, error) {
	p.page("DescribeInstanceTypes")
	q := *in
	q.MaxResults, q.NextToken = nil, nil
	out, err := p.EC2API.DescribeInstanceTypes(ctx, &q, opts...)
	if err != nil {
		return nil, err
	}
	out.InstanceTypes, out.NextToken = window(out.InstanceTypes, in.MaxResults, in.NextToken)
	return out, nil
}

func (p *pagingEC2) DescribeImages(ctx context.Context, in *ec2.DescribeImagesInput, opts ...func(*ec2.Options)) (*ec2.DescribeImagesOutput, error) {
	p.page("DescribeImages")
	q := *in
	q.MaxResults, q.NextToken = nil, nil
	out, err := p.EC2API.DescribeImages(ctx, &q, opts...)
	if err != nil {
		return nil, err
	}
	out.Images, out.NextToken = window(out.Images, in.MaxResults, in.NextToken)
	return out, nil
}

// ---- fakes ----

var errNotFaked = errors.New("not faked")

// fakeEC2 is an EC2API of function fields; a call without one fails.
type fakeEC2 struct {
	mu    sync.Mutex
	calls map[string]int

	describeRegions               func(*ec2.DescribeRegionsInput) (*ec2.DescribeRegionsOutput, error)
	describeAvailabilityZones     func(*ec2.DescribeAvailabilityZonesInput) (*ec2.DescribeAvailabilityZonesOutput, error)
	describeVpcs                  func(*ec2.DescribeVpcsInput) (*ec2.DescribeVpcsOutput, error)
	describeSubnets               func(*ec2.DescribeSubnetsInput) (*ec2.DescribeSubnetsOutput, error)
	describeSecurityGroups        func(*ec2.DescribeSecurityGroupsInput) (*ec2.DescribeSecurityGroupsOutput, error)
	describeKeyPairs              func(*ec2.DescribeKeyPairsInput) (*ec2.DescribeKeyPairsOutput, error)
	describeInstanceTypeOfferings func(*ec2.DescribeInstanceTypeOfferingsInput) (*ec2.DescribeInstanceTypeOfferingsOutput, error)
	describeInstanceTypes         func(*ec2.DescribeInstanceTypesInput) (*ec2.DescribeInstanceTypesOutput, error)
	describeImages                func(*ec2.DescribeImagesInput) (*ec2.DescribeImagesOutput, error)
	describeInstances             func(*ec2.DescribeInstancesInput) (*ec2.DescribeInstancesOutput, error)
	describeSecurityGroupRules    func(*ec2.DescribeSecurityGroupRulesInput) (*ec2.DescribeSecurityGroupRulesOutput, error)
	// dryRun answers every other call (the permission check's); nil fails.
	dryRun func(op string) error
	// before runs first on every call (latency, cancellation).
	before func(ctx context.Context, op string) error
}

var _ EC2API = (*fakeEC2)(nil)

func (f *fakeEC2) enter(ctx context.Context, op string) error {
	f.mu.Lock()
	if f.calls == nil {
		f.calls = map[string]int{}
	}
	f.calls[op]++
	f.mu.Unlock()
	if f.before != nil {
		return f.before(ctx, op)
	}
	return nil
}

func (f *fakeEC2) count(op string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls[op]
}

func fake[I, O any](f *fakeEC2, ctx context.Context, op string, fn func(I) (O, error), in I) (O, error) {
	var zero O
	if err := f.enter(ctx, op); err != nil {
		return zero, err
	}
	if fn == nil {
		return zero, fmt.Errorf("%s: %w", op, errNotFaked)
	}
	return fn(in)
}

func dryFake[O any](f *fakeEC2, ctx context.Context, op string) (*O, error) {
	if err := f.enter(ctx, op); err != nil {
		return nil, err
	}
	if f.dryRun == nil {
		return nil, fmt.Errorf("%s: %w", op, errNotFaked)
	}
	if err := f.dryRun(op); err != nil {
		return nil, err
	}
	return new(O), nil
}

func (f *fakeEC2) DescribeRegions(ctx context.Context, in *ec2.DescribeRegionsInput, _ ...func(*ec2.Options)) (*ec2.DescribeRegionsOutput, error) {
	if in.DryRun != nil {
		return dryFake[ec2.DescribeRegionsOutput](f, ctx, "DescribeRegions")
	}
	return fake(f, ctx, "DescribeRegions", f.describeRegions, in)
}

func (f *fakeEC2) DescribeAvailabilityZones(ctx context.Context, in *ec2.DescribeAvailabilityZonesInput, _ ...func(*ec2.Options)) (*ec2.DescribeAvailabilityZonesOutput, error) {
	if in.DryRun != nil {
		return dryFake[ec2.DescribeAvailabilityZonesOutput](f, ctx, "DescribeAvailabilityZones")
	}
	return fake(f, ctx, "DescribeAvailabilityZones", f.describeAvailabilityZones, in)
}

func (f *fakeEC2) DescribeVpcs(ctx context.Context, in *ec2.DescribeVpcsInput, _ ...func(*ec2.Options)) (*ec2.DescribeVpcsOutput, error) {
	if in.DryRun != nil {
		return dryFake[ec2.DescribeVpcsOutput](f, ctx, "DescribeVpcs")
	}
	return fake(f, ctx, "DescribeVpcs", f.describeVpcs, in)
}

func (f *fakeEC2) DescribeSubnets(ctx context.Context, in *ec2.DescribeSubnetsInput, _ ...func(*ec2.Options)) (*ec2.DescribeSubnetsOutput, error) {
	if in.DryRun != nil {
		return dryFake[ec2.DescribeSubnetsOutput](f, ctx, "DescribeSubnets")
	}
	return fake(f, ctx, "DescribeSubnets", f.describeSubnets, in)
}

func (f *fakeEC2) DescribeSecurityGroups(ctx context.Context, in *ec2.DescribeSecurityGroupsInput, _ ...func(*ec2.Options)) (*ec2.DescribeSecurityGroupsOutput, error) {
	if in.DryRun != nil {
		return dryFake[ec2.DescribeSecurityGroupsOutput](f, ctx, "DescribeSecurityGroups")
	}
	return fake(f, ctx, "DescribeSecurityGroups", f.describeSecurityGroups, in)
}

func (f *fakeEC2) DescribeSecurityGroupRules(ctx context.Context, in *ec2.DescribeSecurityGroupRulesInput, _ ...func(*ec2.Options)) (*ec2.DescribeSecurityGroupRulesOutput, error) {
	if in.DryRun != nil {
		return dryFake[ec2.DescribeSecurityGroupRulesOutput](f, ctx, "DescribeSecurityGroupRules")
	}
	return fake(f, ctx, "DescribeSecurityGroupRules", f.describeSecurityGroupRules, in)
}

func (f *fakeEC2) DescribeKeyPairs(ctx context.Context, in *ec2.DescribeKeyPairsInput, _ ...func(*ec2.Options)) (*ec2.DescribeKeyPairsOutput, error) {
	if in.DryRun != nil {
		return dryFake[ec2.DescribeKeyPairsOutput](f, ctx, "DescribeKeyPairs")
	}
	return fake(f, ctx, "DescribeKeyPairs", f.describeKeyPairs, in)
}

func (f *fakeEC2) DescribeInstanceTypeOfferings(ctx context.Context, in *ec2.DescribeInstanceTypeOfferingsInput, _ ...func(*ec2.Options)) (*ec2.DescribeInstanceTypeOfferingsOutput, error) {
	if in.DryRun != nil {
		return dryFake[ec2.DescribeInstanceTypeOfferingsOutput](f, ctx, "DescribeInstanceTypeOfferings")
	}
	return fake(f, ctx, "DescribeInstanceTypeOfferings", f.describeInstanceTypeOfferings, in)
}

func (f *fakeEC2) DescribeInstanceTypes(ctx context.Context, in *ec2.DescribeInstanceTypesInput, _ ...func(*ec2.Options)) (*ec2.DescribeInstanceTypesOutput, error) {
	if in.DryRun != nil {
		return dryFake[ec2.DescribeInstanceTypesOutput](f, ctx, "DescribeInstanceTypes")
	}
	return fake(f, ctx, "DescribeInstanceTypes", f.describeInstanceTypes, in)
}

func (f *fakeEC2) DescribeImages(ctx context.Context, in *ec2.DescribeImagesInput, _ ...func(*ec2.Options)) (*ec2.DescribeImagesOutput, error) {
	if in.DryRun != nil {
		return dryFake[ec2.DescribeImagesOutput](f, ctx, "DescribeImages")
	}
	return fake(f, ctx, "DescribeImages", f.describeImages, in)
}

func (f *fakeEC2) DescribeInstances(ctx context.Context, in *ec2.DescribeInstancesInput, _ ...func(*ec2.Options)) (*ec2.DescribeInstancesOutput, error) {
	if in.DryRun != nil {
		return dryFake[ec2.DescribeInstancesOutput](f, ctx, "DescribeInstances")
	}
	return fake(f, ctx, "DescribeInstances", f.describeInstances, in)
}

func (f *fakeEC2) DescribeVolumes(ctx context.Context, _ *ec2.DescribeVolumesInput, _ ...func(*ec2.Options)) (*ec2.DescribeVolumesOutput, error) {
	return dryFake[ec2.DescribeVolumesOutput](f, ctx, "DescribeVolumes")
}

func (f *fakeEC2) DescribeTags(ctx context.Context, _ *ec2.DescribeTagsInput, _ ...func(*ec2.Options)) (*ec2.DescribeTagsOutput, error) {
	return dryFake[ec2.DescribeTagsOutput](f, ctx, "DescribeTags")
}

func (f *fakeEC2) DescribeAccountAttributes(ctx context.Context, _ *ec2.DescribeAccountAttributesInput, _ ...func(*ec2.Options)) (*ec2.DescribeAccountAttributesOutput, error) {
	return dryFake[ec2.DescribeAccountAttributesOutput](f, ctx, "DescribeAccountAttributes")
}

func (f *fakeEC2) RunInstances(ctx context.Context, _ *ec2.RunInstancesInput, _ ...func(*ec2.Options)) (*ec2.RunInstancesOutput, error) {
	return dryFake[ec2.RunInstancesOutput](f, ctx, "RunInstances")
}

func (f *fakeEC2) CreateTags(ctx context.Context, _ *ec2.CreateTagsInput, _ ...func(*ec2.Options)) (*ec2.CreateTagsOutput, error) {
	return dryFake[ec2.CreateTagsOutput](f, ctx, "CreateTags")
}

func (f *fakeEC2) StartInstances(ctx context.Context, _ *ec2.StartInstancesInput, _ ...func(*ec2.Options)) (*ec2.StartInstancesOutput, error) {
	return dryFake[ec2.StartInstancesOutput](f, ctx, "StartInstances")
}

func (f *fakeEC2) StopInstances(ctx context.Context, _ *ec2.StopInstancesInput, _ ...func(*ec2.Options)) (*ec2.StopInstancesOutput, error) {
	return dryFake[ec2.StopInstancesOutput](f, ctx, "StopInstances")
}

func (f *fakeEC2) RebootInstances(ctx context.Context, _ *ec2.RebootInstancesInput, _ ...func(*ec2.Options)) (*ec2.RebootInstancesOutput, error) {
	return dryFake[ec2.RebootInstancesOutput](f, ctx, "RebootInstances")
}

func (f *fakeEC2) TerminateInstances(ctx context.Context, _ *ec2.TerminateInstancesInput, _ ...func(*ec2.Options)) (*ec2.TerminateInstancesOutput, error) {
	return dryFake[ec2.TerminateInstancesOutput](f, ctx, "TerminateInstances")
}

func (f *fakeEC2) CreateSecurityGroup(ctx context.Context, _ *ec2.CreateSecurityGroupInput, _ ...func(*ec2.Options)) (*ec2.CreateSecurityGroupOutput, error) {
	return dryFake[ec2.CreateSecurityGroupOutput](f, ctx, "CreateSecurityGroup")
}

func (f *fakeEC2) DeleteSecurityGroup(ctx context.Context, _ *ec2.DeleteSecurityGroupInput, _ ...func(*ec2.Options)) (*ec2.DeleteSecurityGroupOutput, error) {
	return dryFake[ec2.DeleteSecurityGroupOutput](f, ctx, "DeleteSecurityGroup")
}

func (f *fakeEC2) AuthorizeSecurityGroupIngress(ctx context.Context, _ *ec2.AuthorizeSecurityGroupIngressInput, _ ...func(*ec2.Options)) (*ec2.AuthorizeSecurityGroupIngressOutput, error) {
	return dryFake[ec2.AuthorizeSecurityGroupIngressOutput](f, ctx, "AuthorizeSecurityGroupIngress")
}

func (f *fakeEC2) AuthorizeSecurityGroupEgress(ctx context.Context, _ *ec2.AuthorizeSecurityGroupEgressInput, _ ...func(*ec2.Options)) (*ec2.AuthorizeSecurityGroupEgressOutput, error) {
	return dryFake[ec2.AuthorizeSecurityGroupEgressOutput](f, ctx, "AuthorizeSecurityGroupEgress")
}

func (f *fakeEC2) RevokeSecurityGroupIngress(ctx context.Context, _ *ec2.RevokeSecurityGroupIngressInput, _ ...func(*ec2.Options)) (*ec2.RevokeSecurityGroupIngressOutput, error) {
	return dryFake[ec2.RevokeSecurityGroupIngressOutput](f, ctx, "RevokeSecurityGroupIngress")
}

func (f *fakeEC2) RevokeSecurityGroupEgress(ctx context.Context, _ *ec2.RevokeSecurityGroupEgressInput, _ ...func(*ec2.Options)) (*ec2.RevokeSecurityGroupEgressOutput, error) {
	return dryFake[ec2.RevokeSecurityGroupEgressOutput](f, ctx, "RevokeSecurityGroupEgress")
}

func (f *fakeEC2) ModifySecurityGroupRules(ctx context.Context, _ *ec2.ModifySecurityGroupRulesInput, _ ...func(*ec2.Options)) (*ec2.ModifySecurityGroupRulesOutput, error) {
	return dryFake[ec2.ModifySecurityGroupRulesOutput](f, ctx, "ModifySecurityGroupRules")
}

func (f *fakeEC2) ImportKeyPair(ctx context.Context, _ *ec2.ImportKeyPairInput, _ ...func(*ec2.Options)) (*ec2.ImportKeyPairOutput, error) {
	return dryFake[ec2.ImportKeyPairOutput](f, ctx, "ImportKeyPair")
}

func (f *fakeEC2) DeleteKeyPair(ctx context.Context, _ *ec2.DeleteKeyPairInput, _ ...func(*ec2.Options)) (*ec2.DeleteKeyPairOutput, error) {
	return dryFake[ec2.DeleteKeyPairOutput](f, ctx, "DeleteKeyPair")
}

// fakeSSM answers GetParameters from a map; GetParametersByPath succeeds.
type fakeSSM struct {
	params map[string]string
	err    error
	mu     sync.Mutex
	asked  [][]string
}

func (f *fakeSSM) GetParameters(_ context.Context, in *ssm.GetParametersInput, _ ...func(*ssm.Options)) (*ssm.GetParametersOutput, error) {
	f.mu.Lock()
	f.asked = append(f.asked, in.Names)
	f.mu.Unlock()
	if f.err != nil {
		return nil, f.err
	}
	out := &ssm.GetParametersOutput{}
	for _, n := range in.Names {
		if v, ok := f.params[n]; ok {
			out.Parameters = append(out.Parameters, ssmParameter(n, v))
		} else {
			out.InvalidParameters = append(out.InvalidParameters, n)
		}
	}
	return out, nil
}

func (f *fakeSSM) GetParametersByPath(context.Context, *ssm.GetParametersByPathInput, ...func(*ssm.Options)) (*ssm.GetParametersByPathOutput, error) {
	if f.err != nil {
		return nil, f.err
	}
	return &ssm.GetParametersByPathOutput{}, nil
}

// fakeClients hands out one fake per region (or the "*" one).
type fakeClients struct {
	ec2 map[string]EC2API
	ssm SSMAPI
	iam IAMAPI
	err error // returned by every constructor when set
}

func (f *fakeClients) EC2(_ context.Context, region string) (EC2API, error) {
	if f.err != nil {
		return nil, f.err
	}
	if api, ok := f.ec2[region]; ok {
		return api, nil
	}
	if api, ok := f.ec2["*"]; ok {
		return api, nil
	}
	return nil, fmt.Errorf("no fake EC2 for %s", region)
}

func (f *fakeClients) SSM(context.Context, string) (SSMAPI, error) {
	if f.err != nil {
		return nil, f.err
	}
	if f.ssm == nil {
		return &fakeSSM{}, nil
	}
	return f.ssm, nil
}

// fakeIAMClients adds IAM to fakeClients.
type fakeIAMClients struct {
	*fakeClients
}

func (f fakeIAMClients) IAM(context.Context) (IAMAPI, error) { return f.iam, nil }

type fakeIAM struct {
	getUser      error
	listKeys     error
	lastUsed     error
	keyID        string
	lastUsedCall int
}

func (f *fakeIAM) GetUser(context.Context, *iam.GetUserInput, ...func(*iam.Options)) (*iam.GetUserOutput, error) {
	if f.getUser != nil {
		return nil, f.getUser
	}
	return &iam.GetUserOutput{}, nil
}

func (f *fakeIAM) ListAccessKeys(context.Context, *iam.ListAccessKeysInput, ...func(*iam.Options)) (*iam.ListAccessKeysOutput, error) {
	if f.listKeys != nil {
		return nil, f.listKeys
	}
	out := &iam.ListAccessKeysOutput{}
	if f.keyID != "" {
		out.AccessKeyMetadata = append(out.AccessKeyMetadata, iamKey(f.keyID))
	}
	return out, nil
}

func (f *fakeIAM) GetAccessKeyLastUsed(_ context.Context, in *iam.GetAccessKeyLastUsedInput, _ ...func(*iam.Options)) (*iam.GetAccessKeyLastUsedOutput, error) {
	f.lastUsedCall++
	if aws.ToString(in.AccessKeyId) != f.keyID {
		return nil, apiErr("NoSuchEntity")
	}
	if f.lastUsed != nil {
		return nil, f.lastUsed
	}
	return &iam.GetAccessKeyLastUsedOutput{}, nil
}

func ssmParameter(name, value string) ssmtypes.Parameter {
	return ssmtypes.Parameter{Name: aws.String(name), Value: aws.String(value)}
}

func iamKey(id string) iamtypes.AccessKeyMetadata {
	return iamtypes.AccessKeyMetadata{AccessKeyId: aws.String(id)}
}

func discardLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }
