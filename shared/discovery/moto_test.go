package discovery

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/aws/smithy-go"

	"github.com/dflow-sh/cloud-accounts/shared/fault"
	"github.com/dflow-sh/cloud-accounts/shared/partition"
)

// moto's Amazon Linux 2023 images (moto 5.2.1's bundled AMI list).
const (
	motoAL2023x86 = "ami-0ed094fb1304fd857" // al2023-ami-2023.11.20260427.1-kernel-6.1-x86_64, us-east-1
)

// Every method against moto's default VPC, subnets and security group in
// two regions of a fresh account.
func TestOnMotoDefaults(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	mc := newMotoClients(t)
	svc := NewService(newMemCache(nil))
	tg := commercial(t)

	for _, region := range []string{"us-east-1", "eu-west-1"} {
		t.Run(region, func(t *testing.T) {
			zones, err := svc.AvailabilityZones(ctx, tg, mc, region, false)
			if err != nil {
				t.Fatal(err)
			}
			if len(zones.Items) < 3 || zones.CachedAt.IsZero() {
				t.Fatalf("zones %+v", zones)
			}
			for _, z := range zones.Items {
				if !strings.HasPrefix(z.Name, region) || z.ZoneID == "" || z.State != "available" {
					t.Errorf("zone %+v", z)
				}
			}

			vpcs, err := svc.VPCs(ctx, tg, mc, region, false)
			if err != nil {
				t.Fatal(err)
			}
			if len(vpcs.Items) != 1 {
				t.Fatalf("vpcs %+v", vpcs.Items)
			}
			def := vpcs.Items[0]
			if !def.IsDefault || def.CIDRBlock != "172.31.0.0/16" || def.State != "available" || !vpcIDPattern.MatchString(def.ID) {
				t.Errorf("default vpc %+v", def)
			}

			subnets, err := svc.Subnets(ctx, tg, mc, region, def.ID, false)
			if err != nil {
				t.Fatal(err)
			}
			if len(subnets.Items) != len(zones.Items) {
				t.Errorf("%d default subnets for %d zones", len(subnets.Items), len(zones.Items))
			}
			for _, n := range subnets.Items {
				if n.VPCID != def.ID || !n.DefaultForAZ || !n.MapPublicIPOnLaunch || n.AvailableIPAddressCount <= 0 ||
					!strings.HasPrefix(n.CIDRBlock, "172.31.") || !strings.HasPrefix(n.AvailabilityZone, region) {
					t.Errorf("subnet %+v", n)
				}
			}
			all, err := svc.Subnets(ctx, tg, mc, region, "", false)
			if err != nil || len(all.Items) != len(subnets.Items) {
				t.Errorf("all subnets: %d, %v", len(all.Items), err)
			}

			groups, err := svc.SecurityGroups(ctx, tg, mc, region, def.ID, false)
			if err != nil {
				t.Fatal(err)
			}
			if len(groups.Items) != 1 {
				t.Fatalf("groups %+v", groups.Items)
			}
			g := groups.Items[0]
			wantOut := []Rule{{Protocol: "all", Sources: []RuleSource{{CIDRIPv4: "0.0.0.0/0"}}}}
			if g.Name != "default" || g.VPCID != def.ID || !strings.HasPrefix(g.ID, "sg-") || !jsonEqual(g.OutboundRules, wantOut) {
				t.Errorf("default group %s", toJSON(g))
			}

			keys, err := svc.KeyPairs(ctx, tg, mc, region, false)
			if err != nil || len(keys.Items) != 0 {
				t.Fatalf("key pairs %+v %v", keys.Items, err)
			}

			its, err := svc.InstanceTypes(ctx, tg, mc, region, InstanceTypeFilter{}, false)
			if err != nil {
				t.Fatal(err)
			}
			if len(its.Items) < 100 {
				t.Fatalf("%d instance types", len(its.Items))
			}
			if !slices.IsSortedFunc(its.Items, func(a, b InstanceType) int {
				return cmp.Or(cmp.Compare(a.VCPUs, b.VCPUs), cmp.Compare(a.MemoryMiB, b.MemoryMiB), cmp.Compare(a.Name, b.Name))
			}) {
				t.Error("instance types not sorted by vcpus, memory, name")
			}
			micro := find(its.Items, func(it InstanceType) bool { return it.Name == "t3.micro" })
			if micro == nil || micro.VCPUs != 2 || micro.MemoryMiB != 1024 || !slices.Contains(micro.Architectures, "x86_64") || !micro.CurrentGeneration {
				t.Errorf("t3.micro %+v", micro)
			}

			for _, arch := range []string{ArchX86, ArchARM} {
				imgs, err := svc.Images(ctx, tg, mc, region, OSAmazonLinux, arch, false)
				if err != nil {
					t.Fatal(err)
				}
				// moto ships AL2023 with kernels 6.1, 6.12 and 6.18, all
				// created "now": the newest by name is kept, one per version.
				if len(imgs.Items) != 1 {
					t.Fatalf("%s images %s", arch, toJSON(imgs.Items))
				}
				im := imgs.Items[0]
				if im.OS != OSAmazonLinux || im.Version != "2023" || im.Architecture != arch || im.SSHUser != "ec2-user" ||
					!strings.HasPrefix(im.ID, "ami-") || im.CreationDate.IsZero() ||
					im.Name != "al2023-ami-2023.11.20260427.1-kernel-6.18-"+arch {
					t.Errorf("image %+v", im)
				}
			}
			// moto's Canonical images are 14.04 and 16.04 (unsupported) and
			// it has no Debian ones: nothing current to offer.
			for _, os := range []string{OSUbuntu, OSDebian} {
				imgs, err := svc.Images(ctx, tg, mc, region, os, ArchX86, false)
				if err != nil || len(imgs.Items) != 0 {
					t.Errorf("%s images %+v %v", os, imgs.Items, err)
				}
			}

			inv, err := svc.Inventory(ctx, tg, mc, []string{region})
			if err != nil {
				t.Fatal(err)
			}
			want := RegionInventory{Region: region, VPCs: ptr(1), Subnets: ptr(len(zones.Items)), SecurityGroups: ptr(1), Instances: ptr(0)}
			if len(inv.Items) != 1 || !jsonEqual(inv.Items[0], want) {
				t.Errorf("inventory %s, want %s", toJSON(inv.Items), toJSON(want))
			}
		})
	}
}

