// Package partition describes the AWS partitions dFlow can link accounts in
// (commercial, GovCloud (US) and China): their regions, DNS suffixes and
// console hosts, and how ARNs, endpoints and console links are formed in each.
// It is pure data and functions: no AWS SDK, no network.
package partition

import (
	"slices"
	"strings"
)

// Partition IDs, as they appear in the second field of an ARN.
const (
	Standard = "aws"
	GovCloud = "aws-us-gov"
	China    = "aws-cn"
)

// Partition is one AWS partition: a separate set of regions with its own
// accounts, IAM and endpoints. An account, and every ARN in it, lives in
// exactly one partition.
type Partition struct {
	ID            string // aws, aws-us-gov, aws-cn
	Name          string // human name, e.g. "AWS GovCloud (US)"
	DNSSuffix     string // amazonaws.com, amazonaws.com, amazonaws.com.cn
	ConsoleHost   string // console.aws.amazon.com, console.amazonaws-us-gov.com, console.amazonaws.cn
	DefaultRegion string // where to call regional APIs when no region is chosen yet
	// GlobalRegion signs requests to the partition's global services (IAM).
	GlobalRegion string
	Regions      []Region

	iamHost string // IAM has one endpoint per partition, not one per region
}

// Region is one region of a partition.
type Region struct {
	Code string // us-east-1
	Name string // US East (N. Virginia)
	// OptIn is true for regions an account must enable before use: every
	// commercial region launched after 2019-03-20. dFlow cannot call EC2 there
	// until the customer has enabled the region.
	OptIn bool
}

// The region lists are those of the partitions.json shipped in
// github.com/aws/aws-sdk-go-v2 v1.48.0 (internal/endpoints/awsrulesfn), the
// SDK this module pins, less the pseudo-regions (aws-global and the like).
// partitions.json carries no opt-in flag; OptIn follows AWS's rule that
// regions launched after 2019-03-20 are disabled by default (AWS Account
// Management guide, "Enable or disable AWS Regions in your account").
// me-west-1 and sa-west-1 appear in that SDK but not in late-2025 lists.
// Keep in step with the SDK when it is bumped; the tests pin the set.
var partitions = [...]Partition{
	{
		ID:            Standard,
		Name:          "AWS",
		DNSSuffix:     "amazonaws.com",
		ConsoleHost:   "console.aws.amazon.com",
		DefaultRegion: "us-east-1",
		GlobalRegion:  "us-east-1",
		iamHost:       "iam.amazonaws.com",
		Regions: []Region{
			{"us-east-1", "US East (N. Virginia)", false},
			{"us-east-2", "US East (Ohio)", false},
			{"us-west-1", "US West (N. California)", false},
			{"us-west-2", "US West (Oregon)", false},
			{"af-south-1", "Africa (Cape Town)", true},
			{"ap-east-1", "Asia Pacific (Hong Kong)", true},
			{"ap-east-2", "Asia Pacific (Taipei)", true},
			{"ap-south-1", "Asia Pacific (Mumbai)", false},
			{"ap-south-2", "Asia Pacific (Hyderabad)", true},
			{"ap-southeast-1", "Asia Pacific (Singapore)", false},
			{"ap-southeast-2", "Asia Pacific (Sydney)", false},
			{"ap-southeast-3", "Asia Pacific (Jakarta)", true},
			{"ap-southeast-4", "Asia Pacific (Melbourne)", true},
			{"ap-southeast-5", "Asia Pacific (Malaysia)", true},
			{"ap-southeast-6", "Asia Pacific (New Zealand)", true},
			{"ap-southeast-7", "Asia Pacific (Thailand)", true},
			{"ap-northeast-1", "Asia Pacific (Tokyo)", false},
			{"ap-northeast-2", "Asia Pacific (Seoul)", false},
			{"ap-northeast-3", "Asia Pacific (Osaka)", false},
			{"ca-central-1", "Canada (Central)", false},
			{"ca-west-1", "Canada West (Calgary)", true},
			{"eu-central-1", "Europe (Frankfurt)", false},
			{"eu-central-2", "Europe (Zurich)", true},
			{"eu-west-1", "Europe (Ireland)", false},
			{"eu-west-2", "Europe (London)", false},
			{"eu-west-3", "Europe (Paris)", false},
			{"eu-north-1", "Europe (Stockholm)", false},
			{"eu-south-1", "Europe (Milan)", true},
			{"eu-south-2", "Europe (Spain)", true},
			{"il-central-1", "Israel (Tel Aviv)", true},
			{"me-south-1", "Middle East (Bahrain)", true},
			{"me-central-1", "Middle East (UAE)", true},
			{"me-west-1", "Middle East (Saudi Arabia)", true},
			{"mx-central-1", "Mexico (Central)", true},
			{"sa-east-1", "South America (Sao Paulo)", false},
			{"sa-west-1", "South America (Chile)", true},
		},
	},
	{
		ID:            GovCloud,
		Name:          "AWS GovCloud (US)",
		DNSSuffix:     "amazonaws.com",
		ConsoleHost:   "console.amazonaws-us-gov.com",
		DefaultRegion: "us-gov-west-1",
		GlobalRegion:  "us-gov-west-1",
		iamHost:       "iam.us-gov.amazonaws.com",
		Regions: []Region{
			{"us-gov-west-1", "AWS GovCloud (US-West)", false},
			{"us-gov-east-1", "AWS GovCloud (US-East)", false},
		},
	},
	{
		ID:            China,
		Name:          "AWS China",
		DNSSuffix:     "amazonaws.com.cn",
		ConsoleHost:   "console.amazonaws.cn",
		DefaultRegion: "cn-north-1",
		GlobalRegion:  "cn-north-1",
		iamHost:       "iam.cn-north-1.amazonaws.com.cn",
		Regions: []Region{
			{"cn-north-1", "China (Beijing)", false},
			{"cn-northwest-1", "China (Ningxia)", false},
		},
	},
}

