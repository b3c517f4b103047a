package discovery

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"

	"github.com/dflow-sh/cloud-accounts/shared/partition"
)

func img(id, name, arch, created, deprecated string) types.Image {
	im := types.Image{ImageId: aws.String(id), Name: aws.String(name), Architecture: types.ArchitectureValues(arch),
		CreationDate: aws.String(created), State: types.ImageStateAvailable}
	if deprecated != "" {
		im.DeprecationTime = aws.String(deprecated)
	}
	return im
}

// imagesFake answers DescribeImages from a list, recording the inputs; it
// applies the architecture filter as AWS would, nothing else, so the
// selection logic sees the look-alikes too.
type imagesFake struct {
	mu     sync.Mutex
	images []types.Image
	inputs []*ec2.DescribeImagesInput
}

func (f *imagesFake) describe(in *ec2.DescribeImagesInput) (*ec2.DescribeImagesOutput, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.inputs = append(f.inputs, in)
	var arch, ids []string
	for _, fl := range in.Filters {
		switch aws.ToString(fl.Name) {
		case "architecture":
			arch = fl.Values
		case "image-id":
			ids = fl.Values
		}
	}
	out := &ec2.DescribeImagesOutput{}
	for _, im := range f.images {
		if (arch == nil || slices.Contains(arch, string(im.Architecture))) && (ids == nil || slices.Contains(ids, aws.ToString(im.ImageId))) {
			out.Images = append(out.Images, im)
		}
	}
	return out, nil
}

func filterValues(in *ec2.DescribeImagesInput, name string) []string {
	for _, f := range in.Filters {
		if aws.ToString(f.Name) == name {
			return f.Values
		}
	}
	return nil
}

// The selection: supported versions only, the newest build of each,
// deprecated ones out (a future deprecation date is not deprecation),
// newest first, the requested architecture only.
func TestImagesSelection(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	clk := newClock() // 2026-06-01
	const (
		old   = "2026-01-10T10:00:00.000Z"
		mid   = "2026-03-10T10:00:00.000Z"
		fresh = "2026-05-20T10:00:00.000Z"
		past  = "2026-05-01T00:00:00.000Z"
		later = "2028-05-01T00:00:00.000Z"
	)
	f := &imagesFake{images: []types.Image{
		img("ami-00000000000002204", "ubuntu/images/hvm-ssd/ubuntu-jammy-22.04-amd64-server-20260110", "x86_64", old, later),
		img("ami-00000000000012204", "ubuntu/images/hvm-ssd/ubuntu-jammy-22.04-amd64-server-20260310", "x86_64", mid, later),
		img("ami-00000000000002404", "ubuntu/images/hvm-ssd-gp3/ubuntu-noble-24.04-amd64-server-20260310.1", "x86_64", mid, later),
		// The newest 24.04 build is already deprecated (withdrawn).
		img("ami-00000000000012404", "ubuntu/images/hvm-ssd-gp3/ubuntu-noble-24.04-amd64-server-20260520", "x86_64", fresh, past),
		img("ami-00000000000002004", "ubuntu/images/hvm-ssd/ubuntu-focal-20.04-amd64-server-20260520", "x86_64", fresh, ""),
		img("ami-00000000000002410", "ubuntu/images/hvm-ssd-gp3/ubuntu-oracular-24.10-amd64-server-20260520", "x86_64", fresh, ""),
		img("ami-00000000000002604", "ubuntu/images/hvm-ssd-gp3/ubuntu-resolute-26.04-amd64-server-20260520", "x86_64", fresh, ""),
		img("ami-0000000000000arm1", "ubuntu/images/hvm-ssd-gp3/ubuntu-noble-24.04-arm64-server-20260520", "arm64", fresh, ""),
		img("ami-0000000000000pro1", "ubuntu/images/hvm-ssd-gp3/ubuntu-noble-24.04-amd64-pro-server-20260520", "x86_64", fresh, ""),
		img("ami-0000000000000min1", "ubuntu/images/hvm-ssd-gp3/ubuntu-noble-24.04-amd64-minimal-20260520", "x86_64", fresh, ""),
	}}
	c := &fakeClients{ec2: map[string]EC2API{"*": &fakeEC2{describeImages: f.describe}}}
	svc := NewService(nil, WithNow(clk.Now))

	l, err := svc.Images(ctx, commercial(t), c, "us-east-1", OSUbuntu, ArchX86, false)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, im := range l.Items {
		got = append(got, im.Version+" "+im.ID)
		if im.OS != OSUbuntu || im.SSHUser != "ubuntu" || im.Architecture != ArchX86 {
			t.Errorf("image %+v", im)
		}
	}
	want := []string{"26.04 ami-00000000000002604", "24.04 ami-00000000000002404", "22.04 ami-00000000000012204"}
	if !slices.Equal(got, want) {
		t.Errorf("images %v\nwant %v", got, want)
	}
	if !l.Items[2].CreationDate.Equal(time.Date(2026, 3, 10, 10, 0, 0, 0, time.UTC)) {
		t.Errorf("creation date %v", l.Items[2].CreationDate)
	}

	in := f.inputs[0]
	if !slices.Equal(in.Owners, []string{"099720109477"}) ||
		!slices.Equal(filterValues(in, "name"), []string{"ubuntu/images/hvm-ssd*/ubuntu-*-server-*"}) ||
		!slices.Equal(filterValues(in, "architecture"), []string{"x86_64"}) ||
		!slices.Equal(filterValues(in, "state"), []string{"available"}) {
		t.Errorf("DescribeImages input %+v", toJSON(in))
	}

	arm, err := svc.Images(ctx, commercial(t), c, "us-east-1", OSUbuntu, ArchARM, false)
	if err != nil || len(arm.Items) != 1 || arm.Items[0].ID != "ami-0000000000000arm1" {
		t.Errorf("arm64 %+v %v", arm.Items, err)
	}
}

