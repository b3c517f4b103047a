package sgrules

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/aws/smithy-go"
	"github.com/aws/smithy-go/middleware"
	smithyhttp "github.com/aws/smithy-go/transport/http"

	"github.com/dflow-sh/cloud-accounts/shared/motoserver"
)

func TestMain(m *testing.M) { motoserver.Main(m) }

// Moto 5.2.1 differs from EC2 for security-group rules (TestMotoDeviations
// pins each one down):
//   - DescribeSecurityGroupRules leaves out the description of rules that
//     reference a group (DescribeSecurityGroups keeps it);
//   - revoking such a rule only matches when the request repeats its
//     description (EC2 ignores descriptions when matching);
//   - UpdateSecurityGroupRuleDescriptions* leaves their descriptions alone,
//     and never removes a description (an omitted one is not "remove");
//   - a second rule for the same group differing only in description is
//     accepted (EC2: InvalidPermission.Duplicate);
//   - RevokeSecurityGroupEgress of an IPv6 range in a VPC without an IPv6
//     block succeeds and removes nothing.
//
// So TestOnMoto gives group-referencing rules no description, changes
// descriptions instead of removing them, and never revokes IPv6 egress.

// TestOnMoto runs what PATCH and sync do against moto: it creates a group in
// the default VPC, applies Diff(want, what EC2 holds) with ToIPPermissions,
// reads the group back with DescribeSecurityGroupRules and checks that
// FromSecurityGroupRules gives exactly the wanted rules; then changes them.
func TestOnMoto(t *testing.T) {
	t.Parallel()
	api := motoEC2(t)
	vpc := defaultVPC(t, api)
	peer := createGroup(t, api, vpc, "peers")
	group := createGroup(t, api, vpc, "workers")

	// A new group: EC2's default egress (moto too), nothing inbound.
	have := readRules(t, api, group)
	if !reflect.DeepEqual(have, Rules{Outbound: DefaultEgress()}) {
		t.Fatalf("new group's rules %+v; want only the default egress", have)
	}

	want1 := parseRules(t, peer, `[
		{"protocol":"tcp","fromPort":22,"toPort":22,"cidrIpv4":"10.0.0.0/8","description":"office ssh"},
		{"protocol":"tcp","fromPort":443,"toPort":443,"cidrIpv4":"0.0.0.0/0","description":"https"},
		{"protocol":"tcp","fromPort":443,"toPort":443,"cidrIpv6":"::/0","description":"https v6"},
		{"protocol":"udp","fromPort":51820,"toPort":51820,"cidrIpv6":"2001:db8::/32","description":"wireguard"},
		{"protocol":"icmp","fromPort":8,"toPort":-1,"cidrIpv4":"10.0.0.0/8","description":"ping"},
		{"protocol":"icmp","fromPort":-1,"toPort":-1,"sourceSecurityGroupId":"PEER"},
		{"protocol":"all","sourceSecurityGroupId":"PEER"},
		{"protocol":"tcp","fromPort":10250,"toPort":10250,"sourceSecurityGroupId":"PEER"}
	]`, `[
		{"protocol":"tcp","fromPort":443,"toPort":443,"cidrIpv4":"0.0.0.0/0"},
		{"protocol":"tcp","fromPort":443,"toPort":443,"cidrIpv6":"::/0","description":"https out v6"},
		{"protocol":"all","sourceSecurityGroupId":"PEER"},
		{"protocol":"udp","fromPort":53,"toPort":53,"cidrIpv4":"10.0.0.2/32","description":"dns"}
	]`)
	c := Diff(want1, have)
	if !reflect.DeepEqual(c.RevokeEgress, DefaultEgress()) || len(c.AuthorizeIngress) != 8 || len(c.AuthorizeEgress) != 4 {
		t.Fatalf("first change %+v", c)
	}
	applyChange(t, api, group, c)

	got := readRules(t, api, group)
	if !reflect.DeepEqual(got, sorted(want1)) {
		t.Fatalf("EC2 holds %+v\nwant %+v", got, sorted(want1))
	}
	if d := Drift(want1, got); d != nil {
		t.Errorf("drift after apply: %+v", d)
	}
	if c := Diff(want1, got); !c.Empty() {
		t.Errorf("second diff not empty: %+v", c)
	}
	checkIPv6Ranges(t, api, group, want1)

	// PATCH: a port change, a description changed per family, a range
	// replaced, a group rule removed, one added outbound.
	want2 := parseRules(t, peer, `[
		{"protocol":"tcp","fromPort":2222,"toPort":2222,"cidrIpv4":"10.0.0.0/8","description":"office ssh"},
		{"protocol":"tcp","fromPort":443,"toPort":443,"cidrIpv4":"0.0.0.0/0","description":"public https"},
		{"protocol":"tcp","fromPort":443,"toPort":443,"cidrIpv6":"::/0","description":"public https v6"},
		{"protocol":"udp","fromPort":51820,"toPort":51820,"cidrIpv6":"2001:db8:1::/48","description":"wireguard"},
		{"protocol":"icmp","fromPort":8,"toPort":-1,"cidrIpv4":"10.0.0.0/8","description":"ping"},
		{"protocol":"all","sourceSecurityGroupId":"PEER"},
		{"protocol":"tcp","fromPort":10250,"toPort":10250,"sourceSecurityGroupId":"PEER"}
	]`, `[
		{"protocol":"tcp","fromPort":443,"toPort":443,"cidrIpv4":"0.0.0.0/0"},
		{"protocol":"tcp","fromPort":443,"toPort":443,"cidrIpv6":"::/0","description":"https out v6"},
		{"protocol":"udp","fromPort":53,"toPort":53,"cidrIpv4":"10.0.0.2/32","description":"dns resolver"},
		{"protocol":"tcp","fromPort":5432,"toPort":5432,"cidrIpv4":"10.1.0.0/16","description":"postgres"}
	]`)
	c = Diff(want2, got)
	counts := [6]int{len(c.AuthorizeIngress), len(c.RevokeIngress), len(c.RedescribeIngress),
		len(c.AuthorizeEgress), len(c.RevokeEgress), len(c.RedescribeEgress)}
	if counts != [6]int{2, 3, 2, 1, 1, 1} {
		t.Fatalf("second change %v: %+v", counts, c)
	}
	if d := Drift(want2, got); len(d) != 10 {
		t.Errorf("drift before PATCH: %d items %+v", len(d), d)
	}
	applyChange(t, api, group, c)

	got = readRules(t, api, group)
	if !reflect.DeepEqual(got, sorted(want2)) {
		t.Fatalf("EC2 holds %+v\nwant %+v", got, sorted(want2))
	}
	if d := Drift(want2, got); d != nil {
		t.Errorf("drift after PATCH: %+v", d)
	}
	checkIPv6Ranges(t, api, group, want2)
}

