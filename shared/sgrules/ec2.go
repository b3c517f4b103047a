package sgrules

import (
	"net/netip"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"
)

// ToIPPermissions writes rules as EC2 permissions, one per rule, for
// Authorize/Revoke/UpdateSecurityGroupRuleDescriptions{Ingress,Egress}.
// Protocol all becomes "-1" with no ports (as EC2 itself describes such
// rules); icmp carries the type in FromPort and the code in ToPort. IPv4
// ranges go in IpRanges, IPv6 ranges in Ipv6Ranges, groups in
// UserIdGroupPairs, prefix lists in PrefixListIds. An empty description is
// left out, which UpdateSecurityGroupRuleDescriptions reads as "remove it".
func ToIPPermissions(rules []Rule) []types.IpPermission {
	perms := make([]types.IpPermission, 0, len(rules))
	for _, r := range rules {
		p := types.IpPermission{IpProtocol: aws.String(toAWSProtocol(r.Protocol))}
		if r.Protocol != ProtocolAll {
			p.FromPort, p.ToPort = aws.Int32(int32(r.FromPort)), aws.Int32(int32(r.ToPort))
		}
		desc := opt(r.Description)
		switch {
		case r.CIDRv4 != "":
			p.IpRanges = []types.IpRange{{CidrIp: aws.String(r.CIDRv4), Description: desc}}
		case r.CIDRv6 != "":
			p.Ipv6Ranges = []types.Ipv6Range{{CidrIpv6: aws.String(r.CIDRv6), Description: desc}}
		case r.SourceGroupID != "":
			p.UserIdGroupPairs = []types.UserIdGroupPair{{GroupId: aws.String(r.SourceGroupID), Description: desc}}
		case r.PrefixListID != "":
			p.PrefixListIds = []types.PrefixListId{{PrefixListId: aws.String(r.PrefixListID), Description: desc}}
		}
		perms = append(perms, p)
	}
	return perms
}

// FromIPPermissions flattens EC2's permissions (DescribeSecurityGroups'
// IpPermissions or IpPermissionsEgress, which group ranges sharing protocol
// and ports) into one rule per range, group or prefix list, in the order
// given: IPv4 ranges, IPv6 ranges, groups, prefix lists of each permission.
// A permission with nothing in it gives no rule.
func FromIPPermissions(perms []types.IpPermission) []Rule {
	var rules []Rule
	for _, p := range perms {
		base := Rule{Protocol: fromAWSProtocol(aws.ToString(p.IpProtocol))}
		base.FromPort, base.ToPort = ports(base.Protocol, p.FromPort, p.ToPort)
		for _, x := range p.IpRanges {
			r := base
			r.CIDRv4, r.Description = canonicalCIDR(aws.ToString(x.CidrIp)), aws.ToString(x.Description)
			rules = append(rules, r)
		}
		for _, x := range p.Ipv6Ranges {
			r := base
			r.CIDRv6, r.Description = canonicalCIDR(aws.ToString(x.CidrIpv6)), aws.ToString(x.Description)
			rules = append(rules, r)
		}
		for _, x := range p.UserIdGroupPairs {
			r := base
			r.SourceGroupID, r.Description = aws.ToString(x.GroupId), aws.ToString(x.Description)
			rules = append(rules, r)
		}
		for _, x := range p.PrefixListIds {
			r := base
			r.PrefixListID, r.Description = aws.ToString(x.PrefixListId), aws.ToString(x.Description)
			rules = append(rules, r)
		}
	}
	return rules
}

// FromSecurityGroup reads a DescribeSecurityGroups group's rules, each
// direction sorted by Compare.
func FromSecurityGroup(g types.SecurityGroup) Rules {
	rs := Rules{Inbound: FromIPPermissions(g.IpPermissions), Outbound: FromIPPermissions(g.IpPermissionsEgress)}
	Sort(rs.Inbound)
	Sort(rs.Outbound)
	return rs
}

// FromSecurityGroupRules reads DescribeSecurityGroupRules' output (already
// one rule per source; IsEgress gives the direction), each direction sorted
// by Compare since EC2's order means nothing. The caller filters by group-id:
// rules of every group given end up together.
func FromSecurityGroupRules(sgrs []types.SecurityGroupRule) Rules {
	var rs Rules
	for _, x := range sgrs {
		r := Rule{
			Protocol:     fromAWSProtocol(aws.ToString(x.IpProtocol)),
			CIDRv4:       canonicalCIDR(aws.ToString(x.CidrIpv4)),
			CIDRv6:       canonicalCIDR(aws.ToString(x.CidrIpv6)),
			PrefixListID: aws.ToString(x.PrefixListId),
			Description:  aws.ToString(x.Description),
		}
		r.FromPort, r.ToPort = ports(r.Protocol, x.FromPort, x.ToPort)
		if x.ReferencedGroupInfo != nil {
			r.SourceGroupID = aws.ToString(x.ReferencedGroupInfo.GroupId)
		}
		if aws.ToBool(x.IsEgress) {
			rs.Outbound = append(rs.Outbound, r)
		} else {
			rs.Inbound = append(rs.Inbound, r)
		}
	}
	Sort(rs.Inbound)
	Sort(rs.Outbound)
	return rs
}

func toAWSProtocol(p string) string {
	if p == ProtocolAll {
		return "-1"
	}
	return p
}

// fromAWSProtocol names EC2's protocols as the API does. EC2 answers names
// for tcp, udp and icmp whatever was sent; the numbers are mapped too, for
// other implementations (and older rules) that echo them back.
func fromAWSProtocol(p string) string {
	switch p = strings.ToLower(p); p {
	case "-1", "all":
		return ProtocolAll
	case "6":
		return ProtocolTCP
	case "17":
		return ProtocolUDP
	case "1":
		return ProtocolICMP
	case "58":
		return "icmpv6"
	}
	return p
}

// ports reads EC2's optional ports: all is always -1/-1, and an absent port
// (EC2 leaves them out for protocols without ports) is -1.
func ports(protocol string, from, to *int32) (int, int) {
	if protocol == ProtocolAll {
		return -1, -1
	}
	f, t := -1, -1
	if from != nil {
		f = int(*from)
	}
	if to != nil {
		t = int(*to)
	}
	return f, t
}

// canonicalCIDR writes a CIDR block as Parse does, so rules read from AWS
// compare equal to parsed ones. Host bits are kept: a foreign rule like
// 10.0.0.1/8 must be revoked exactly as AWS holds it.
func canonicalCIDR(s string) string {
	if p, err := netip.ParsePrefix(s); err == nil {
		return p.String()
	}
	return s
}
