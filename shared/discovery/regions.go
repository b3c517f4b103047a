package discovery

import (
	"context"
	"fmt"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"

	"github.com/dflow-sh/cloud-accounts/shared/fault"
)

// Opt-in statuses, as EC2 DescribeRegions reports them.
const (
	OptInNotRequired = "opt-in-not-required"
	OptedIn          = "opted-in"
	NotOptedIn       = "not-opted-in"
)

// Region is one region of the link's partition and whether the account can
// use it.
type Region struct {
	Name        string `json:"name"`
	OptInStatus string `json:"optInStatus"`
	// Enabled is true when the account can use the region: it needs no
	// opt-in, or the account opted in.
	Enabled bool `json:"enabled"`
}

// Regions lists the regions of the link's partition, in the partition
// table's order, with the account's opt-in status from DescribeRegions
// (AllRegions) called in the link's default region.
//
// The answer holds the regions both sources know. A region DescribeRegions
// reports but the partition table lacks is left out: every region route
// would refuse it as unknown until the table (pinned to the SDK) learns it;
// moto, unlike AWS, also reports other partitions' regions. A table region
// AWS does not report does not exist for this account yet (the SDK lists
// announced regions) and is left out too.
func (s *Service) Regions(ctx context.Context, t Target, c Clients, refresh bool) (List[Region], error) {
	l, _, err := s.regions(ctx, t, c, refresh)
	return l, err
}

func (s *Service) regions(ctx context.Context, t Target, c Clients, refresh bool) (List[Region], bool, error) {
	if err := t.check(); err != nil {
		return List[Region]{}, false, err
	}
	home := t.defaultRegion()
	return cached(ctx, s, t, cacheKey("partition", "regions"), refresh, func(ctx context.Context) ([]Region, error) {
		api, err := c.EC2(ctx, home)
		if err != nil {
			return nil, clientError(err, "ec2", home)
		}
		out, err := api.DescribeRegions(ctx, &ec2.DescribeRegionsInput{AllRegions: aws.Bool(true)})
		if err != nil {
			return nil, classify(err, "ec2:DescribeRegions", home)
		}
		status := make(map[string]string, len(out.Regions))
		for _, r := range out.Regions {
			status[aws.ToString(r.RegionName)] = aws.ToString(r.OptInStatus)
		}
		items := make([]Region, 0, len(t.Partition.Regions))
		for _, r := range t.Partition.Regions {
			st, ok := status[r.Code]
			if !ok {
				continue
			}
			if st == "" {
				// Older answers omit the status of regions that need none.
				st = OptInNotRequired
			}
			items = append(items, Region{Name: r.Code, OptInStatus: st, Enabled: st == OptInNotRequired || st == OptedIn})
		}
		return items, nil
	})
}

// requireRegion checks a region named by the caller: it must belong to the
// link's partition (400) and be enabled for the account (422). Regions that
// predate opt-in cannot be disabled (AWS Account Management guide), so only
// opt-in regions consult the Regions answer; a "not enabled" from the cache
// is confirmed with AWS before it is returned, so a region the customer has
// just enabled works at once.
func (s *Service) requireRegion(ctx context.Context, t Target, c Clients, region string) error {
	if err := t.check(); err != nil {
		return err
	}
	if region == "" {
		return fault.Field("region", "is required")
	}
	r, ok := t.Partition.Region(region)
	if !ok {
		return fault.Field("region", "%s is not a region of %s", short(region), t.Partition.Name)
	}
	if !r.OptIn {
		return nil
	}
	for _, refresh := range []bool{false, true} {
		l, hit, err := s.regions(ctx, t, c, refresh)
		if err != nil {
			return err
		}
		if regionEnabled(l.Items, region) {
			return nil
		}
		if !hit {
			break
		}
	}
	return notEnabled(region)
}

func regionEnabled(rs []Region, name string) bool {
	for _, r := range rs {
		if r.Name == name {
			return r.Enabled
		}
	}
	return false
}

func notEnabled(region string) *fault.Error {
	return fault.Unprocessablef(CodeRegionNotEnabled, "region %s is not enabled in the linked AWS account: enable it (AWS console, Account → AWS Regions) and try again", region).With("region", region)
}

// recheck is called with the classified error of a call made in region. A
// region disabled since the Regions answer was cached makes AWS reject the
// credentials there (AuthFailure); before that marks the whole link as
// broken, AWS is asked again whether the region is enabled.
func (s *Service) recheck(ctx context.Context, t Target, c Clients, region string, err error) error {
	if !fault.Is(err, CodeAuthFailed) {
		return err
	}
	if r, ok := t.Partition.Region(region); !ok || !r.OptIn {
		return err
	}
	l, _, rerr := s.regions(ctx, t, c, true)
	if rerr == nil && !regionEnabled(l.Items, region) {
		e := notEnabled(region)
		e.Err = err
		return e
	}
	return err
}

// short quotes a caller's value for a message, cut short so a hostile value
// cannot fill the response.
func short(s string) string {
	const limit = 40
	if len(s) > limit {
		s = s[:limit] + "…"
	}
	return fmt.Sprintf("%q", s)
}