func TestOnMotoRegions(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	mc := newMotoClients(t)
	svc := NewService(nil)

	l, err := svc.Regions(ctx, commercial(t), mc, false)
	if err != nil {
		t.Fatal(err)
	}
	byName := map[string]Region{}
	for _, r := range l.Items {
		byName[r.Name] = r
		if !mustPartition(t, partition.Standard).HasRegion(r.Name) {
			t.Errorf("region %s is not commercial", r.Name)
		}
	}
	// moto answers with every partition's regions and a fixed opt-in status;
	// it lacks me-west-1 and sa-west-1, which the SDK's table has.
	if len(l.Items) != 34 {
		t.Errorf("%d regions: %s", len(l.Items), toJSON(l.Items))
	}
	for name, want := range map[string]Region{
		"us-east-1":  {"us-east-1", OptInNotRequired, true},
		"af-south-1": {"af-south-1", OptInNotRequired, true},
		"ap-east-1":  {"ap-east-1", NotOptedIn, false},
	} {
		if byName[name] != want {
			t.Errorf("%s: %+v, want %+v", name, byName[name], want)
		}
	}

	_, err = svc.AvailabilityZones(ctx, commercial(t), mc, "ap-east-1", false)
	e := wantFault(t, err, fault.Unprocessable, CodeRegionNotEnabled)
	if e.Extra["region"] != "ap-east-1" {
		t.Errorf("extra %v", e.Extra)
	}

	inv, err := svc.Inventory(ctx, commercial(t), mc, []string{AllRegions})
	if err != nil {
		t.Fatal(err)
	}
	if len(inv.Items) != len(mustPartition(t, partition.Standard).Regions) {
		t.Fatalf("%d inventory items", len(inv.Items))
	}
	for _, it := range inv.Items {
		r, known := byName[it.Region]
		switch {
		case known && r.Enabled:
			if it.Error != nil || it.VPCs == nil || *it.VPCs != 1 {
				t.Errorf("%s: %s", it.Region, toJSON(it))
			}
		default:
			if it.Error == nil || it.Error.Code != CodeRegionNotEnabled || it.VPCs != nil {
				t.Errorf("%s: %s", it.Region, toJSON(it))
			}
		}
	}
}

