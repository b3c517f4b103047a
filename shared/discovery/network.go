package discovery

import (
	"cmp"
	"context"
	"regexp"
	"slices"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"

	"github.com/dflow-sh/cloud-accounts/shared/fault"
)

// AvailabilityZone is a zone of a region.
type AvailabilityZone struct {
	Name   string `json:"name"`
	ZoneID string `json:"zoneId"`
	State  string `json:"state"`
}

// VPC is a VPC of the account in a region.
type VPC struct {
	ID        string `json:"id"`
	CIDRBlock string `json:"cidrBlock"`
	IsDefault bool   `json:"isDefault"`
	Name      string `json:"name"` // the Name tag, "" when untagged
	State     string `json:"state"`
}

// Subnet is a subnet of a VPC.
type Subnet struct {
	ID                      string `json:"id"`
	VPCID                   string `json:"vpcId"`
	AvailabilityZone        string `json:"availabilityZone"`
	CIDRBlock               string `json:"cidrBlock"`
	AvailableIPAddressCount int32  `json:"availableIpAddressCount"`
	MapPublicIPOnLaunch     bool   `json:"mapPublicIpOnLaunch"`
	DefaultForAZ            bool   `json:"defaultForAz"`
	Name                    string `json:"name"`
}

// SecurityGroup is a security group with its rules.
type SecurityGroup struct {
	ID            string `json:"id"`
	Name          string `json:"name"`
	Description   string `json:"description"`
	VPCID         string `json:"vpcId"`
	InboundRules  []Rule `json:"inboundRules"`
	OutboundRules []Rule `json:"outboundRules"`
}

// Rule is one permission of a security group: a protocol and port range
// and who it applies to.
type Rule struct {
	// Protocol is "tcp", "udp", "icmp", "icmpv6" or "all"; another IP
	// protocol keeps AWS's number ("50").
	Protocol string `json:"protocol"`
	// FromPort and ToPort are absent when AWS gives none (protocol "all");
	// for ICMP they are the type and code, -1 meaning any.
	FromPort *int32       `json:"fromPort,omitempty"`
	ToPort   *int32       `json:"toPort,omitempty"`
	Sources  []RuleSource `json:"sources"`
}

// RuleSource is one peer of a rule: exactly one of the addresses is set.
type RuleSource struct {
	CIDRIPv4        string `json:"cidrIpv4,omitempty"`
	CIDRIPv6        string `json:"cidrIpv6,omitempty"`
	SecurityGroupID string `json:"securityGroupId,omitempty"`
	PrefixListID    string `json:"prefixListId,omitempty"`
	Description     string `json:"description,omitempty"`
}

// KeyPair is an EC2 key pair.
type KeyPair struct {
	Name        string `json:"name"`
	ID          string `json:"id"`
	Fingerprint string `json:"fingerprint"`
	Type        string `json:"type"` // rsa or ed25519
}

var vpcIDPattern = regexp.MustCompile(`^vpc-[0-9a-f]{8}([0-9a-f]{9})?$`)

// checkVPCID accepts "" (every VPC) or a well-formed VPC id.
func checkVPCID(id string) error {
	if id != "" && !vpcIDPattern.MatchString(id) {
		return fault.Field("vpcId", "%s is not a VPC id (vpc- and 8 or 17 lowercase hex digits)", short(id))
	}
	return nil
}

// vpcParam is the cache-key parameter for a VPC filter.
func vpcParam(id string) string {
	if id == "" {
		return "vpc=*"
	}
	return "vpc=" + id
}

// regional answers a cached question about one region: the region is
// checked (known, enabled) before the cache, and an AuthFailure there is
// rechecked against the region's enablement.
func regional[T any](ctx context.Context, s *Service, t Target, c Clients, region string, refresh bool, key string, fetch func(context.Context, EC2API) ([]T, error)) (List[T], error) {
	if err := s.requireRegion(ctx, t, c, region); err != nil {
		return List[T]{}, err
	}
	l, _, err := cached(ctx, s, t, key, refresh, func(ctx context.Context) ([]T, error) {
		api, err := c.EC2(ctx, region)
		if err != nil {
			return nil, clientError(err, "ec2", region)
		}
		items, err := fetch(ctx, api)
		if err != nil {
			return nil, s.recheck(ctx, t, c, region, err)
		}
		return items, nil
	})
	return l, err
}

