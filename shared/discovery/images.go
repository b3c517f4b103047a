package discovery

import (
	"cmp"
	"context"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/aws/aws-sdk-go-v2/service/ssm"

	"github.com/dflow-sh/cloud-accounts/shared/fault"
	"github.com/dflow-sh/cloud-accounts/shared/partition"
)

// Operating systems dFlow offers.
const (
	OSUbuntu      = "ubuntu"
	OSDebian      = "debian"
	OSAmazonLinux = "amazon-linux"
)

// Image is a current official OS image in a region.
type Image struct {
	ID           string    `json:"id"`
	Name         string    `json:"name"`
	OS           string    `json:"os"`
	Version      string    `json:"version"` // 24.04, 12, 2023
	Architecture string    `json:"architecture"`
	CreationDate time.Time `json:"creationDate"`
	SSHUser      string    `json:"sshUser"`
}

// osImages says where an OS's official images come from.
//
// Images are found with DescribeImages by the publisher's own account
// (Owners) and a name filter, which is the primary path: one call finds
// every version the publisher currently offers (a new release appears with
// no code change), with creation and deprecation dates, and the owner id
// rules out look-alike images anyone can publish under the same name. SSM
// public parameters are the fallback where the publisher's account in a
// partition is not documented: they name the current image of versions
// listed in advance, and a DescribeImages by id then gives its name and
// dates.
type osImages struct {
	sshUser string
	// owners maps a partition ID to the publisher's account there.
	owners map[string]string
	// namePattern is the DescribeImages name filter (AWS wildcards: * ?).
	namePattern string
	// name parses an image name; its first group is the version. Names
	// that do not match (minimal, backports, Pro…) are not offered.
	name *regexp.Regexp
	// supported keeps the versions still supported by their publisher.
	supported func(version string) bool
	// ssm lists the public parameters of the fallback for an architecture.
	ssm func(arch string) []ssmParam
}

type ssmParam struct{ name, version string }

var osTable = map[string]osImages{
	OSUbuntu: {
		sshUser: "ubuntu",
		// Canonical's accounts, from Ubuntu's cloud documentation ("Find
		// Ubuntu images on AWS": the expected OwnerId of Canonical's images
		// in the default, GovCloud and China partitions).
		owners: map[string]string{
			partition.Standard: "099720109477",
			partition.GovCloud: "513442679011",
			partition.China:    "837727238323",
		},
		namePattern: "ubuntu/images/hvm-ssd*/ubuntu-*-server-*",
		name:        regexp.MustCompile(`^ubuntu/images/hvm-ssd(?:-gp3)?/ubuntu-[a-z]+-(\d{2}\.\d{2})-(?:amd64|arm64)-server-\d{8}(?:\.\d+)?$`),
		// LTS releases (YY.04, even years) from 22.04: 20.04's standard
		// support ended in May 2025.
		supported: func(v string) bool {
			y, m, ok := strings.Cut(v, ".")
			year, err := strconv.Atoi(y)
			return ok && err == nil && m == "04" && year%2 == 0 && year >= 22
		},
		ssm: func(arch string) []ssmParam {
			var ps []ssmParam
			for _, v := range []string{"22.04", "24.04", "26.04"} {
				for _, vol := range []string{"ebs-gp3", "ebs-gp2"} {
					ps = append(ps, ssmParam{"/aws/service/canonical/ubuntu/server/" + v + "/stable/current/" + debArch(arch) + "/hvm/" + vol + "/ami-id", v})
				}
			}
			return ps
		},
	},
	OSDebian: {
		sshUser: "admin",
		// The Debian cloud team's account, from wiki.debian.org/Cloud/
		// AmazonEC2Image. No GovCloud or China account is documented there:
		// those partitions use the SSM fallback.
		owners:      map[string]string{partition.Standard: "136693071363"},
		namePattern: "debian-1?-*",
		name:        regexp.MustCompile(`^debian-(\d{2})-(?:amd64|arm64)-\d{8}-\d+$`),
		// 12 (bookworm) onwards; 11 left LTS in August 2026.
		supported: func(v string) bool { n, err := strconv.Atoi(v); return err == nil && n >= 12 },
		ssm: func(arch string) []ssmParam {
			var ps []ssmParam
			for _, v := range []string{"12", "13"} {
				ps = append(ps, ssmParam{"/aws/service/debian/release/" + v + "/latest/" + debArch(arch), v})
			}
			return ps
		},
	},
	OSAmazonLinux: {
		sshUser: "ec2-user",
		// Amazon's Amazon Linux accounts per partition, as used by AWS's own
		// EKS AMI build (awslabs/amazon-eks-ami, source_ami_owners).
		owners: map[string]string{
			partition.Standard: "137112412989",
			partition.GovCloud: "045324592363",
			partition.China:    "141808717104",
		},
		namePattern: "al2023-ami-2023.*-kernel-*",
		name:        regexp.MustCompile(`^al(2023)-ami-2023\.\d+\.\d{8}\.\d+-kernel-[\d.]+-(?:x86_64|arm64)$`),
		supported:   func(string) bool { return true },
		ssm: func(arch string) []ssmParam {
			return []ssmParam{{"/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-" + arch, "2023"}}
		},
	},
}