// Links in GovCloud and China see only their partition's regions (moto
// reports all 38 wherever it is asked).
func TestOnMotoOtherPartitions(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	mc := newMotoClients(t)
	svc := NewService(nil)
	for id, want := range map[string][]string{
		partition.GovCloud: {"us-gov-west-1", "us-gov-east-1"},
		partition.China:    {"cn-north-1", "cn-northwest-1"},
	} {
		p := mustPartition(t, id)
		tg := Target{LinkID: "lnk_" + id, Partition: p}
		l, err := svc.Regions(ctx, tg, mc, false)
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, r := range l.Items {
			got = append(got, r.Name)
			if !r.Enabled {
				t.Errorf("%s not enabled", r.Name)
			}
		}
		if !slices.Equal(got, want) {
			t.Errorf("%s regions %v, want %v", id, got, want)
		}
		vpcs, err := svc.VPCs(ctx, tg, mc, want[0], false)
		if err != nil || len(vpcs.Items) != 1 {
			t.Errorf("%s vpcs %+v %v", id, vpcs.Items, err)
		}
		// A commercial region is not a region of the link.
		_, err = svc.VPCs(ctx, tg, mc, "us-east-1", false)
		wantFault(t, err, fault.Invalid, "validation_failed")
	}
}

func TestValidation(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	svc := NewService(nil)
	tg := commercial(t)
	c := &fakeClients{err: fmt.Errorf("no AWS call expected")}
	tests := []struct {
		name  string
		call  func() error
		field string
	}{
		{"unknown region", func() error { _, err := svc.VPCs(ctx, tg, c, "xx-nowhere-1", false); return err }, "region"},
		{"region of another partition", func() error { _, err := svc.KeyPairs(ctx, tg, c, "cn-north-1", false); return err }, "region"},
		{"no region", func() error { _, err := svc.AvailabilityZones(ctx, tg, c, "", false); return err }, "region"},
		{"vpc id uppercase", func() error { _, err := svc.Subnets(ctx, tg, c, "us-east-1", "vpc-0ABCDEF0", false); return err }, "vpcId"},
		{"vpc id short", func() error { _, err := svc.SecurityGroups(ctx, tg, c, "us-east-1", "vpc-123", false); return err }, "vpcId"},
		{"vpc id other resource", func() error {
			_, err := svc.Subnets(ctx, tg, c, "us-east-1", "subnet-0123456789abcdef0", false)
			return err
		}, "vpcId"},
		{"arch", func() error {
			_, err := svc.InstanceTypes(ctx, tg, c, "us-east-1", InstanceTypeFilter{Arch: "amd64"}, false)
			return err
		}, "arch"},
		{"min vcpus", func() error {
			_, err := svc.InstanceTypes(ctx, tg, c, "us-east-1", InstanceTypeFilter{MinVCPUs: -1}, false)
			return err
		}, "minVcpus"},
		{"min memory", func() error {
			_, err := svc.InstanceTypes(ctx, tg, c, "us-east-1", InstanceTypeFilter{MinMemoryMiB: -512}, false)
			return err
		}, "minMemoryMiB"},
		{"os", func() error { _, err := svc.Images(ctx, tg, c, "us-east-1", "windows", ArchX86, false); return err }, "os"},
		{"image arch", func() error { _, err := svc.Images(ctx, tg, c, "us-east-1", OSUbuntu, "i386", false); return err }, "arch"},
		{"inventory region", func() error { _, err := svc.Inventory(ctx, tg, c, []string{"us-east-1", "mars-1"}); return err }, "regions"},
		{"inventory all and more", func() error { _, err := svc.Inventory(ctx, tg, c, []string{"all", "us-east-1"}); return err }, "regions"},
		{"permissions region", func() error { _, err := svc.PermissionsCheck(ctx, tg, c, []string{"us-gov-west-1"}); return err }, "regions"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := wantFault(t, tt.call(), fault.Invalid, "validation_failed")
			if len(e.Fields) != 1 || e.Fields[0].Field != tt.field {
				t.Errorf("fields %+v, want %s", e.Fields, tt.field)
			}
		})
	}
	// A valid 17-digit and 8-digit VPC id pass validation (and then need AWS).
	for _, id := range []string{"vpc-0123456789abcdef0", "vpc-01234567"} {
		if err := checkVPCID(id); err != nil {
			t.Errorf("%s: %v", id, err)
		}
	}
}

