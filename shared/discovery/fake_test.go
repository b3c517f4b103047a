package discovery

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/aws/smithy-go"

	"github.com/dflow-sh/cloud-accounts/shared/fault"
	"github.com/dflow-sh/cloud-accounts/shared/partition"
)

// regionsAnswer is a DescribeRegions answer: name → opt-in status.
type regionsAnswer struct {
	mu     sync.Mutex
	status map[string]string
}

func (r *regionsAnswer) set(name, status string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.status[name] = status
}

func (r *regionsAnswer) describe(in *ec2.DescribeRegionsInput) (*ec2.DescribeRegionsOutput, error) {
	if !aws.ToBool(in.AllRegions) {
		return nil, errors.New("AllRegions not asked")
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	out := &ec2.DescribeRegionsOutput{}
	for name, st := range r.status {
		reg := types.Region{RegionName: aws.String(name)}
		if st != "" {
			reg.OptInStatus = aws.String(st)
		}
		out.Regions = append(out.Regions, reg)
	}
	return out, nil
}

// commercialAnswer has every commercial region: the 17 that predate opt-in,
// the opt-in ones with the status given (default not opted in).
func commercialAnswer(_ testing.TB, optedIn ...string) *regionsAnswer {
	a := &regionsAnswer{status: map[string]string{}}
	p, _ := partition.ByID(partition.Standard)
	for _, r := range p.Regions {
		switch {
		case !r.OptIn:
			a.status[r.Code] = OptInNotRequired
		case slices.Contains(optedIn, r.Code):
			a.status[r.Code] = OptedIn
		default:
			a.status[r.Code] = NotOptedIn
		}
	}
	return a
}

func TestRegionsOptIn(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	answer := commercialAnswer(t, "af-south-1")
	answer.set("us-east-2", "")        // older answers omit "needs none"
	answer.set("xx-future-1", OptedIn) // unknown to the partition table
	delete(answer.status, "me-west-1") // in the SDK's table, not in AWS's answer
	home := &fakeEC2{describeRegions: answer.describe}
	zones := &fakeEC2{describeAvailabilityZones: func(*ec2.DescribeAvailabilityZonesInput) (*ec2.DescribeAvailabilityZonesOutput, error) {
		return &ec2.DescribeAvailabilityZonesOutput{AvailabilityZones: []types.AvailabilityZone{
			{ZoneName: aws.String("z-b"), ZoneId: aws.String("zid-2"), State: types.AvailabilityZoneStateAvailable},
			{ZoneName: aws.String("z-a"), ZoneId: aws.String("zid-1"), State: types.AvailabilityZoneStateImpaired},
		}}, nil
	}}
	// DescribeRegions is only answered in the link's default region.
	c := &fakeClients{ec2: map[string]EC2API{"eu-west-1": home, "*": zones}}
	tg := commercial(t)
	tg.DefaultRegion = "eu-west-1"
	clk := newClock()
	svc := NewService(newMemCache(clk.Now), WithNow(clk.Now))

	l, err := svc.Regions(ctx, tg, c, false)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]Region{}
	var order []string
	for _, r := range l.Items {
		got[r.Name] = r
		order = append(order, r.Name)
	}
	if len(l.Items) != 35 || got["xx-future-1"].Name != "" || got["me-west-1"].Name != "" {
		t.Errorf("%d regions: %v", len(l.Items), order)
	}
	if order[0] != "us-east-1" || order[1] != "us-east-2" {
		t.Errorf("not in the partition's order: %v", order[:3])
	}
	for name, want := range map[string]Region{
		"us-east-2":  {"us-east-2", OptInNotRequired, true},
		"af-south-1": {"af-south-1", OptedIn, true},
		"ap-east-1":  {"ap-east-1", NotOptedIn, false},
	} {
		if got[name] != want {
			t.Errorf("%s: %+v, want %+v", name, got[name], want)
		}
	}

	// Opted in: served, zones by name.
	z, err := svc.AvailabilityZones(ctx, tg, c, "af-south-1", false)
	if err != nil {
		t.Fatal(err)
	}
	if want := []AvailabilityZone{{"z-a", "zid-1", "impaired"}, {"z-b", "zid-2", "available"}}; !slices.Equal(z.Items, want) {
		t.Errorf("zones %+v", z.Items)
	}

	// Not opted in: 422, after checking the cached "no" with AWS.
	before := home.count("DescribeRegions")
	_, err = svc.AvailabilityZones(ctx, tg, c, "ap-east-1", false)
	wantFault(t, err, fault.Unprocessable, CodeRegionNotEnabled)
	if home.count("DescribeRegions") != before+1 {
		t.Errorf("a cached 'not enabled' was not confirmed")
	}
	// The customer enables it: the next request works at once.
	answer.set("ap-east-1", OptedIn)
	if _, err := svc.AvailabilityZones(ctx, tg, c, "ap-east-1", false); err != nil {
		t.Fatalf("just enabled: %v", err)
	}
	// A region that needs no opt-in never asks DescribeRegions.
	before = home.count("DescribeRegions")
	if _, err := svc.AvailabilityZones(ctx, tg, c, "sa-east-1", false); err != nil {
		t.Fatal(err)
	}
	if home.count("DescribeRegions") != before {
		t.Error("sa-east-1 asked DescribeRegions")
	}
}