// checkIPv6Ranges reads the group with DescribeSecurityGroups: IPv6 ranges
// must sit in Ipv6Ranges (never IpRanges), and flattening EC2's grouped
// permissions must give the same rules as DescribeSecurityGroupRules, for
// rules without a group reference's description (moto drops those there).
func checkIPv6Ranges(t *testing.T, api *ec2.Client, group string, want Rules) {
	t.Helper()
	out, err := api.DescribeSecurityGroups(context.Background(), &ec2.DescribeSecurityGroupsInput{GroupIds: []string{group}})
	if err != nil || len(out.SecurityGroups) != 1 {
		t.Fatalf("describe group: %v", err)
	}
	g := out.SecurityGroups[0]
	var v6 int
	for _, p := range append(g.IpPermissions, g.IpPermissionsEgress...) {
		for _, r := range p.IpRanges {
			if strings.Contains(aws.ToString(r.CidrIp), ":") {
				t.Errorf("IPv6 range %s in IpRanges", aws.ToString(r.CidrIp))
			}
		}
		v6 += len(p.Ipv6Ranges)
	}
	var wantV6 int
	for _, r := range append(want.Inbound, want.Outbound...) {
		if r.CIDRv6 != "" {
			wantV6++
		}
	}
	if v6 != wantV6 {
		t.Errorf("%d IPv6 ranges; want %d", v6, wantV6)
	}
	if got := FromSecurityGroup(g); !reflect.DeepEqual(got, sorted(want)) {
		t.Errorf("DescribeSecurityGroups gives %+v\nwant %+v", got, sorted(want))
	}
}