// AvailabilityZones lists the availability zones of a region (not Local
// or Wavelength zones), by name.
func (s *Service) AvailabilityZones(ctx context.Context, t Target, c Clients, region string, refresh bool) (List[AvailabilityZone], error) {
	return regional(ctx, s, t, c, region, refresh, cacheKey(region, "availability-zones"), func(ctx context.Context, api EC2API) ([]AvailabilityZone, error) {
		out, err := api.DescribeAvailabilityZones(ctx, &ec2.DescribeAvailabilityZonesInput{
			Filters: []types.Filter{{Name: aws.String("zone-type"), Values: []string{"availability-zone"}}},
		})
		if err != nil {
			return nil, classify(err, "ec2:DescribeAvailabilityZones", region)
		}
		items := make([]AvailabilityZone, 0, len(out.AvailabilityZones))
		for _, z := range out.AvailabilityZones {
			items = append(items, AvailabilityZone{Name: aws.ToString(z.ZoneName), ZoneID: aws.ToString(z.ZoneId), State: string(z.State)})
		}
		slices.SortFunc(items, func(a, b AvailabilityZone) int { return cmp.Compare(a.Name, b.Name) })
		return items, nil
	})
}

// VPCs lists the VPCs of a region: the default VPC first, then by name
// and id.
func (s *Service) VPCs(ctx context.Context, t Target, c Clients, region string, refresh bool) (List[VPC], error) {
	return regional(ctx, s, t, c, region, refresh, cacheKey(region, "vpcs"), func(ctx context.Context, api EC2API) ([]VPC, error) {
		items := []VPC{}
		p := ec2.NewDescribeVpcsPaginator(api, &ec2.DescribeVpcsInput{MaxResults: s.maxResults(5, 1000)})
		for p.HasMorePages() {
			out, err := p.NextPage(ctx)
			if err != nil {
				return nil, classify(err, "ec2:DescribeVpcs", region)
			}
			for _, v := range out.Vpcs {
				items = append(items, VPC{
					ID:        aws.ToString(v.VpcId),
					CIDRBlock: aws.ToString(v.CidrBlock),
					IsDefault: aws.ToBool(v.IsDefault),
					Name:      nameTag(v.Tags),
					State:     string(v.State),
				})
			}
		}
		slices.SortFunc(items, func(a, b VPC) int {
			if a.IsDefault != b.IsDefault {
				if a.IsDefault {
					return -1
				}
				return 1
			}
			return cmp.Or(cmp.Compare(a.Name, b.Name), cmp.Compare(a.ID, b.ID))
		})
		return items, nil
	})
}

// Subnets lists the subnets of a VPC (every VPC when vpcID is ""), by VPC,
// zone, name and id. An unknown VPC has no subnets.
func (s *Service) Subnets(ctx context.Context, t Target, c Clients, region, vpcID string, refresh bool) (List[Subnet], error) {
	if err := checkVPCID(vpcID); err != nil {
		return List[Subnet]{}, err
	}
	return regional(ctx, s, t, c, region, refresh, cacheKey(region, "subnets", vpcParam(vpcID)), func(ctx context.Context, api EC2API) ([]Subnet, error) {
		in := &ec2.DescribeSubnetsInput{MaxResults: s.maxResults(5, 1000)}
		if vpcID != "" {
			in.Filters = []types.Filter{{Name: aws.String("vpc-id"), Values: []string{vpcID}}}
		}
		items := []Subnet{}
		p := ec2.NewDescribeSubnetsPaginator(api, in)
		for p.HasMorePages() {
			out, err := p.NextPage(ctx)
			if err != nil {
				return nil, classify(err, "ec2:DescribeSubnets", region)
			}
			for _, n := range out.Subnets {
				items = append(items, Subnet{
					ID:                      aws.ToString(n.SubnetId),
					VPCID:                   aws.ToString(n.VpcId),
					AvailabilityZone:        aws.ToString(n.AvailabilityZone),
					CIDRBlock:               aws.ToString(n.CidrBlock),
					AvailableIPAddressCount: aws.ToInt32(n.AvailableIpAddressCount),
					MapPublicIPOnLaunch:     aws.ToBool(n.MapPublicIpOnLaunch),
					DefaultForAZ:            aws.ToBool(n.DefaultForAz),
					Name:                    nameTag(n.Tags),
				})
			}
		}
		slices.SortFunc(items, func(a, b Subnet) int {
			return cmp.Or(cmp.Compare(a.VPCID, b.VPCID), cmp.Compare(a.AvailabilityZone, b.AvailabilityZone),
				cmp.Compare(a.Name, b.Name), cmp.Compare(a.ID, b.ID))
		})
		return items, nil
	})
}