func TestReadFailures(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	answer := commercialAnswer(t, "eu-south-1")
	failing := func(code string) *fakeEC2 {
		return &fakeEC2{
			describeRegions: answer.describe,
			describeVpcs: func(*ec2.DescribeVpcsInput) (*ec2.DescribeVpcsOutput, error) {
				return nil, apiErr(code)
			},
		}
	}

	t.Run("permission missing on a read", func(t *testing.T) {
		c := &fakeClients{ec2: map[string]EC2API{"*": failing("UnauthorizedOperation")}}
		_, err := NewService(nil).VPCs(ctx, commercial(t), c, "us-east-1", false)
		e := wantFault(t, err, fault.Unprocessable, CodePermissionDenied)
		if e.Extra["action"] != "ec2:DescribeVpcs" || e.Extra["awsErrorCode"] != "UnauthorizedOperation" {
			t.Errorf("extra %v", e.Extra)
		}
	})
	t.Run("credentials rejected", func(t *testing.T) {
		c := &fakeClients{ec2: map[string]EC2API{"*": failing("AuthFailure")}}
		_, err := NewService(nil).VPCs(ctx, commercial(t), c, "us-east-1", false)
		e := wantFault(t, err, fault.Unprocessable, CodeAuthFailed)
		if e.Extra["awsErrorCode"] != "AuthFailure" {
			t.Errorf("extra %v", e.Extra)
		}
	})
	t.Run("credentials rejected in a region disabled since it was cached", func(t *testing.T) {
		answer := commercialAnswer(t, "eu-south-1")
		f := failing("AuthFailure")
		f.describeRegions = answer.describe
		c := &fakeClients{ec2: map[string]EC2API{"*": f}}
		svc := NewService(newMemCache(nil))
		if _, err := svc.Regions(ctx, commercial(t), c, false); err != nil {
			t.Fatal(err)
		}
		answer.set("eu-south-1", NotOptedIn)
		_, err := svc.VPCs(ctx, commercial(t), c, "eu-south-1", false)
		e := wantFault(t, err, fault.Unprocessable, CodeRegionNotEnabled)
		if !fault.Is(e.Err, CodeAuthFailed) {
			t.Errorf("cause %v", e.Err)
		}
	})
	t.Run("the caller's credential fault passes through", func(t *testing.T) {
		refused := fault.Unprocessablef("credentials_invalid", "role refused")
		_, err := NewService(nil).VPCs(ctx, commercial(t), &fakeClients{err: refused}, "us-east-1", false)
		if err != refused {
			t.Fatalf("got %v", err)
		}
	})
	t.Run("a broken client is internal", func(t *testing.T) {
		_, err := NewService(nil).VPCs(ctx, commercial(t), &fakeClients{err: errors.New("boom")}, "us-east-1", false)
		if _, ok := fault.As(err); ok || err == nil {
			t.Fatalf("got %v", err)
		}
	})
}

// inventoryFake answers the four counts, or fails one of them.
func inventoryFake(answer *regionsAnswer, vpcs int, fail string, err error) *fakeEC2 {
	failIf := func(op string) error {
		if op == fail {
			return err
		}
		return nil
	}
	return &fakeEC2{
		describeRegions: answer.describe,
		describeVpcs: func(*ec2.DescribeVpcsInput) (*ec2.DescribeVpcsOutput, error) {
			return &ec2.DescribeVpcsOutput{Vpcs: make([]types.Vpc, vpcs)}, failIf("DescribeVpcs")
		},
		describeSubnets: func(*ec2.DescribeSubnetsInput) (*ec2.DescribeSubnetsOutput, error) {
			return &ec2.DescribeSubnetsOutput{Subnets: make([]types.Subnet, 3)}, failIf("DescribeSubnets")
		},
		describeSecurityGroups: func(*ec2.DescribeSecurityGroupsInput) (*ec2.DescribeSecurityGroupsOutput, error) {
			return &ec2.DescribeSecurityGroupsOutput{SecurityGroups: make([]types.SecurityGroup, 2)}, failIf("DescribeSecurityGroups")
		},
		describeInstances: func(*ec2.DescribeInstancesInput) (*ec2.DescribeInstancesOutput, error) {
			return &ec2.DescribeInstancesOutput{Reservations: []types.Reservation{{Instances: make([]types.Instance, 4)}, {Instances: make([]types.Instance, 1)}}}, failIf("DescribeInstances")
		},
	}
}