// A second call is answered from the cache without calling EC2; refresh
// calls again and rewrites; an entry older than the TTL is refetched even
// when the store still returns it.
func TestOnMotoCache(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	mc := newMotoClients(t)
	clk := newClock()
	cache := newMemCache(clk.Now)
	// The store keeps entries for a day; the service's TTL is 5 minutes.
	svc := NewService(longLived{cache}, WithNow(clk.Now))
	tg := commercial(t)

	first, err := svc.VPCs(ctx, tg, mc, "us-east-1", false)
	if err != nil {
		t.Fatal(err)
	}
	if first.CachedAt != clk.Now() || mc.counts.get("EC2.DescribeVpcs") != 1 {
		t.Fatalf("first: cachedAt %v, %d calls", first.CachedAt, mc.counts.get("EC2.DescribeVpcs"))
	}

	clk.Advance(time.Minute)
	second, err := svc.VPCs(ctx, tg, mc, "us-east-1", false)
	if err != nil {
		t.Fatal(err)
	}
	if mc.counts.total() != 1 {
		t.Errorf("cache hit made AWS calls: %v", mc.counts.calls)
	}
	if !second.CachedAt.Equal(first.CachedAt) || !jsonEqual(second.Items, first.Items) {
		t.Errorf("second %+v, first %+v", second, first)
	}

	clk.Advance(time.Minute)
	third, err := svc.VPCs(ctx, tg, mc, "us-east-1", true)
	if err != nil {
		t.Fatal(err)
	}
	if mc.counts.get("EC2.DescribeVpcs") != 2 || !third.CachedAt.Equal(clk.Now()) {
		t.Errorf("refresh: %d calls, cachedAt %v", mc.counts.get("EC2.DescribeVpcs"), third.CachedAt)
	}
	fourth, _ := svc.VPCs(ctx, tg, mc, "us-east-1", false)
	if !fourth.CachedAt.Equal(third.CachedAt) || mc.counts.get("EC2.DescribeVpcs") != 2 {
		t.Errorf("refresh did not rewrite the cache: %v", fourth.CachedAt)
	}

	clk.Advance(DefaultTTL)
	if _, err := svc.VPCs(ctx, tg, mc, "us-east-1", false); err != nil {
		t.Fatal(err)
	}
	if mc.counts.get("EC2.DescribeVpcs") != 3 {
		t.Errorf("stale entry served: %d calls", mc.counts.get("EC2.DescribeVpcs"))
	}

	// Filters apply to one cached offer; an opt-in region asks
	// DescribeRegions once, a region without opt-in never.
	mc.counts.reset()
	for _, f := range []InstanceTypeFilter{{}, {Arch: ArchARM}, {MinVCPUs: 4, MinMemoryMiB: 16384}} {
		l, err := svc.InstanceTypes(ctx, tg, mc, "af-south-1", f, false)
		if err != nil {
			t.Fatal(err)
		}
		for _, it := range l.Items {
			if !f.match(it) {
				t.Errorf("filter %+v let %+v through", f, it)
			}
		}
	}
	if n := mc.counts.get("EC2.DescribeInstanceTypeOfferings"); n != 1 {
		t.Errorf("%d offering calls for three filters", n)
	}
	if n := mc.counts.get("EC2.DescribeRegions"); n != 1 {
		t.Errorf("%d DescribeRegions calls", n)
	}
	if _, err := svc.KeyPairs(ctx, tg, mc, "us-west-2", false); err != nil {
		t.Fatal(err)
	}
	if n := mc.counts.get("EC2.DescribeRegions"); n != 1 {
		t.Errorf("us-west-2 asked DescribeRegions (%d calls)", n)
	}

	wantKeys := []string{
		"lnk_test|v2/af-south-1/instance-types",
		"lnk_test|v2/partition/regions",
		"lnk_test|v2/us-east-1/vpcs",
		"lnk_test|v2/us-west-2/key-pairs",
	}
	if got := cache.keys(); !slices.Equal(got, wantKeys) {
		t.Errorf("cache keys %v", got)
	}
}

// longLived stores entries for a day whatever TTL the service asks for, as
// DynamoDB (whose TTL deletes late) may.
type longLived struct{ *memCache }

