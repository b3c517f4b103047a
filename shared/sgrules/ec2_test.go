package sgrules

import (
	"reflect"
	"slices"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"
)

func TestToIPPermissions(t *testing.T) {
	t.Parallel()
	rules := []Rule{
		{Protocol: "tcp", FromPort: 22, ToPort: 22, CIDRv4: "10.0.0.0/8", Description: "office"},
		{Protocol: "udp", FromPort: 51820, ToPort: 51830, CIDRv6: "2001:db8::/32"},
		{Protocol: "icmp", FromPort: 8, ToPort: -1, CIDRv4: "10.0.0.0/8"},
		{Protocol: "all", FromPort: -1, ToPort: -1, SourceGroupID: "sg-01234567", Description: "peers"},
		{Protocol: "tcp", FromPort: 443, ToPort: 443, PrefixListID: "pl-63a5400a"},
	}
	want := []types.IpPermission{
		{IpProtocol: aws.String("tcp"), FromPort: aws.Int32(22), ToPort: aws.Int32(22),
			IpRanges: []types.IpRange{{CidrIp: aws.String("10.0.0.0/8"), Description: aws.String("office")}}},
		{IpProtocol: aws.String("udp"), FromPort: aws.Int32(51820), ToPort: aws.Int32(51830),
			Ipv6Ranges: []types.Ipv6Range{{CidrIpv6: aws.String("2001:db8::/32")}}},
		{IpProtocol: aws.String("icmp"), FromPort: aws.Int32(8), ToPort: aws.Int32(-1),
			IpRanges: []types.IpRange{{CidrIp: aws.String("10.0.0.0/8")}}},
		{IpProtocol: aws.String("-1"),
			UserIdGroupPairs: []types.UserIdGroupPair{{GroupId: aws.String("sg-01234567"), Description: aws.String("peers")}}},
		{IpProtocol: aws.String("tcp"), FromPort: aws.Int32(443), ToPort: aws.Int32(443),
			PrefixListIds: []types.PrefixListId{{PrefixListId: aws.String("pl-63a5400a")}}},
	}
	if got := ToIPPermissions(rules); !reflect.DeepEqual(got, want) {
		t.Fatalf("permissions %s\nwant %s", dump(got), dump(want))
	}
	if got := ToIPPermissions(nil); got == nil || len(got) != 0 {
		t.Errorf("nil rules: %v", got)
	}
}