func TestImagesDebianAndAmazonLinux(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := &imagesFake{images: []types.Image{
		img("ami-0000000000000d111", "debian-11-amd64-20260101-2000", "x86_64", "2026-01-01T00:00:00Z", ""),
		img("ami-0000000000000d121", "debian-12-amd64-20260101-2000", "x86_64", "2026-01-01T00:00:00Z", ""),
		img("ami-0000000000000d122", "debian-12-amd64-20260401-2100", "x86_64", "2026-04-01T00:00:00Z", ""),
		img("ami-0000000000000d12b", "debian-12-backports-amd64-20260501-2200", "x86_64", "2026-05-01T00:00:00Z", ""),
		img("ami-0000000000000d131", "debian-13-amd64-20260301-2000", "x86_64", "2026-03-01T00:00:00Z", ""),
		img("ami-0000000000000a001", "al2023-ami-2023.9.20260301.0-kernel-6.1-x86_64", "x86_64", "2026-03-01T00:00:00Z", ""),
		img("ami-0000000000000a002", "al2023-ami-2023.9.20260401.0-kernel-6.12-x86_64", "x86_64", "2026-04-01T00:00:00Z", ""),
		img("ami-0000000000000a003", "al2023-ami-minimal-2023.9.20260501.0-kernel-6.12-x86_64", "x86_64", "2026-05-01T00:00:00Z", ""),
	}}
	c := &fakeClients{ec2: map[string]EC2API{"*": &fakeEC2{describeImages: f.describe}}}
	svc := NewService(nil, WithNow(newClock().Now))

	deb, err := svc.Images(ctx, commercial(t), c, "eu-west-1", OSDebian, ArchX86, false)
	if err != nil {
		t.Fatal(err)
	}
	if len(deb.Items) != 2 || deb.Items[0].ID != "ami-0000000000000d122" || deb.Items[0].Version != "12" ||
		deb.Items[1].ID != "ami-0000000000000d131" || deb.Items[1].SSHUser != "admin" {
		t.Errorf("debian %s", toJSON(deb.Items))
	}
	al, err := svc.Images(ctx, commercial(t), c, "eu-west-1", OSAmazonLinux, ArchX86, false)
	if err != nil {
		t.Fatal(err)
	}
	if len(al.Items) != 1 || al.Items[0].ID != "ami-0000000000000a002" || al.Items[0].Version != "2023" || al.Items[0].SSHUser != "ec2-user" {
		t.Errorf("amazon linux %s", toJSON(al.Items))
	}
	owners := map[string]bool{}
	for _, in := range f.inputs {
		owners[in.Owners[0]] = true
	}
	if !owners["136693071363"] || !owners["137112412989"] {
		t.Errorf("owners asked %v", owners)
	}
}

