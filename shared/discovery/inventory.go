package discovery

import (
	"context"
	"fmt"
	"slices"
	"sync"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"

	"github.com/dflow-sh/cloud-accounts/shared/fault"
)

// AllRegions, as the only region of a request, means every region of the
// link's partition.
const AllRegions = "all"

// RegionInventory counts what the account has in a region, or says why the
// region could not be counted (counts absent).
type RegionInventory struct {
	Region         string       `json:"region"`
	VPCs           *int         `json:"vpcs,omitempty"`
	Subnets        *int         `json:"subnets,omitempty"`
	SecurityGroups *int         `json:"securityGroups,omitempty"`
	Instances      *int         `json:"instances,omitempty"`
	Error          *RegionError `json:"error,omitempty"`
}

// RegionError is why one region of a multi-region answer failed; Code is a
// fault code (region_not_enabled, provider_permission_denied,
// provider_throttled…).
type RegionError struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

// Inventory counts VPCs, subnets, security groups and instances (those not
// terminated) in each requested region (none or "all": every region of the
// partition), gathering the regions concurrently with at most
// WithConcurrency AWS calls in flight. A region that fails, or is not
// enabled, carries its error; it never fails the whole answer, unless every
// region failed because AWS rejected the credentials (the link is broken:
// 422 provider_auth_failed).
//
// Inventory is not cached: it is an overview asked for now and then, and
// counts should be current. It relies on the (cached) Regions answer for
// the enablement of opt-in regions.
func (s *Service) Inventory(ctx context.Context, t Target, c Clients, regions []string) (List[RegionInventory], error) {
	sel, err := s.selectRegions(t, regions)
	if err != nil {
		return List[RegionInventory]{}, err
	}
	enabled, err := s.enabledRegions(ctx, t, c, sel)
	if err != nil {
		return List[RegionInventory]{}, err
	}
	sem := make(chan struct{}, s.concurrency)
	items := make([]RegionInventory, len(sel))
	errs := make([]error, len(sel)) // nil for regions not tried
	var wg sync.WaitGroup
	for i, region := range sel {
		items[i].Region = region
		if !enabled[region] {
			items[i].Error = regionError(notEnabled(region))
			continue
		}
		wg.Go(func() {
			if err := s.countRegion(ctx, t, c, region, sem, &items[i]); err != nil {
				errs[i] = err
				items[i].Error = regionError(err)
			}
		})
	}
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return List[RegionInventory]{}, fmt.Errorf("inventory: %w", err)
	}
	tried := 0
	for _, r := range sel {
		if enabled[r] {
			tried++
		}
	}
	if err := allRejected(tried, errs); err != nil {
		return List[RegionInventory]{}, err
	}
	return List[RegionInventory]{Items: items, CachedAt: s.now()}, nil
}

// selectRegions validates a request's regions: none or "all" is every
// region of the partition; otherwise each must be one of its regions
// (duplicates dropped, order kept).
func (s *Service) selectRegions(t Target, regions []string) ([]string, error) {
	if err := t.check(); err != nil {
		return nil, err
	}
	if len(regions) == 0 || (len(regions) == 1 && regions[0] == AllRegions) {
		all := make([]string, 0, len(t.Partition.Regions))
		for _, r := range t.Partition.Regions {
			all = append(all, r.Code)
		}
		return all, nil
	}
	var sel []string
	for _, r := range regions {
		if r == AllRegions {
			return nil, fault.Field("regions", "%q cannot be combined with region codes", AllRegions)
		}
		if !t.Partition.HasRegion(r) {
			return nil, fault.Field("regions", "%s is not a region of %s", short(r), t.Partition.Name)
		}
		if !slices.Contains(sel, r) {
			sel = append(sel, r)
		}
	}
	return sel, nil
}

// enabledRegions tells which of the regions the account can use: those
// that need no opt-in always; opt-in ones per the (cached) Regions answer,
// asked only when one is among them.
func (s *Service) enabledRegions(ctx context.Context, t Target, c Clients, sel []string) (map[string]bool, error) {
	enabled := make(map[string]bool, len(sel))
	needAnswer := false
	for _, code := range sel {
		r, _ := t.Partition.Region(code)
		enabled[code] = !r.OptIn
		needAnswer = needAnswer || r.OptIn
	}
	if !needAnswer {
		return enabled, nil
	}
	l, _, err := s.regions(ctx, t, c, false)
	if err != nil {
		return nil, err
	}
	for _, r := range l.Items {
		if _, asked := enabled[r.Name]; asked && r.Enabled {
			enabled[r.Name] = true
		}
	}
	return enabled, nil
}