// EC2 groups ranges sharing protocol and ports into one permission, and
// leaves ports out for all protocols; FromIPPermissions undoes both.
func TestFromIPPermissions(t *testing.T) {
	t.Parallel()
	perms := []types.IpPermission{
		{IpProtocol: aws.String("tcp"), FromPort: aws.Int32(443), ToPort: aws.Int32(443),
			IpRanges:         []types.IpRange{{CidrIp: aws.String("10.0.0.0/8"), Description: aws.String("a")}, {CidrIp: aws.String("192.168.0.0/16")}},
			Ipv6Ranges:       []types.Ipv6Range{{CidrIpv6: aws.String("2001:DB8::/32"), Description: aws.String("v6")}},
			UserIdGroupPairs: []types.UserIdGroupPair{{GroupId: aws.String("sg-01234567"), UserId: aws.String("123456789012")}},
			PrefixListIds:    []types.PrefixListId{{PrefixListId: aws.String("pl-63a5400a"), Description: aws.String("s3")}}},
		{IpProtocol: aws.String("-1"), IpRanges: []types.IpRange{{CidrIp: aws.String("0.0.0.0/0")}}},
		{IpProtocol: aws.String("icmp"), FromPort: aws.Int32(-1), ToPort: aws.Int32(-1), IpRanges: []types.IpRange{{CidrIp: aws.String("10.0.0.0/8")}}},
		{IpProtocol: aws.String("6"), FromPort: aws.Int32(80), ToPort: aws.Int32(81), IpRanges: []types.IpRange{{CidrIp: aws.String("10.0.0.1/8")}}},
		{IpProtocol: aws.String("58"), FromPort: aws.Int32(-1), ToPort: aws.Int32(-1), Ipv6Ranges: []types.Ipv6Range{{CidrIpv6: aws.String("::/0")}}},
		{IpProtocol: aws.String("50"), Ipv6Ranges: []types.Ipv6Range{{CidrIpv6: aws.String("::/0")}}},
		{IpProtocol: aws.String("tcp"), FromPort: aws.Int32(1), ToPort: aws.Int32(2)}, // nothing in it
	}
	want := []Rule{
		{Protocol: "tcp", FromPort: 443, ToPort: 443, CIDRv4: "10.0.0.0/8", Description: "a"},
		{Protocol: "tcp", FromPort: 443, ToPort: 443, CIDRv4: "192.168.0.0/16"},
		{Protocol: "tcp", FromPort: 443, ToPort: 443, CIDRv6: "2001:db8::/32", Description: "v6"},
		{Protocol: "tcp", FromPort: 443, ToPort: 443, SourceGroupID: "sg-01234567"},
		{Protocol: "tcp", FromPort: 443, ToPort: 443, PrefixListID: "pl-63a5400a", Description: "s3"},
		{Protocol: "all", FromPort: -1, ToPort: -1, CIDRv4: "0.0.0.0/0"},
		{Protocol: "icmp", FromPort: -1, ToPort: -1, CIDRv4: "10.0.0.0/8"},
		// Host bits kept: a foreign rule is revoked as AWS holds it.
		{Protocol: "tcp", FromPort: 80, ToPort: 81, CIDRv4: "10.0.0.1/8"},
		{Protocol: "icmpv6", FromPort: -1, ToPort: -1, CIDRv6: "::/0"},
		{Protocol: "50", FromPort: -1, ToPort: -1, CIDRv6: "::/0"},
	}
	if got := FromIPPermissions(perms); !reflect.DeepEqual(got, want) {
		t.Fatalf("rules %+v\nwant %+v", got, want)
	}

	g := FromSecurityGroup(types.SecurityGroup{IpPermissions: perms[:2], IpPermissionsEgress: perms[1:2]})
	wantIn := slices.Clone(want[:6])
	Sort(wantIn)
	if !reflect.DeepEqual(g, Rules{Inbound: wantIn, Outbound: want[5:6]}) {
		t.Fatalf("group %+v", g)
	}
}

func TestFromSecurityGroupRules(t *testing.T) {
	t.Parallel()
	// As DescribeSecurityGroupRules answers: ports -1 for all, one source each.
	sgrs := []types.SecurityGroupRule{
		{IsEgress: aws.Bool(true), IpProtocol: aws.String("-1"), FromPort: aws.Int32(-1), ToPort: aws.Int32(-1), CidrIpv4: aws.String("0.0.0.0/0")},
		{IsEgress: aws.Bool(false), IpProtocol: aws.String("tcp"), FromPort: aws.Int32(443), ToPort: aws.Int32(443), CidrIpv6: aws.String("::/0"), Description: aws.String("https")},
		{IsEgress: aws.Bool(false), IpProtocol: aws.String("icmp"), FromPort: aws.Int32(8), ToPort: aws.Int32(-1), CidrIpv4: aws.String("10.0.0.0/8")},
		{IsEgress: aws.Bool(false), IpProtocol: aws.String("-1"), FromPort: aws.Int32(-1), ToPort: aws.Int32(-1),
			ReferencedGroupInfo: &types.ReferencedSecurityGroup{GroupId: aws.String("sg-0123456789abcdef0"), UserId: aws.String("123456789012")}},
		{IsEgress: aws.Bool(true), IpProtocol: aws.String("tcp"), FromPort: aws.Int32(443), ToPort: aws.Int32(443), PrefixListId: aws.String("pl-63a5400a")},
		{IpProtocol: aws.String("udp"), FromPort: aws.Int32(53), ToPort: aws.Int32(53), CidrIpv4: aws.String("10.0.0.2/32")}, // IsEgress absent: inbound
	}
	want := Rules{
		Inbound: []Rule{
			{Protocol: "all", FromPort: -1, ToPort: -1, SourceGroupID: "sg-0123456789abcdef0"},
			{Protocol: "icmp", FromPort: 8, ToPort: -1, CIDRv4: "10.0.0.0/8"},
			{Protocol: "tcp", FromPort: 443, ToPort: 443, CIDRv6: "::/0", Description: "https"},
			{Protocol: "udp", FromPort: 53, ToPort: 53, CIDRv4: "10.0.0.2/32"},
		},
		Outbound: []Rule{
			DefaultEgress()[0],
			{Protocol: "tcp", FromPort: 443, ToPort: 443, PrefixListID: "pl-63a5400a"},
		},
	}
	if got := FromSecurityGroupRules(sgrs); !reflect.DeepEqual(got, want) {
		t.Fatalf("rules %+v\nwant %+v", got, want)
	}
	if got := FromSecurityGroupRules(nil); got.Inbound != nil || got.Outbound != nil {
		t.Errorf("nil: %+v", got)
	}
}