// In GovCloud Canonical's and Amazon's accounts differ; Debian's is not
// documented there, so its images come from SSM's public parameters.
func TestImagesInOtherPartitions(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	gov := Target{LinkID: "lnk_gov", Partition: mustPartition(t, partition.GovCloud)}
	f := &imagesFake{images: []types.Image{
		img("ami-0000000000000e001", "ubuntu/images/hvm-ssd-gp3/ubuntu-noble-24.04-arm64-server-20260520", "arm64", "2026-05-20T00:00:00Z", ""),
		img("ami-0000000000000e002", "debian-12-arm64-20260520-2200", "arm64", "2026-05-20T00:00:00Z", ""),
		img("ami-0000000000000e003", "debian-13-arm64-20260520-2200", "arm64", "2026-05-20T00:00:00Z", ""),
	}}
	ssmFake := &fakeSSM{params: map[string]string{
		"/aws/service/debian/release/12/latest/arm64": "ami-0000000000000e002",
		"/aws/service/debian/release/13/latest/arm64": "ami-0000000000000e003",
	}}
	c := &fakeClients{ec2: map[string]EC2API{"*": &fakeEC2{describeImages: f.describe}}, ssm: ssmFake}
	svc := NewService(nil, WithNow(newClock().Now))

	ub, err := svc.Images(ctx, gov, c, "us-gov-west-1", OSUbuntu, ArchARM, false)
	if err != nil || len(ub.Items) != 1 {
		t.Fatalf("ubuntu %+v %v", ub.Items, err)
	}
	if got := f.inputs[0].Owners; !slices.Equal(got, []string{"513442679011"}) {
		t.Errorf("GovCloud Canonical owner %v", got)
	}
	deb, err := svc.Images(ctx, gov, c, "us-gov-east-1", OSDebian, ArchARM, false)
	if err != nil {
		t.Fatal(err)
	}
	if len(deb.Items) != 2 || deb.Items[0].Version != "13" || deb.Items[1].Version != "12" {
		t.Errorf("debian via SSM %s", toJSON(deb.Items))
	}
	if len(ssmFake.asked) != 1 || !slices.Contains(ssmFake.asked[0], "/aws/service/debian/release/12/latest/arm64") {
		t.Errorf("SSM asked %v", ssmFake.asked)
	}
	last := f.inputs[len(f.inputs)-1]
	if len(last.Owners) != 0 || !slices.Equal(filterValues(last, "image-id"), []string{"ami-0000000000000e002", "ami-0000000000000e003"}) {
		t.Errorf("DescribeImages by id %s", toJSON(last))
	}
}

func TestImageOwnerTable(t *testing.T) {
	t.Parallel()
	want := map[string]map[string]string{
		OSUbuntu:      {partition.Standard: "099720109477", partition.GovCloud: "513442679011", partition.China: "837727238323"},
		OSDebian:      {partition.Standard: "136693071363"},
		OSAmazonLinux: {partition.Standard: "137112412989", partition.GovCloud: "045324592363", partition.China: "141808717104"},
	}
	for _, p := range partition.All() {
		for os, owners := range want {
			got, ok := ImageOwner(os, p)
			if w, known := owners[p.ID]; got != w || ok != known {
				t.Errorf("%s in %s: %q %v, want %q", os, p.ID, got, ok, w)
			}
			if !partition.ValidAccountID(got) && ok {
				t.Errorf("%s in %s: %q is not an account id", os, p.ID, got)
			}
		}
	}
	// Every OS has an SSM fallback for both architectures.
	for os, spec := range osTable {
		for _, arch := range []string{ArchX86, ArchARM} {
			if len(spec.ssm(arch)) == 0 {
				t.Errorf("%s %s: no SSM parameters", os, arch)
			}
		}
	}
}

func TestCompareVersions(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		a, b string
		want int
	}{{"22.04", "24.04", -1}, {"9", "12", -1}, {"13", "12", 1}, {"2023", "2023", 0}, {"24.04", "24.04.1", -1}} {
		if got := compareVersions(tt.a, tt.b); got != tt.want {
			t.Errorf("compare(%s, %s) = %d", tt.a, tt.b, got)
		}
	}
}