// regionPartition maps every region code to the index of its partition.
// Built once at init and never written again.
var regionPartition = func() map[string]int {
	m := make(map[string]int)
	for i, p := range partitions {
		for _, r := range p.Regions {
			m[r.Code] = i
		}
	}
	return m
}()

// clone hands out a copy, so no caller can edit the package's tables.
func clone(p Partition) Partition {
	p.Regions = slices.Clone(p.Regions)
	return p
}

// All returns every supported partition, commercial first.
func All() []Partition {
	out := make([]Partition, len(partitions))
	for i, p := range partitions {
		out[i] = clone(p)
	}
	return out
}

// ByID returns the partition with the given ID (aws, aws-us-gov, aws-cn).
func ByID(id string) (Partition, bool) {
	for _, p := range partitions {
		if p.ID == id {
			return clone(p), true
		}
	}
	return Partition{}, false
}

// ForRegion returns the partition a region code belongs to. Only known
// region codes answer: a region newer than this table is not guessed from
// its shape, so it is refused until the table learns it.
func ForRegion(code string) (Partition, bool) {
	i, ok := regionPartition[code]
	if !ok {
		return Partition{}, false
	}
	return clone(partitions[i]), true
}

// ValidRegion reports whether code is a region of any supported partition.
func ValidRegion(code string) bool {
	_, ok := regionPartition[code]
	return ok
}

// FromARN returns the partition named by an ARN ("arn:aws-cn:...").
func FromARN(arn string) (Partition, bool) {
	rest, ok := strings.CutPrefix(arn, "arn:")
	if !ok {
		return Partition{}, false
	}
	id, _, ok := strings.Cut(rest, ":")
	if !ok {
		return Partition{}, false
	}
	return ByID(id)
}

// Region returns the partition's region with the given code.
func (p Partition) Region(code string) (Region, bool) {
	for _, r := range p.Regions {
		if r.Code == code {
			return r, true
		}
	}
	return Region{}, false
}

// HasRegion reports whether code is a region of p.
func (p Partition) HasRegion(code string) bool {
	_, ok := p.Region(code)
	return ok
}

// ARN forms an ARN in p: arn:<partition>:<service>:<region>:<account>:<resource>.
// Region and account are empty for global resources (IAM) and public ones
// (Amazon-owned AMIs, SSM public parameters).
func (p Partition) ARN(service, region, account, resource string) string {
	return "arn:" + p.ID + ":" + service + ":" + region + ":" + account + ":" + resource
}

// Endpoint returns the HTTPS endpoint of a service in a region of p:
// https://<service>.<region>.<dns suffix>. That is the regional endpoint for
// STS too (dFlow never uses the legacy global sts.amazonaws.com, whose
// tokens are not valid in opt-in regions). IAM is global: its one endpoint
// is returned whatever the region. An empty region means DefaultRegion.
func (p Partition) Endpoint(service, region string) string {
	if service == "iam" && p.iamHost != "" {
		return "https://" + p.iamHost
	}
	if region == "" {
		region = p.DefaultRegion
	}
	return "https://" + service + "." + region + "." + p.DNSSuffix
}

// ConsoleURL returns a link into p's AWS Management Console, e.g.
// ConsoleURL("iam/home#/roles") is https://console.aws.amazon.com/iam/home#/roles.
func (p Partition) ConsoleURL(path string) string {
	return "https://" + p.ConsoleHost + "/" + strings.TrimPrefix(path, "/")
}