// debArch is Debian's and Ubuntu's name for an architecture.
func debArch(arch string) string {
	if arch == ArchX86 {
		return "amd64"
	}
	return arch
}

// ImageOwner returns the account that publishes os's official images in
// partition p, if known.
func ImageOwner(os string, p partition.Partition) (string, bool) {
	owner, ok := osTable[os].owners[p.ID]
	return owner, ok
}

func checkImageQuery(os, arch string) error {
	var fields []fault.FieldError
	if _, ok := osTable[os]; !ok {
		fields = append(fields, fault.FieldError{Field: "os", Message: short(os) + " is not one of ubuntu, debian, amazon-linux"})
	}
	if arch != ArchX86 && arch != ArchARM {
		fields = append(fields, fault.FieldError{Field: "arch", Message: short(arch) + " is not x86_64 or arm64"})
	}
	if len(fields) > 0 {
		return fault.Validation(fields...)
	}
	return nil
}

// Images lists the current official images of an OS for an architecture in
// a region: the newest image of each supported version, deprecated images
// left out, newest first.
func (s *Service) Images(ctx context.Context, t Target, c Clients, region, os, arch string, refresh bool) (List[Image], error) {
	if err := checkImageQuery(os, arch); err != nil {
		return List[Image]{}, err
	}
	spec := osTable[os]
	return regional(ctx, s, t, c, region, refresh, cacheKey(region, "images", "os="+os, "arch="+arch), func(ctx context.Context, api EC2API) ([]Image, error) {
		if owner, ok := spec.owners[t.Partition.ID]; ok {
			return s.imagesByOwner(ctx, api, region, os, arch, owner)
		}
		ssmAPI, err := c.SSM(ctx, region)
		if err != nil {
			return nil, clientError(err, "ssm", region)
		}
		return s.imagesFromSSM(ctx, api, ssmAPI, region, os, arch)
	})
}

func (s *Service) imagesByOwner(ctx context.Context, api EC2API, region, os, arch, owner string) ([]Image, error) {
	spec := osTable[os]
	p := ec2.NewDescribeImagesPaginator(api, &ec2.DescribeImagesInput{
		Owners: []string{owner},
		Filters: []types.Filter{
			{Name: aws.String("name"), Values: []string{spec.namePattern}},
			{Name: aws.String("architecture"), Values: []string{arch}},
			{Name: aws.String("state"), Values: []string{string(types.ImageStateAvailable)}},
		},
		MaxResults: s.maxResults(5, 1000),
	})
	var found []Image
	for p.HasMorePages() {
		out, err := p.NextPage(ctx)
		if err != nil {
			return nil, classify(err, "ec2:DescribeImages", region)
		}
		for _, im := range out.Images {
			m := spec.name.FindStringSubmatch(aws.ToString(im.Name))
			if m == nil {
				continue
			}
			if img, ok := s.image(im, os, m[1], arch); ok {
				found = append(found, img)
			}
		}
	}
	return newestPerVersion(found), nil
}

// ssmBatch is GetParameters' limit on names per request.
const ssmBatch = 10