func (l longLived) Put(ctx context.Context, linkID, key string, v any, _ time.Duration) error {
	return l.memCache.Put(ctx, linkID, key, v, 24*time.Hour)
}

// A failing cache is logged and bypassed, never fatal.
func TestCacheFailuresAreNotFatal(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	cache := newMemCache(nil)
	cache.failGet = fmt.Errorf("dynamodb down")
	cache.failPut = fmt.Errorf("dynamodb down")
	f := &fakeEC2{describeVpcs: func(*ec2.DescribeVpcsInput) (*ec2.DescribeVpcsOutput, error) {
		return &ec2.DescribeVpcsOutput{Vpcs: []types.Vpc{{VpcId: aws.String("vpc-01234567")}}}, nil
	}}
	svc := NewService(cache, WithLogger(discardLogger()))
	l, err := svc.VPCs(ctx, commercial(t), &fakeClients{ec2: map[string]EC2API{"*": f}}, "us-east-1", false)
	if err != nil || len(l.Items) != 1 {
		t.Fatalf("%+v %v", l, err)
	}
}

// Pagination is followed to the end. moto pages only DescribeInstances;
// pagingEC2 pages moto's other answers by MaxResults.
func TestOnMotoPagination(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	mc := newMotoClients(t)
	mc.paging = true
	svc := NewService(nil, WithPageSize(5))
	tg := commercial(t)
	const region = "us-west-2"
	raw := mc.raw(t, region)

	vpc, err := raw.CreateVpc(ctx, &ec2.CreateVpcInput{CidrBlock: aws.String("10.20.0.0/16"),
		TagSpecifications: []types.TagSpecification{{ResourceType: types.ResourceTypeVpc, Tags: []types.Tag{{Key: aws.String("Name"), Value: aws.String("paging")}}}}})
	if err != nil {
		t.Fatal(err)
	}
	vpcID := aws.ToString(vpc.Vpc.VpcId)
	var firstSubnet string
	for i := range 12 {
		sn, err := raw.CreateSubnet(ctx, &ec2.CreateSubnetInput{VpcId: aws.String(vpcID), CidrBlock: aws.String(fmt.Sprintf("10.20.%d.0/24", i)),
			TagSpecifications: []types.TagSpecification{{ResourceType: types.ResourceTypeSubnet, Tags: []types.Tag{{Key: aws.String("Name"), Value: aws.String(fmt.Sprintf("sn-%02d", i))}}}}})
		if err != nil {
			t.Fatal(err)
		}
		if i == 0 {
			firstSubnet = aws.ToString(sn.Subnet.SubnetId)
		}
		if _, err := raw.CreateSecurityGroup(ctx, &ec2.CreateSecurityGroupInput{VpcId: aws.String(vpcID), GroupName: aws.String(fmt.Sprintf("g-%02d", i)), Description: aws.String("paging")}); err != nil {
			t.Fatal(err)
		}
		if _, err := raw.ImportKeyPair(ctx, &ec2.ImportKeyPairInput{KeyName: aws.String(fmt.Sprintf("k-%02d", i)), PublicKeyMaterial: checkPublicKey}); err != nil {
			t.Fatal(err)
		}
	}
	// moto pages DescribeInstances by reservation: one launch each.
	image := motoImage(t, raw)
	for range 7 {
		if _, err := raw.RunInstances(ctx, &ec2.RunInstancesInput{ImageId: aws.String(image), InstanceType: types.InstanceTypeT3Micro,
			MinCount: aws.Int32(1), MaxCount: aws.Int32(1), SubnetId: aws.String(firstSubnet)}); err != nil {
			t.Fatal(err)
		}
	}

	subnets, err := svc.Subnets(ctx, tg, mc, region, vpcID, false)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, n := range subnets.Items {
		names = append(names, n.Name)
		if n.VPCID != vpcID {
			t.Errorf("subnet %+v", n)
		}
	}
	slices.Sort(names)
	if len(names) != 12 || names[0] != "sn-00" || names[11] != "sn-11" {
		t.Errorf("subnets %v", names)
	}
	groups, err := svc.SecurityGroups(ctx, tg, mc, region, vpcID, false)
	if err != nil {
		t.Fatal(err)
	}
	if len(groups.Items) != 13 { // 12 + the VPC's default group
		t.Errorf("%d groups", len(groups.Items))
	}
	vpcs, err := svc.VPCs(ctx, tg, mc, region, false)
	if err != nil || len(vpcs.Items) != 2 || !vpcs.Items[0].IsDefault || vpcs.Items[1].Name != "paging" {
		t.Errorf("vpcs %+v %v", vpcs.Items, err)
	}
	keys, err := svc.KeyPairs(ctx, tg, mc, region, false)
	if err != nil || len(keys.Items) != 12 || keys.Items[0].Name != "k-00" || keys.Items[0].Type != "ed25519" || keys.Items[0].Fingerprint == "" || keys.Items[0].ID == "" {
		t.Errorf("keys %+v %v", keys.Items, err)
	}
	if mc.counts.pagesOf("DescribeSubnets") != 3 || mc.counts.pagesOf("DescribeSecurityGroups") != 3 || mc.counts.pagesOf("DescribeVpcs") != 1 ||
		mc.counts.get("EC2.DescribeKeyPairs") != 1 {
		t.Errorf("pages %v, key pair calls %d", mc.counts.pages, mc.counts.get("EC2.DescribeKeyPairs"))
	}

	mc.counts.reset()
	inv, err := svc.Inventory(ctx, tg, mc, []string{region})
	if err != nil {
		t.Fatal(err)
	}
	want := RegionInventory{Region: region, VPCs: ptr(2), Subnets: ptr(12 + 4), SecurityGroups: ptr(14), Instances: ptr(7)}
	if !jsonEqual(inv.Items[0], want) {
		t.Errorf("inventory %s, want %s", toJSON(inv.Items[0]), toJSON(want))
	}
	// moto itself pages DescribeInstances: 7 instances, 5 a page.
	if n := mc.counts.get("EC2.DescribeInstances"); n != 2 {
		t.Errorf("%d DescribeInstances pages", n)
	}

	// Instance types: offerings in pages of 500 (moto offers ~900 in a
	// region), types in batches of 100 names, pages of at most 100.
	mc.counts.reset()
	big := NewService(nil, WithPageSize(500))
	its, err := big.InstanceTypes(ctx, tg, mc, region, InstanceTypeFilter{}, false)
	if err != nil {
		t.Fatal(err)
	}
	offers := mc.counts.pagesOf("DescribeInstanceTypeOfferings")
	batches := mc.counts.get("EC2.DescribeInstanceTypes")
	if offers < 2 || batches != (len(its.Items)+99)/100 {
		t.Errorf("%d types: %d offering pages, %d type calls", len(its.Items), offers, batches)
	}
}