// TestMotoDeviations pins down where moto differs from EC2 for rules, so
// TestOnMoto's workarounds are known to be needed. A failure here means moto
// now behaves like EC2: drop the workaround and the comment above TestOnMoto.
func TestMotoDeviations(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	api := motoEC2(t)
	vpc := defaultVPC(t, api)
	peer := createGroup(t, api, vpc, "peers")
	group := createGroup(t, api, vpc, "workers")
	fromPeer := Rule{Protocol: ProtocolAll, FromPort: -1, ToPort: -1, SourceGroupID: peer, Description: "peers"}
	v6out := Rule{Protocol: ProtocolTCP, FromPort: 443, ToPort: 443, CIDRv6: "::/0"}
	https := Rule{Protocol: ProtocolTCP, FromPort: 443, ToPort: 443, CIDRv4: "0.0.0.0/0", Description: "https"}
	applyChange(t, api, group, Change{AuthorizeIngress: []Rule{fromPeer, https}, AuthorizeEgress: []Rule{v6out}})

	in := readRules(t, api, group).Inbound
	if len(in) != 2 || in[0].SourceGroupID != peer || in[0].Description != "" {
		t.Errorf("DescribeSecurityGroupRules now reports group rules' descriptions: %+v", in)
	}

	noDesc := fromPeer
	noDesc.Description = ""
	_, err := api.RevokeSecurityGroupIngress(ctx, &ec2.RevokeSecurityGroupIngressInput{GroupId: &group, IpPermissions: ToIPPermissions([]Rule{noDesc})})
	if code := errorCode(err); code != "InvalidPermission.NotFound" {
		t.Errorf("revoking a group rule without its description: %v; moto used to answer InvalidPermission.NotFound", err)
	}

	_, err = api.AuthorizeSecurityGroupIngress(ctx, &ec2.AuthorizeSecurityGroupIngressInput{GroupId: &group,
		IpPermissions: ToIPPermissions([]Rule{described(fromPeer, "other")})})
	if err != nil {
		t.Errorf("duplicate group rule with another description: %v; moto used to accept it", err)
	}

	_, err = api.UpdateSecurityGroupRuleDescriptionsIngress(ctx, &ec2.UpdateSecurityGroupRuleDescriptionsIngressInput{GroupId: &group,
		IpPermissions: ToIPPermissions([]Rule{described(fromPeer, "renamed"), described(https, "")})})
	if err != nil {
		t.Fatal(err)
	}
	g, err := api.DescribeSecurityGroups(ctx, &ec2.DescribeSecurityGroupsInput{GroupIds: []string{group}})
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range FromSecurityGroup(g.SecurityGroups[0]).Inbound {
		if r.Description == "renamed" {
			t.Errorf("UpdateSecurityGroupRuleDescriptionsIngress now renames group rules")
		}
		if r.CIDRv4 != "" && r.Description != "https" {
			t.Errorf("an omitted description now removes it: %+v", r)
		}
	}

	_, err = api.RevokeSecurityGroupEgress(ctx, &ec2.RevokeSecurityGroupEgressInput{GroupId: &group, IpPermissions: ToIPPermissions([]Rule{v6out})})
	if err != nil {
		t.Fatal(err)
	}
	if out := readRules(t, api, group).Outbound; !slicesContainKey(out, v6out) {
		t.Errorf("RevokeSecurityGroupEgress now removes IPv6 ranges in a VPC without IPv6: %+v", out)
	}
}

func slicesContainKey(rs []Rule, r Rule) bool {
	for _, x := range rs {
		if x.Key() == r.Key() {
			return true
		}
	}
	return false
}

func errorCode(err error) string {
	var ae smithy.APIError
	if errors.As(err, &ae) {
		return ae.ErrorCode()
	}
	return ""
}

// ---- helpers ----

func parseRules(t *testing.T, peer, inbound, outbound string) Rules {
	t.Helper()
	rules, err := ParseRules(decode(t, strings.ReplaceAll(inbound, "PEER", peer)), decode(t, strings.ReplaceAll(outbound, "PEER", peer)))
	if err != nil {
		t.Fatal(err)
	}
	return rules
}

func sorted(r Rules) Rules {
	in, out := append([]Rule(nil), r.Inbound...), append([]Rule(nil), r.Outbound...)
	Sort(in)
	Sort(out)
	return Rules{Inbound: in, Outbound: out}
}