func (s *Service) imagesFromSSM(ctx context.Context, api EC2API, ssmAPI SSMAPI, region, os, arch string) ([]Image, error) {
	params := osTable[os].ssm(arch)
	version := make(map[string]string, len(params)) // parameter → version
	names := make([]string, 0, len(params))
	for _, p := range params {
		version[p.name] = p.version
		names = append(names, p.name)
	}
	ids := map[string]string{} // image id → version
	for batch := range slices.Chunk(names, ssmBatch) {
		out, err := ssmAPI.GetParameters(ctx, &ssm.GetParametersInput{Names: batch})
		if err != nil {
			return nil, classify(err, "ssm:GetParameters", region)
		}
		// Parameters the partition or region lacks come back in
		// InvalidParameters: that version is not offered there.
		for _, p := range out.Parameters {
			if id := aws.ToString(p.Value); strings.HasPrefix(id, "ami-") {
				ids[id] = version[aws.ToString(p.Name)]
			}
		}
	}
	if len(ids) == 0 {
		return []Image{}, nil
	}
	// A filter, not ImageIds: an id that no longer exists is then simply
	// absent instead of failing the whole request.
	p := ec2.NewDescribeImagesPaginator(api, &ec2.DescribeImagesInput{
		Filters: []types.Filter{{Name: aws.String("image-id"), Values: sortedKeys(ids)}},
	})
	var found []Image
	for p.HasMorePages() {
		out, err := p.NextPage(ctx)
		if err != nil {
			return nil, classify(err, "ec2:DescribeImages", region)
		}
		for _, im := range out.Images {
			if im.State != types.ImageStateAvailable {
				continue
			}
			if img, ok := s.image(im, os, ids[aws.ToString(im.ImageId)], arch); ok {
				found = append(found, img)
			}
		}
	}
	return newestPerVersion(found), nil
}

// image turns an AWS image into an offered one, unless it is for another
// architecture, of an unsupported version, or deprecated. A deprecation
// time in the future does not count: Canonical sets one on every image.
func (s *Service) image(im types.Image, os, version, arch string) (Image, bool) {
	spec := osTable[os]
	if string(im.Architecture) != arch || !spec.supported(version) {
		return Image{}, false
	}
	if d := parseAWSTime(aws.ToString(im.DeprecationTime)); !d.IsZero() && !d.After(s.now()) {
		return Image{}, false
	}
	return Image{
		ID:           aws.ToString(im.ImageId),
		Name:         aws.ToString(im.Name),
		OS:           os,
		Version:      version,
		Architecture: arch,
		CreationDate: parseAWSTime(aws.ToString(im.CreationDate)),
		SSHUser:      spec.sshUser,
	}, true
}

// newestPerVersion keeps the newest image of each version (ties broken by
// the greater name, i.e. the later build), newest first.
func newestPerVersion(images []Image) []Image {
	best := map[string]Image{}
	for _, im := range images {
		if cur, ok := best[im.Version]; !ok || newer(im, cur) {
			best[im.Version] = im
		}
	}
	out := make([]Image, 0, len(best))
	for _, im := range best {
		out = append(out, im)
	}
	slices.SortFunc(out, func(a, b Image) int {
		return cmp.Or(b.CreationDate.Compare(a.CreationDate), compareVersions(b.Version, a.Version), cmp.Compare(a.Name, b.Name))
	})
	return out
}

func newer(a, b Image) bool {
	if c := a.CreationDate.Compare(b.CreationDate); c != 0 {
		return c > 0
	}
	return a.Name > b.Name
}

// compareVersions compares dotted numeric versions (22.04 < 24.04, 9 < 12).
func compareVersions(a, b string) int {
	as, bs := strings.Split(a, "."), strings.Split(b, ".")
	for i := 0; i < len(as) && i < len(bs); i++ {
		x, errX := strconv.Atoi(as[i])
		y, errY := strconv.Atoi(bs[i])
		if errX != nil || errY != nil {
			if c := cmp.Compare(as[i], bs[i]); c != 0 {
				return c
			}
			continue
		}
		if c := cmp.Compare(x, y); c != 0 {
			return c
		}
	}
	return cmp.Compare(len(as), len(bs))
}

// parseAWSTime parses EC2's timestamps ("2024-04-23T09:37:48.000Z"); an
// absent or odd one is the zero time.
func parseAWSTime(s string) time.Time {
	if s == "" {
		return time.Time{}
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}
	}
	return t.UTC()
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