// Two moto accounts see only their own VPCs and key pairs.
func TestOnMotoAccountsAreIsolated(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	a, b := newMotoClients(t), newMotoClients(t)
	svc := NewService(newMemCache(nil))
	const region = "eu-central-1"
	ta := Target{LinkID: "lnk_a", Partition: mustPartition(t, partition.Standard)}
	tb := Target{LinkID: "lnk_b", Partition: mustPartition(t, partition.Standard)}

	rawA := a.raw(t, region)
	vpc, err := rawA.CreateVpc(ctx, &ec2.CreateVpcInput{CidrBlock: aws.String("10.30.0.0/16")})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := rawA.ImportKeyPair(ctx, &ec2.ImportKeyPairInput{KeyName: aws.String("only-a"), PublicKeyMaterial: checkPublicKey}); err != nil {
		t.Fatal(err)
	}

	va, err := svc.VPCs(ctx, ta, a, region, false)
	if err != nil {
		t.Fatal(err)
	}
	vb, err := svc.VPCs(ctx, tb, b, region, false)
	if err != nil {
		t.Fatal(err)
	}
	if len(va.Items) != 2 || len(vb.Items) != 1 || vb.Items[0].ID == va.Items[0].ID ||
		find(vb.Items, func(v VPC) bool { return v.ID == aws.ToString(vpc.Vpc.VpcId) }) != nil {
		t.Errorf("a %+v\nb %+v", va.Items, vb.Items)
	}
	ka, _ := svc.KeyPairs(ctx, ta, a, region, false)
	kb, _ := svc.KeyPairs(ctx, tb, b, region, false)
	if len(ka.Items) != 1 || ka.Items[0].Name != "only-a" || len(kb.Items) != 0 {
		t.Errorf("a %+v b %+v", ka.Items, kb.Items)
	}
}