func TestInventoryPartialFailures(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	answer := commercialAnswer(t, "af-south-1")
	c := &fakeClients{ec2: map[string]EC2API{
		"us-east-1":    inventoryFake(answer, 1, "", nil),
		"af-south-1":   inventoryFake(answer, 2, "", nil),
		"eu-west-1":    inventoryFake(answer, 1, "DescribeSubnets", apiErr("UnauthorizedOperation")),
		"ap-south-1":   inventoryFake(answer, 1, "DescribeInstances", apiErr("RequestLimitExceeded")),
		"ca-central-1": inventoryFake(answer, 1, "DescribeVpcs", &smithy.GenericAPIError{Code: "InternalError", Fault: smithy.FaultServer}),
		"sa-east-1":    inventoryFake(answer, 1, "DescribeVpcs", apiErr("InvalidParameterValue")),
	}}
	svc := NewService(nil)
	inv, err := svc.Inventory(ctx, commercial(t), c, []string{"us-east-1", "af-south-1", "eu-west-1", "ap-south-1", "ca-central-1", "ap-east-1", "sa-east-1", "us-east-1"})
	if err != nil {
		t.Fatal(err)
	}
	want := []RegionInventory{
		{Region: "us-east-1", VPCs: ptr(1), Subnets: ptr(3), SecurityGroups: ptr(2), Instances: ptr(5)},
		{Region: "af-south-1", VPCs: ptr(2), Subnets: ptr(3), SecurityGroups: ptr(2), Instances: ptr(5)},
		{Region: "eu-west-1", Error: &RegionError{Code: CodePermissionDenied}},
		{Region: "ap-south-1", Error: &RegionError{Code: CodeThrottled}},
		{Region: "ca-central-1", Error: &RegionError{Code: CodeUnavailable}},
		{Region: "ap-east-1", Error: &RegionError{Code: CodeRegionNotEnabled}},
		{Region: "sa-east-1", Error: &RegionError{Code: CodeProviderError, Message: "AWS could not be queried in this region"}},
	}
	if len(inv.Items) != len(want) {
		t.Fatalf("items %s", toJSON(inv.Items))
	}
	for i, w := range want {
		got := inv.Items[i]
		if w.Error != nil && got.Error != nil && w.Error.Message == "" {
			w.Error.Message = got.Error.Message
			if got.Error.Message == "" {
				t.Errorf("%s: no message", got.Region)
			}
		}
		if !jsonEqual(got, w) {
			t.Errorf("item %d: %s\nwant %s", i, toJSON(got), toJSON(w))
		}
	}

	t.Run("every region rejecting the credentials fails the answer", func(t *testing.T) {
		bad := inventoryFake(answer, 1, "DescribeVpcs", apiErr("AuthFailure"))
		c := &fakeClients{ec2: map[string]EC2API{"*": bad}}
		_, err := svc.Inventory(ctx, commercial(t), c, []string{"us-east-1", "eu-west-1", "ap-east-1"})
		wantFault(t, err, fault.Unprocessable, CodeAuthFailed)
	})
}

// At most WithConcurrency calls are in flight across the regions.
func TestInventoryBoundsCallsInFlight(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	for _, limit := range []int{1, 3, 7} {
		t.Run(fmt.Sprint(limit), func(t *testing.T) {
			var inFlight, peak atomic.Int32
			f := inventoryFake(commercialAnswer(t), 1, "", nil)
			f.before = func(ctx context.Context, op string) error {
				if op == "DescribeRegions" {
					return nil
				}
				n := inFlight.Add(1)
				defer inFlight.Add(-1)
				for {
					p := peak.Load()
					if n <= p || peak.CompareAndSwap(p, n) {
						break
					}
				}
				// Hold the call while the scheduler starts others.
				for range 50 {
					runtime.Gosched()
				}
				return nil
			}
			svc := NewService(nil, WithConcurrency(limit))
			inv, err := svc.Inventory(ctx, commercial(t), &fakeClients{ec2: map[string]EC2API{"*": f}}, nil)
			if err != nil {
				t.Fatal(err)
			}
			if p := peak.Load(); p > int32(limit) || p < 1 {
				t.Errorf("peak %d calls in flight, limit %d", p, limit)
			}
			if n := f.count("DescribeVpcs"); n != 17 {
				t.Errorf("%d DescribeVpcs calls for 17 enabled regions", n)
			}
			if len(inv.Items) != 36 {
				t.Errorf("%d items", len(inv.Items))
			}
		})
	}
}

// Cancelling the request stops the fan-out with the context's error.
func TestInventoryCancelled(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(context.Background())
	f := inventoryFake(commercialAnswer(t), 1, "", nil)
	f.before = func(ctx context.Context, op string) error {
		cancel()
		return ctx.Err()
	}
	_, err := NewService(nil, WithConcurrency(2)).Inventory(ctx, commercial(t), &fakeClients{ec2: map[string]EC2API{"*": f}}, []string{"us-east-1", "us-west-2"})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("got %v", err)
	}
}