// call runs one AWS request once a slot of sem is free.
func call(ctx context.Context, sem chan struct{}, f func() error) error {
	select {
	case sem <- struct{}{}:
	case <-ctx.Done():
		return ctx.Err()
	}
	defer func() { <-sem }()
	return f()
}

// countRegion makes the region's four counts concurrently, each page a
// call under sem.
func (s *Service) countRegion(ctx context.Context, t Target, c Clients, region string, sem chan struct{}, into *RegionInventory) error {
	api, err := c.EC2(ctx, region)
	if err != nil {
		return clientError(err, "ec2", region)
	}
	page := s.maxResults(5, 1000)
	counts := []struct {
		into  **int
		count func() (int, error)
	}{
		{&into.VPCs, func() (int, error) {
			return countPages(ctx, sem, ec2.NewDescribeVpcsPaginator(api, &ec2.DescribeVpcsInput{MaxResults: page}),
				func(o *ec2.DescribeVpcsOutput) int { return len(o.Vpcs) }, "ec2:DescribeVpcs", region)
		}},
		{&into.Subnets, func() (int, error) {
			return countPages(ctx, sem, ec2.NewDescribeSubnetsPaginator(api, &ec2.DescribeSubnetsInput{MaxResults: page}),
				func(o *ec2.DescribeSubnetsOutput) int { return len(o.Subnets) }, "ec2:DescribeSubnets", region)
		}},
		{&into.SecurityGroups, func() (int, error) {
			return countPages(ctx, sem, ec2.NewDescribeSecurityGroupsPaginator(api, &ec2.DescribeSecurityGroupsInput{MaxResults: page}),
				func(o *ec2.DescribeSecurityGroupsOutput) int { return len(o.SecurityGroups) }, "ec2:DescribeSecurityGroups", region)
		}},
		{&into.Instances, func() (int, error) {
			in := &ec2.DescribeInstancesInput{MaxResults: page, Filters: []types.Filter{{
				Name:   aws.String("instance-state-name"),
				Values: []string{"pending", "running", "shutting-down", "stopping", "stopped"},
			}}}
			return countPages(ctx, sem, ec2.NewDescribeInstancesPaginator(api, in), func(o *ec2.DescribeInstancesOutput) int {
				n := 0
				for _, r := range o.Reservations {
					n += len(r.Instances)
				}
				return n
			}, "ec2:DescribeInstances", region)
		}},
	}
	errs := make([]error, len(counts))
	values := make([]int, len(counts))
	var wg sync.WaitGroup
	for i, k := range counts {
		wg.Go(func() { values[i], errs[i] = k.count() })
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return s.recheck(ctx, t, c, region, err)
		}
	}
	for i, k := range counts {
		*k.into = &values[i]
	}
	return nil
}

// pager is an SDK paginator.
type pager[O any] interface {
	HasMorePages() bool
	NextPage(ctx context.Context, optFns ...func(*ec2.Options)) (O, error)
}

func countPages[O any](ctx context.Context, sem chan struct{}, p pager[O], size func(O) int, action, region string) (int, error) {
	n := 0
	for p.HasMorePages() {
		err := call(ctx, sem, func() error {
			out, err := p.NextPage(ctx)
			if err != nil {
				return err
			}
			n += size(out)
			return nil
		})
		if err != nil {
			return 0, classify(err, action, region)
		}
	}
	return n, nil
}

// regionError is the shown form of a region's failure. Internal errors
// keep their detail to the logs.
func regionError(err error) *RegionError {
	e, ok := fault.As(err)
	if !ok || e.Kind == fault.Internal {
		return &RegionError{Code: CodeProviderError, Message: "AWS could not be queried in this region"}
	}
	return &RegionError{Code: e.Code, Message: e.Detail}
}

// allRejected returns the first provider_auth_failed fault when every one
// of the tried regions failed with it: the credentials, not the regions,
// are at fault then, and the caller marks the link unhealthy.
func allRejected(tried int, errs []error) error {
	var first error
	rejected := 0
	for _, err := range errs {
		if fault.Is(err, CodeAuthFailed) {
			rejected++
			if first == nil {
				first = err
			}
		}
	}
	if tried == 0 || rejected < tried {
		return nil
	}
	return first
}