func TestRoundTrip(t *testing.T) {
	t.Parallel()
	rules, errs := Parse(FieldInbound, decode(t, `[
		{"protocol":"tcp","fromPort":22,"toPort":22,"cidrIpv4":"10.0.0.0/8","description":"office ssh"},
		{"protocol":"tcp","fromPort":443,"toPort":443,"cidrIpv6":"::/0"},
		{"protocol":"udp","fromPort":51820,"toPort":51820,"cidrIpv6":"2001:db8:1::/48","description":"wireguard"},
		{"protocol":"icmp","fromPort":8,"toPort":0,"cidrIpv4":"192.168.0.0/16"},
		{"protocol":"icmp","fromPort":-1,"toPort":-1,"sourceSecurityGroupId":"sg-0123456789abcdef0"},
		{"protocol":"all","cidrIpv4":"0.0.0.0/0"},
		{"protocol":"all","sourceSecurityGroupId":"sg-01234567","description":"cluster"},
		{"protocol":"tcp","fromPort":0,"toPort":65535,"sourceSecurityGroupId":"sg-01234567"}
	]`))
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	if got := FromIPPermissions(ToIPPermissions(rules)); !reflect.DeepEqual(got, rules) {
		t.Fatalf("round trip %+v\nwant %+v", got, rules)
	}
	// And as DescribeSecurityGroupRules would answer for them.
	var sgrs []types.SecurityGroupRule
	for _, r := range rules {
		sgrs = append(sgrs, asSecurityGroupRule(r, false), asSecurityGroupRule(r, true))
	}
	sorted := slices.Clone(rules)
	Sort(sorted)
	if got := FromSecurityGroupRules(sgrs); !reflect.DeepEqual(got, Rules{Inbound: sorted, Outbound: sorted}) {
		t.Fatalf("rules %+v", got)
	}
}

// asSecurityGroupRule is how EC2 describes a rule, ports -1 for all.
func asSecurityGroupRule(r Rule, egress bool) types.SecurityGroupRule {
	p := ToIPPermissions([]Rule{r})[0]
	x := types.SecurityGroupRule{IsEgress: aws.Bool(egress), IpProtocol: p.IpProtocol,
		FromPort: aws.Int32(int32(r.FromPort)), ToPort: aws.Int32(int32(r.ToPort)), Description: opt(r.Description)}
	switch {
	case r.CIDRv4 != "":
		x.CidrIpv4 = aws.String(r.CIDRv4)
	case r.CIDRv6 != "":
		x.CidrIpv6 = aws.String(r.CIDRv6)
	default:
		x.ReferencedGroupInfo = &types.ReferencedSecurityGroup{GroupId: aws.String(r.SourceGroupID)}
	}
	return x
}

func dump(perms []types.IpPermission) string {
	var s string
	for _, p := range perms {
		s += "\n  " + aws.ToString(p.IpProtocol)
		if p.FromPort != nil {
			s += " " + itoa(int(*p.FromPort)) + "-" + itoa(int(*p.ToPort))
		}
		for _, x := range p.IpRanges {
			s += " v4=" + aws.ToString(x.CidrIp) + "/" + aws.ToString(x.Description)
		}
		for _, x := range p.Ipv6Ranges {
			s += " v6=" + aws.ToString(x.CidrIpv6) + "/" + aws.ToString(x.Description)
		}
		for _, x := range p.UserIdGroupPairs {
			s += " sg=" + aws.ToString(x.GroupId) + "/" + aws.ToString(x.Description)
		}
		for _, x := range p.PrefixListIds {
			s += " pl=" + aws.ToString(x.PrefixListId) + "/" + aws.ToString(x.Description)
		}
	}
	return s
}