// SecurityGroups lists the security groups of a VPC (every VPC when vpcID
// is ""), with their rules, by VPC, name and id.
func (s *Service) SecurityGroups(ctx context.Context, t Target, c Clients, region, vpcID string, refresh bool) (List[SecurityGroup], error) {
	if err := checkVPCID(vpcID); err != nil {
		return List[SecurityGroup]{}, err
	}
	return regional(ctx, s, t, c, region, refresh, cacheKey(region, "security-groups", vpcParam(vpcID)), func(ctx context.Context, api EC2API) ([]SecurityGroup, error) {
		in := &ec2.DescribeSecurityGroupsInput{MaxResults: s.maxResults(5, 1000)}
		if vpcID != "" {
			in.Filters = []types.Filter{{Name: aws.String("vpc-id"), Values: []string{vpcID}}}
		}
		items := []SecurityGroup{}
		p := ec2.NewDescribeSecurityGroupsPaginator(api, in)
		for p.HasMorePages() {
			out, err := p.NextPage(ctx)
			if err != nil {
				return nil, classify(err, "ec2:DescribeSecurityGroups", region)
			}
			for _, g := range out.SecurityGroups {
				items = append(items, SecurityGroup{
					ID:            aws.ToString(g.GroupId),
					Name:          aws.ToString(g.GroupName),
					Description:   aws.ToString(g.Description),
					VPCID:         aws.ToString(g.VpcId),
					InboundRules:  rules(g.IpPermissions),
					OutboundRules: rules(g.IpPermissionsEgress),
				})
			}
		}
		slices.SortFunc(items, func(a, b SecurityGroup) int {
			return cmp.Or(cmp.Compare(a.VPCID, b.VPCID), cmp.Compare(a.Name, b.Name), cmp.Compare(a.ID, b.ID))
		})
		return items, nil
	})
}

// KeyPairs lists the key pairs of a region by name. DescribeKeyPairs is
// not paginated: one call answers.
func (s *Service) KeyPairs(ctx context.Context, t Target, c Clients, region string, refresh bool) (List[KeyPair], error) {
	return regional(ctx, s, t, c, region, refresh, cacheKey(region, "key-pairs"), func(ctx context.Context, api EC2API) ([]KeyPair, error) {
		out, err := api.DescribeKeyPairs(ctx, &ec2.DescribeKeyPairsInput{})
		if err != nil {
			return nil, classify(err, "ec2:DescribeKeyPairs", region)
		}
		items := make([]KeyPair, 0, len(out.KeyPairs))
		for _, k := range out.KeyPairs {
			items = append(items, KeyPair{
				Name:        aws.ToString(k.KeyName),
				ID:          aws.ToString(k.KeyPairId),
				Fingerprint: aws.ToString(k.KeyFingerprint),
				Type:        string(k.KeyType),
			})
		}
		slices.SortFunc(items, func(a, b KeyPair) int { return cmp.Or(cmp.Compare(a.Name, b.Name), cmp.Compare(a.ID, b.ID)) })
		return items, nil
	})
}

func nameTag(tags []types.Tag) string {
	for _, t := range tags {
		if aws.ToString(t.Key) == "Name" {
			return aws.ToString(t.Value)
		}
	}
	return ""
}

// protocols names the IP protocols AWS may give as numbers.
var protocols = map[string]string{"-1": "all", "6": "tcp", "17": "udp", "1": "icmp", "58": "icmpv6"}

func protocol(p string) string {
	if name, ok := protocols[p]; ok {
		return name
	}
	return p // a name already (tcp, udp, icmp, icmpv6), or another protocol's number
}

func rules(perms []types.IpPermission) []Rule {
	out := make([]Rule, 0, len(perms))
	for _, p := range perms {
		r := Rule{Protocol: protocol(aws.ToString(p.IpProtocol)), FromPort: p.FromPort, ToPort: p.ToPort, Sources: []RuleSource{}}
		for _, x := range p.IpRanges {
			r.Sources = append(r.Sources, RuleSource{CIDRIPv4: aws.ToString(x.CidrIp), Description: aws.ToString(x.Description)})
		}
		for _, x := range p.Ipv6Ranges {
			r.Sources = append(r.Sources, RuleSource{CIDRIPv6: aws.ToString(x.CidrIpv6), Description: aws.ToString(x.Description)})
		}
		for _, x := range p.UserIdGroupPairs {
			r.Sources = append(r.Sources, RuleSource{SecurityGroupID: aws.ToString(x.GroupId), Description: aws.ToString(x.Description)})
		}
		for _, x := range p.PrefixListIds {
			r.Sources = append(r.Sources, RuleSource{PrefixListID: aws.ToString(x.PrefixListId), Description: aws.ToString(x.Description)})
		}
		out = append(out, r)
	}
	return out
}