// Throttling is retried by the SDK's standard retryer inside the call; when
// it lasts, the answer is 503 provider_throttled with a Retry-After.
func TestOnMotoThrottling(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	mc := newMotoClients(t)
	svc := NewService(nil)
	tg := commercial(t)
	throttle := &smithy.GenericAPIError{Code: "RequestLimitExceeded", Message: "Request limit exceeded."}

	mc.faults.FailAttempts("EC2.DescribeVpcs", 2, throttle)
	l, err := svc.VPCs(ctx, tg, mc, "us-east-2", false)
	if err != nil || len(l.Items) != 1 {
		t.Fatalf("after 2 throttled attempts: %+v %v", l, err)
	}
	failed := 0
	for _, c := range mc.faults.Calls() {
		if c == "EC2.DescribeVpcs(attempt failed)" {
			failed++
		}
	}
	if failed != 2 || mc.counts.get("EC2.DescribeVpcs") != 1 {
		t.Errorf("calls %v", mc.faults.Calls())
	}

	mc.faults.FailAttempts("EC2.DescribeVpcs", 3, throttle)
	_, err = svc.VPCs(ctx, tg, mc, "us-east-2", false)
	e := wantFault(t, err, fault.Unavailable, CodeThrottled)
	if e.RetryAfter != retryAfterThrottled || e.Extra["awsErrorCode"] != "RequestLimitExceeded" {
		t.Errorf("fault %+v", e)
	}

	// In an inventory the throttled region carries the error; the others
	// answer.
	mc.faults.FailAttempts("EC2.DescribeSubnets", 3, throttle)
	inv, err := svc.Inventory(ctx, tg, mc, []string{"us-east-2"})
	if err != nil {
		t.Fatal(err)
	}
	if got := inv.Items[0]; got.Error == nil || got.Error.Code != CodeThrottled || got.VPCs != nil {
		t.Errorf("inventory %s", toJSON(inv.Items))
	}
}

// The SSM fallback (used where a publisher's account is unknown) on moto's
// public Amazon Linux parameters.
func TestOnMotoImagesFromSSM(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	mc := newMotoClients(t)
	svc := NewService(nil)
	ec2API, _ := mc.EC2(ctx, "us-east-1")
	ssmAPI, _ := mc.SSM(ctx, "us-east-1")
	imgs, err := svc.imagesFromSSM(ctx, ec2API, ssmAPI, "us-east-1", OSAmazonLinux, ArchX86)
	if err != nil {
		t.Fatal(err)
	}
	if len(imgs) != 1 || imgs[0].ID != motoAL2023x86 || imgs[0].Version != "2023" ||
		imgs[0].Name != "al2023-ami-2023.11.20260427.1-kernel-6.1-x86_64" || imgs[0].SSHUser != "ec2-user" {
		t.Errorf("images %s", toJSON(imgs))
	}
	// moto has no Canonical or Debian parameters: nothing, and no error.
	for _, os := range []string{OSUbuntu, OSDebian} {
		imgs, err := svc.imagesFromSSM(ctx, ec2API, ssmAPI, "us-east-1", os, ArchARM)
		if err != nil || len(imgs) != 0 {
			t.Errorf("%s: %+v %v", os, imgs, err)
		}
	}
}

// motoImage is an Amazon Linux image of moto's in the client's region.
func motoImage(t testing.TB, raw *ec2.Client) string {
	t.Helper()
	out, err := raw.DescribeImages(context.Background(), &ec2.DescribeImagesInput{
		Owners:  []string{"137112412989"},
		Filters: []types.Filter{{Name: aws.String("name"), Values: []string{"al2023-ami-2023.*-kernel-6.1-x86_64"}}},
	})
	if err != nil || len(out.Images) == 0 {
		t.Fatalf("no AL2023 image in moto: %v", err)
	}
	return aws.ToString(out.Images[0].ImageId)
}

func ptr[T any](v T) *T { return &v }

func find[T any](items []T, f func(T) bool) *T {
	for i := range items {
		if f(items[i]) {
			return &items[i]
		}
	}
	return nil
}

func toJSON(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

func jsonEqual(a, b any) bool { return toJSON(a) == toJSON(b) }