// motoEC2 is an EC2 client acting in a moto account of the test's own, so
// parallel tests on the shared server never see each other's groups.
func motoEC2(t *testing.T) *ec2.Client {
	t.Helper()
	cfg := motoserver.TestConfig(t)
	account := fmt.Sprintf("%012d", 100000000000+rand.Int64N(800000000000))
	cfg.APIOptions = append(cfg.APIOptions, func(st *middleware.Stack) error {
		return st.Build.Add(middleware.BuildMiddlewareFunc("motoAccount",
			func(ctx context.Context, in middleware.BuildInput, next middleware.BuildHandler) (middleware.BuildOutput, middleware.Metadata, error) {
				if req, ok := in.Request.(*smithyhttp.Request); ok {
					req.Header.Set("x-moto-account-id", account)
				}
				return next.HandleBuild(ctx, in)
			}), middleware.After)
	})
	return ec2.NewFromConfig(cfg)
}

func defaultVPC(t *testing.T, api *ec2.Client) string {
	t.Helper()
	out, err := api.DescribeVpcs(context.Background(), &ec2.DescribeVpcsInput{
		Filters: []types.Filter{{Name: aws.String("is-default"), Values: []string{"true"}}},
	})
	if err != nil || len(out.Vpcs) != 1 {
		t.Fatalf("default vpc: %v %+v", err, out)
	}
	return aws.ToString(out.Vpcs[0].VpcId)
}

func createGroup(t *testing.T, api *ec2.Client, vpc, name string) string {
	t.Helper()
	out, err := api.CreateSecurityGroup(context.Background(), &ec2.CreateSecurityGroupInput{
		GroupName: aws.String(name), Description: aws.String("sgrules test " + name), VpcId: &vpc,
	})
	if err != nil {
		t.Fatalf("create group %s: %v", name, err)
	}
	id := aws.ToString(out.GroupId)
	if !groupIDPattern.MatchString(id) {
		t.Errorf("group id %q does not match the API's pattern", id)
	}
	return id
}

func readRules(t *testing.T, api *ec2.Client, group string) Rules {
	t.Helper()
	var all []types.SecurityGroupRule
	p := ec2.NewDescribeSecurityGroupRulesPaginator(api, &ec2.DescribeSecurityGroupRulesInput{
		Filters: []types.Filter{{Name: aws.String("group-id"), Values: []string{group}}},
	})
	for p.HasMorePages() {
		page, err := p.NextPage(context.Background())
		if err != nil {
			t.Fatalf("describe rules of %s: %v", group, err)
		}
		all = append(all, page.SecurityGroupRules...)
	}
	return FromSecurityGroupRules(all)
}

// applyChange is what the EC2 adapter does with a Change: authorize, then
// redescribe, then revoke.
func applyChange(t *testing.T, api *ec2.Client, group string, c Change) {
	t.Helper()
	ctx := context.Background()
	step := func(name string, rules []Rule, call func([]types.IpPermission) error) {
		if len(rules) == 0 {
			return
		}
		if err := call(ToIPPermissions(rules)); err != nil {
			t.Fatalf("%s %+v: %v", name, rules, err)
		}
	}
	step("authorize ingress", c.AuthorizeIngress, func(p []types.IpPermission) error {
		_, err := api.AuthorizeSecurityGroupIngress(ctx, &ec2.AuthorizeSecurityGroupIngressInput{GroupId: &group, IpPermissions: p})
		return err
	})
	step("authorize egress", c.AuthorizeEgress, func(p []types.IpPermission) error {
		_, err := api.AuthorizeSecurityGroupEgress(ctx, &ec2.AuthorizeSecurityGroupEgressInput{GroupId: &group, IpPermissions: p})
		return err
	})
	step("redescribe ingress", c.RedescribeIngress, func(p []types.IpPermission) error {
		_, err := api.UpdateSecurityGroupRuleDescriptionsIngress(ctx, &ec2.UpdateSecurityGroupRuleDescriptionsIngressInput{GroupId: &group, IpPermissions: p})
		return err
	})
	step("redescribe egress", c.RedescribeEgress, func(p []types.IpPermission) error {
		_, err := api.UpdateSecurityGroupRuleDescriptionsEgress(ctx, &ec2.UpdateSecurityGroupRuleDescriptionsEgressInput{GroupId: &group, IpPermissions: p})
		return err
	})
	step("revoke ingress", c.RevokeIngress, func(p []types.IpPermission) error {
		_, err := api.RevokeSecurityGroupIngress(ctx, &ec2.RevokeSecurityGroupIngressInput{GroupId: &group, IpPermissions: p})
		return err
	})
	step("revoke egress", c.RevokeEgress, func(p []types.IpPermission) error {
		_, err := api.RevokeSecurityGroupEgress(ctx, &ec2.RevokeSecurityGroupEgressInput{GroupId: &group, IpPermissions: p})
		return err
	})
}
