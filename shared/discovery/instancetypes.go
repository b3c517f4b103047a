package discovery

import (
	"cmp"
	"context"
	"slices"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"

	"github.com/dflow-sh/cloud-accounts/shared/fault"
)

// Architectures dFlow provisions.
const (
	ArchX86 = "x86_64"
	ArchARM = "arm64"
)

// InstanceType is an instance type offered in a region.
type InstanceType struct {
	Name              string   `json:"name"`
	VCPUs             int32    `json:"vcpus"`
	MemoryMiB         int64    `json:"memoryMiB"`
	Architectures     []string `json:"architectures"`
	CurrentGeneration bool     `json:"currentGeneration"`
	FreeTierEligible  bool     `json:"freeTierEligible"`
}

// InstanceTypeFilter narrows InstanceTypes; zero values match everything.
type InstanceTypeFilter struct {
	Arch         string // "", x86_64 or arm64
	MinVCPUs     int
	MinMemoryMiB int
}

func (f InstanceTypeFilter) check() error {
	var fields []fault.FieldError
	if f.Arch != "" && f.Arch != ArchX86 && f.Arch != ArchARM {
		fields = append(fields, fault.FieldError{Field: "arch", Message: short(f.Arch) + " is not x86_64 or arm64"})
	}
	if f.MinVCPUs < 0 {
		fields = append(fields, fault.FieldError{Field: "minVcpus", Message: "must not be negative"})
	}
	if f.MinMemoryMiB < 0 {
		fields = append(fields, fault.FieldError{Field: "minMemoryMiB", Message: "must not be negative"})
	}
	if len(fields) > 0 {
		return fault.Validation(fields...)
	}
	return nil
}

func (f InstanceTypeFilter) match(it InstanceType) bool {
	return (f.Arch == "" || slices.Contains(it.Architectures, f.Arch)) &&
		int64(it.VCPUs) >= int64(f.MinVCPUs) && it.MemoryMiB >= int64(f.MinMemoryMiB)
}

// describeInstanceTypesBatch is DescribeInstanceTypes' limit on the names
// of one request.
const describeInstanceTypesBatch = 100

// InstanceTypes lists the instance types offered in a region that pass the
// filter, by vCPUs, memory and name. The whole offer of the region is
// cached once; filters apply to the cached answer.
func (s *Service) InstanceTypes(ctx context.Context, t Target, c Clients, region string, f InstanceTypeFilter, refresh bool) (List[InstanceType], error) {
	if err := f.check(); err != nil {
		return List[InstanceType]{}, err
	}
	l, err := regional(ctx, s, t, c, region, refresh, cacheKey(region, "instance-types"), func(ctx context.Context, api EC2API) ([]InstanceType, error) {
		return s.offeredTypes(ctx, api, region)
	})
	if err != nil {
		return l, err
	}
	items := make([]InstanceType, 0, len(l.Items))
	for _, it := range l.Items {
		if f.match(it) {
			items = append(items, it)
		}
	}
	l.Items = items
	return l, nil
}

func (s *Service) offeredTypes(ctx context.Context, api EC2API, region string) ([]InstanceType, error) {
	var names []types.InstanceType
	op := ec2.NewDescribeInstanceTypeOfferingsPaginator(api, &ec2.DescribeInstanceTypeOfferingsInput{
		LocationType: types.LocationTypeRegion,
		MaxResults:   s.maxResults(5, 1000),
	})
	for op.HasMorePages() {
		out, err := op.NextPage(ctx)
		if err != nil {
			return nil, classify(err, "ec2:DescribeInstanceTypeOfferings", region)
		}
		for _, o := range out.InstanceTypeOfferings {
			names = append(names, o.InstanceType)
		}
	}
	slices.Sort(names)
	names = slices.Compact(names)

	items := make([]InstanceType, 0, len(names))
	for batch := range slices.Chunk(names, describeInstanceTypesBatch) {
		p := ec2.NewDescribeInstanceTypesPaginator(api, &ec2.DescribeInstanceTypesInput{
			InstanceTypes: batch,
			MaxResults:    s.maxResults(5, 100),
		})
		for p.HasMorePages() {
			out, err := p.NextPage(ctx)
			if err != nil {
				return nil, classify(err, "ec2:DescribeInstanceTypes", region)
			}
			for _, it := range out.InstanceTypes {
				items = append(items, instanceType(it))
			}
		}
	}
	slices.SortFunc(items, func(a, b InstanceType) int {
		return cmp.Or(cmp.Compare(a.VCPUs, b.VCPUs), cmp.Compare(a.MemoryMiB, b.MemoryMiB), cmp.Compare(a.Name, b.Name))
	})
	return items, nil
}

func instanceType(it types.InstanceTypeInfo) InstanceType {
	out := InstanceType{
		Name:              string(it.InstanceType),
		CurrentGeneration: aws.ToBool(it.CurrentGeneration),
		FreeTierEligible:  aws.ToBool(it.FreeTierEligible),
		Architectures:     []string{},
	}
	if it.VCpuInfo != nil {
		out.VCPUs = aws.ToInt32(it.VCpuInfo.DefaultVCpus)
	}
	if it.MemoryInfo != nil {
		out.MemoryMiB = aws.ToInt64(it.MemoryInfo.SizeInMiB)
	}
	if it.ProcessorInfo != nil {
		for _, a := range it.ProcessorInfo.SupportedArchitectures {
			out.Architectures = append(out.Architectures, string(a))
		}
	}
	return out
}
