package groups_test

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/aws/smithy-go"

	"github.com/dflow-sh/cloud-accounts/shared/awsperms"
	"github.com/dflow-sh/cloud-accounts/shared/fault"
	"github.com/dflow-sh/cloud-accounts/shared/groups"
	"github.com/dflow-sh/cloud-accounts/shared/ids"
	"github.com/dflow-sh/cloud-accounts/shared/links"
	"github.com/dflow-sh/cloud-accounts/shared/sdkfault"
	"github.com/dflow-sh/cloud-accounts/shared/sgrules"
	"github.com/dflow-sh/cloud-accounts/shared/tenancy"
)

const webInbound = `[
	{"protocol":"tcp","fromPort":22,"toPort":22,"cidrIpv4":"0.0.0.0/0","description":"ssh"},
	{"protocol":"tcp","fromPort":443,"toPort":443,"cidrIpv6":"::/0","description":"https v6"},
	{"protocol":"tcp","fromPort":8080,"toPort":8080,"cidrIpv4":"10.0.0.0/8"}
]`

func TestCreate(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := newEnv(t)
	in := e.input("web servers", webInbound, nil)
	in.Description = ptr("Web tier (public)")
	g := e.create(in)

	if g.Status != groups.StatusInSync || g.LastError != nil || !strings.HasPrefix(g.AWSGroupID, "sg-") ||
		g.Version != 1 || g.CreatedBy != "user-1" || g.AccountID != e.link.ID || g.Region != region {
		t.Errorf("group %+v", g)
	}
	if len(g.Warnings) != 1 || g.Warnings[0].Code != sgrules.WarnSSHOpenToWorld || g.Warnings[0].Field != "inboundRules[0]" {
		t.Errorf("warnings %+v", g.Warnings)
	}
	// Outbound rules omitted: AWS's default egress, kept and held.
	if !reflect.DeepEqual(g.OutboundRules, sgrules.DefaultEgress()) {
		t.Errorf("outbound %+v", g.OutboundRules)
	}
	e.assertAWSHolds(g)

	vpcs, err := e.ec2(region).DescribeVpcs(ctx, &ec2.DescribeVpcsInput{Filters: []types.Filter{{Name: aws.String("is-default"), Values: []string{"true"}}}})
	if err != nil || len(vpcs.Vpcs) != 1 {
		t.Fatal(err)
	}
	out, err := e.ec2(region).DescribeSecurityGroups(ctx, &ec2.DescribeSecurityGroupsInput{GroupIds: []string{g.AWSGroupID}})
	if err != nil {
		t.Fatal(err)
	}
	sg := out.SecurityGroups[0]
	if aws.ToString(sg.VpcId) != g.VPCID || g.VPCID != aws.ToString(vpcs.Vpcs[0].VpcId) ||
		aws.ToString(sg.GroupName) != groups.AWSGroupName(g.ID) || aws.ToString(sg.Description) != "Web tier (public)" {
		t.Errorf("aws group %+v (dFlow vpc %s)", sg, g.VPCID)
	}
	tags := map[string]string{}
	for _, tg := range sg.Tags {
		tags[aws.ToString(tg.Key)] = aws.ToString(tg.Value)
	}
	want := map[string]string{awsperms.ManagedTagKey: "true", awsperms.OrgTagKey: e.org, groups.GroupTagKey: g.ID, "Name": "web servers"}
	if !reflect.DeepEqual(tags, want) {
		t.Errorf("tags %v; want %v", tags, want)
	}
	// The IPv6 rule is an Ipv6Range, not an IpRange.
	var v6 []string
	for _, p := range sg.IpPermissions {
		for _, r := range p.IpRanges {
			if strings.Contains(aws.ToString(r.CidrIp), ":") {
				t.Errorf("IPv6 range in IpRanges: %+v", r)
			}
		}
		for _, r := range p.Ipv6Ranges {
			v6 = append(v6, aws.ToString(r.CidrIpv6))
		}
	}
	if !reflect.DeepEqual(v6, []string{"::/0"}) {
		t.Errorf("Ipv6Ranges %v", v6)
	}

	// The account is in use by the group.
	uses, err := e.store.LinkUsage(ctx, e.org, e.link.ID)
	if err != nil || !reflect.DeepEqual(uses, []links.Usage{{Kind: "securityGroup", ID: g.ID}}) {
		t.Errorf("link usage %+v %v", uses, err)
	}

	d, err := e.svc.Get(ctx, e.org, g.ID)
	if err != nil {
		t.Fatal(err)
	}
	if d.Drift == nil || len(d.Drift) != 0 || d.DriftError != nil {
		t.Errorf("get: %+v", d)
	}
	if !reflect.DeepEqual(d.Group, g) {
		t.Errorf("get %+v\ncreate returned %+v", d.Group, g)
	}
}

// The outbound list is the whole truth: EC2's default egress is revoked
// unless it is wanted.
func TestCreateOutbound(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	cases := []struct {
		name     string
		outbound string
	}{
		{"none", `[]`},
		{"https only", `[{"protocol":"tcp","fromPort":443,"toPort":443,"cidrIpv4":"0.0.0.0/0"}]`},
		{"default and more", `[{"protocol":"all","cidrIpv4":"0.0.0.0/0"},{"protocol":"udp","fromPort":53,"toPort":53,"cidrIpv6":"::/0"}]`},
	}
	for _, c := range cases {
		e.faults.Reset()
		g := e.create(e.input("out "+c.name, `[]`, &c.outbound))
		e.assertAWSHolds(g)
		revoked := e.count("EC2.RevokeSecurityGroupEgress")
		if keep := strings.Contains(c.outbound, `"all"`); revoked != map[bool]int{true: 0, false: 1}[keep] {
			t.Errorf("%s: %d egress revokes", c.name, revoked)
		}
		if n := e.count("EC2.AuthorizeSecurityGroupIngress"); n != 0 {
			t.Errorf("%s: %d ingress authorizations for no inbound rules", c.name, n)
		}
	}
}

func TestCreateValidation(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := newEnv(t)
	e.create(e.input("Taken", `[]`, nil))
	noDefault := newEnv(t)
	noDefault.accts.wrap = func(api groups.EC2API) groups.EC2API { return noDefaultVPC{api} }

	other := func(f func(*groups.Input)) groups.Input {
		in := e.input("ok", `[]`, nil)
		f(&in)
		return in
	}
	cases := []struct {
		name  string
		env   *env
		in    groups.Input
		kind  fault.Kind
		code  string
		field string
	}{
		{"no name", e, other(func(in *groups.Input) { in.Name = nil }), fault.Invalid, "validation_failed", "name"},
		{"empty name", e, other(func(in *groups.Input) { in.Name = ptr("") }), fault.Invalid, "validation_failed", "name"},
		{"sg- name", e, other(func(in *groups.Input) { in.Name = ptr("sg-web") }), fault.Invalid, "validation_failed", "name"},
		{"name with é", e, other(func(in *groups.Input) { in.Name = ptr("café") }), fault.Invalid, "validation_failed", "name"},
		{"long name", e, other(func(in *groups.Input) { in.Name = ptr(strings.Repeat("a", 256)) }), fault.Invalid, "validation_failed", "name"},
		{"description chars", e, other(func(in *groups.Input) { in.Description = ptr("a <b>") }), fault.Invalid, "validation_failed", "description"},
		{"no account", e, other(func(in *groups.Input) { in.AccountID = nil }), fault.Invalid, "validation_failed", "accountId"},
		{"bad account", e, other(func(in *groups.Input) { in.AccountID = ptr("123456789012") }), fault.Invalid, "validation_failed", "accountId"},
		{"no region", e, other(func(in *groups.Input) { in.Region = nil }), fault.Invalid, "validation_failed", "region"},
		{"bad region", e, other(func(in *groups.Input) { in.Region = ptr("moon-1") }), fault.Invalid, "validation_failed", "region"},
		{"region of another partition", e, other(func(in *groups.Input) { in.Region = ptr("cn-north-1") }), fault.Invalid, "validation_failed", "region"},
		{"bad vpc", e, other(func(in *groups.Input) { in.VPCID = ptr("vpc-xyz") }), fault.Invalid, "validation_failed", "vpcId"},
		{"bad rule", e, other(func(in *groups.Input) {
			in.InboundRules = rules(t, `[{"protocol":"tcp","fromPort":22,"cidrIpv4":"10.0.0.1/8"}]`)
		}), fault.Invalid, "validation_failed", "inboundRules[0].toPort"},
		{"bad outbound rule", e, other(func(in *groups.Input) { in.OutboundRules = rules(t, `[{"protocol":"gre","cidrIpv4":"0.0.0.0/0"}]`) }), fault.Invalid, "validation_failed", "outboundRules[0].protocol"},
		{"unknown account", e, other(func(in *groups.Input) { in.AccountID = ptr(ids.New(ids.Account)) }), fault.NotFound, "account_not_found", ""},
		{"unknown vpc", e, other(func(in *groups.Input) { in.VPCID = ptr("vpc-0123456789abcdef0") }), fault.Unprocessable, groups.CodeVPCNotFound, ""},
		{"name taken", e, other(func(in *groups.Input) { in.Name = ptr("TAKEN") }), fault.Conflict, groups.CodeNameTaken, ""},
		{"no default vpc", noDefault, noDefault.input("x", `[]`, nil), fault.Unprocessable, groups.CodeNoDefaultVPC, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			g, err := c.env.svc.Create(ctx, c.env.caller, c.env.org, "req", c.in)
			fe, ok := fault.As(err)
			if !ok || fe.Kind != c.kind || fe.Code != c.code {
				t.Fatalf("error %v; want %v %s", err, c.kind, c.code)
			}
			if c.field != "" && (len(fe.Fields) == 0 || fe.Fields[0].Field != c.field) {
				t.Errorf("fields %+v; want %s", fe.Fields, c.field)
			}
			if g.ID != "" {
				t.Errorf("a refused create returned group %+v", g)
			}
		})
	}
	// Only the one group was made, in dFlow and in AWS.
	gs, _, err := e.svc.List(ctx, e.org, groups.Filter{}, tenancy.Page{Limit: 50})
	if err != nil || len(gs) != 1 {
		t.Errorf("groups %+v %v", gs, err)
	}
	out, err := e.ec2(region).DescribeSecurityGroups(ctx, &ec2.DescribeSecurityGroupsInput{Filters: []types.Filter{{Name: aws.String("tag:" + awsperms.OrgTagKey), Values: []string{e.org}}}})
	if err != nil || len(out.SecurityGroups) != 1 {
		t.Errorf("aws groups %d %v", len(out.SecurityGroups), err)
	}
	// The same name is free in another region.
	in := e.input("taken", `[]`, nil)
	in.Region = ptr("us-west-2")
	e.create(in)
}

// noDefaultVPC is a region whose default VPC was deleted (moto always has one).
type noDefaultVPC struct{ groups.EC2API }

func (noDefaultVPC) DescribeVpcs(context.Context, *ec2.DescribeVpcsInput, ...func(*ec2.Options)) (*ec2.DescribeVpcsOutput, error) {
	return &ec2.DescribeVpcsOutput{}, nil
}

// PATCH stores the new rules and applies only the difference with what AWS
// holds.
func TestPatchAppliesOnlyTheDiff(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := newEnv(t)
	g := e.create(e.input("patched", webInbound, nil))

	e.faults.Reset()
	moved := strings.Replace(webInbound, `"fromPort":22,"toPort":22`, `"fromPort":2222,"toPort":2222`, 1)
	g2, err := e.svc.Update(ctx, e.org, g.ID, "req-2", groups.Patch{InboundRules: rules(t, moved)}, ptr(g.Version))
	if err != nil {
		t.Fatal(err)
	}
	calls := e.ec2Calls()
	if e.count("EC2.AuthorizeSecurityGroupIngress") != 1 || e.count("EC2.RevokeSecurityGroupIngress") != 1 ||
		e.count("EC2.AuthorizeSecurityGroupEgress") != 0 || e.count("EC2.RevokeSecurityGroupEgress") != 0 ||
		e.count("EC2.ModifySecurityGroupRules") != 0 || e.count("EC2.CreateSecurityGroup") != 0 {
		t.Errorf("calls %v", calls)
	}
	if g2.Version != 2 || g2.Status != groups.StatusInSync || len(g2.Warnings) != 0 {
		t.Errorf("patched %+v", g2)
	}
	e.assertAWSHolds(g2)

	// A description change is made in place.
	e.faults.Reset()
	redesc := strings.Replace(moved, `"description":"ssh"`, `"description":"ssh moved"`, 1)
	g3, err := e.svc.Update(ctx, e.org, g.ID, "req-3", groups.Patch{InboundRules: rules(t, redesc)}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if e.count("EC2.ModifySecurityGroupRules") != 1 || e.count("EC2.AuthorizeSecurityGroupIngress") != 0 || e.count("EC2.RevokeSecurityGroupIngress") != 0 {
		t.Errorf("calls %v", e.ec2Calls())
	}
	e.assertAWSHolds(g3)

	// Outbound only: an egress rule added, the default one removed.
	e.faults.Reset()
	g4, err := e.svc.Update(ctx, e.org, g.ID, "req-4", groups.Patch{OutboundRules: rules(t, `[{"protocol":"tcp","fromPort":443,"toPort":443,"cidrIpv4":"0.0.0.0/0"}]`)}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if e.count("EC2.AuthorizeSecurityGroupEgress") != 1 || e.count("EC2.RevokeSecurityGroupEgress") != 1 || e.count("EC2.AuthorizeSecurityGroupIngress") != 0 {
		t.Errorf("calls %v", e.ec2Calls())
	}
	e.assertAWSHolds(g4)

	// A rename, and the same rules sent again, touch no AWS rule.
	e.faults.Reset()
	g5, err := e.svc.Update(ctx, e.org, g.ID, "req-5", groups.Patch{Name: ptr("renamed"), InboundRules: rules(t, redesc)}, ptr(g4.Version))
	if err != nil || g5.Name != "renamed" || g5.Version != g4.Version+1 {
		t.Fatalf("rename: %+v %v", g5, err)
	}
	if calls := e.ec2Calls(); len(calls) != 0 {
		t.Errorf("rename called %v", calls)
	}

	// Refusals.
	for _, c := range []struct {
		name  string
		patch groups.Patch
		match *int64
		code  string
	}{
		{"stale version", groups.Patch{Name: ptr("x")}, ptr(g4.Version), "version_mismatch"},
		{"description", groups.Patch{Description: ptr("another")}, nil, "validation_failed"},
		{"nothing", groups.Patch{}, nil, "validation_failed"},
		{"bad rule", groups.Patch{InboundRules: rules(t, `[{"protocol":"tcp"}]`)}, nil, "validation_failed"},
	} {
		if _, err := e.svc.Update(ctx, e.org, g.ID, "req", c.patch, c.match); !fault.Is(err, c.code) {
			t.Errorf("%s: %v; want %s", c.name, err, c.code)
		}
	}
	// The same description is no change.
	if _, err := e.svc.Update(ctx, e.org, g.ID, "req", groups.Patch{Description: ptr(groups.DefaultDescription)}, nil); err != nil {
		t.Errorf("same description: %v", err)
	}
}

// Rules changed in AWS behind dFlow's back show as drift; sync repairs them.
func TestDriftAndSync(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := newEnv(t)
	g := e.create(e.input("drifting", webInbound, nil))
	api := e.ec2(region)
	extra := sgrules.Rule{Protocol: "tcp", FromPort: 3306, ToPort: 3306, CIDRv4: "0.0.0.0/0"}
	if _, err := api.AuthorizeSecurityGroupIngress(ctx, &ec2.AuthorizeSecurityGroupIngressInput{GroupId: &g.AWSGroupID, IpPermissions: sgrules.ToIPPermissions([]sgrules.Rule{extra})}); err != nil {
		t.Fatal(err)
	}
	gone := g.InboundRules[2]
	if _, err := api.RevokeSecurityGroupIngress(ctx, &ec2.RevokeSecurityGroupIngressInput{GroupId: &g.AWSGroupID, IpPermissions: sgrules.ToIPPermissions([]sgrules.Rule{gone})}); err != nil {
		t.Fatal(err)
	}
	d, err := e.svc.Get(ctx, e.org, g.ID)
	if err != nil {
		t.Fatal(err)
	}
	// Sorted by rule: 3306 before 8080.
	want := []sgrules.DriftItem{
		{Direction: sgrules.Inbound, Kind: sgrules.DriftUnexpected, Rule: extra},
		{Direction: sgrules.Inbound, Kind: sgrules.DriftMissing, Rule: gone},
	}
	if !reflect.DeepEqual(d.Drift, want) || d.DriftError != nil {
		t.Errorf("drift %+v %+v\nwant %+v", d.Drift, d.DriftError, want)
	}

	s, err := e.svc.Sync(ctx, e.org, g.ID, "req-sync")
	if err != nil {
		t.Fatal(err)
	}
	if s.Drift == nil || len(s.Drift) != 0 || s.Status != groups.StatusInSync || s.AWSGroupID != g.AWSGroupID {
		t.Errorf("after sync %+v", s)
	}
	e.assertAWSHolds(g)
}

// A group deleted outside dFlow shows as missing, and sync recreates it.
func TestSyncRecreatesDeletedGroup(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := newEnv(t)
	g := e.create(e.input("recreated", webInbound, ptr(`[]`)))
	if _, err := e.ec2(region).DeleteSecurityGroup(ctx, &ec2.DeleteSecurityGroupInput{GroupId: &g.AWSGroupID}); err != nil {
		t.Fatal(err)
	}
	d, err := e.svc.Get(ctx, e.org, g.ID)
	if err != nil || d.Drift != nil || d.DriftError == nil || d.DriftError.Code != groups.CodeAWSGroupMissing {
		t.Fatalf("get: %+v %v", d, err)
	}
	s, err := e.svc.Sync(ctx, e.org, g.ID, "req")
	if err != nil {
		t.Fatal(err)
	}
	if s.AWSGroupID == g.AWSGroupID || s.AWSGroupID == "" || len(s.Drift) != 0 || s.Drift == nil {
		t.Errorf("after sync %+v", s)
	}
	e.assertAWSHolds(s.Group)
	if tg := e.tagged(g.ID); len(tg) != 1 || aws.ToString(tg[0].GroupId) != s.AWSGroupID {
		t.Errorf("tagged groups %+v", tg)
	}
}

func TestDelete(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := newEnv(t)
	g := e.create(e.input("deleted", `[]`, nil))

	e.useGroup(g.ID, "wn_a")
	e.useGroup(g.ID, "wn_b")
	err := e.svc.Delete(ctx, e.org, g.ID, nil)
	if fe, ok := fault.As(err); !ok || fe.Kind != fault.Conflict || fe.Code != groups.CodeInUse || !reflect.DeepEqual(fe.Extra["nodeIds"], []string{"wn_a", "wn_b"}) {
		t.Fatalf("delete in use: %v", err)
	}
	if users, err := e.svc.Users(ctx, e.org, g.ID); err != nil || len(users) != 2 {
		t.Errorf("users %v %v", users, err)
	}
	e.unuseGroup(g.ID, "wn_a")
	e.unuseGroup(g.ID, "wn_b")

	// AWS refusing (a network interface uses it) is 409 too, and leaves the
	// group as it was.
	e.faults.FailNth("EC2.DeleteSecurityGroup", 1, &smithy.GenericAPIError{Code: "DependencyViolation", Message: "resource has a dependent object"})
	if err := e.svc.Delete(ctx, e.org, g.ID, nil); !fault.Is(err, groups.CodeInUse) {
		t.Fatalf("dependency violation: %v", err)
	}
	if err := e.svc.Delete(ctx, e.org, g.ID, ptr(int64(9))); !fault.Is(err, "version_mismatch") {
		t.Errorf("stale If-Match: %v", err)
	}

	if err := e.svc.Delete(ctx, e.org, g.ID, ptr(g.Version)); err != nil {
		t.Fatal(err)
	}
	_, err = e.ec2(region).DescribeSecurityGroups(ctx, &ec2.DescribeSecurityGroupsInput{GroupIds: []string{g.AWSGroupID}})
	var ae smithy.APIError
	if !errors.As(err, &ae) || ae.ErrorCode() != "InvalidGroup.NotFound" {
		t.Errorf("aws group after delete: %v", err)
	}
	if uses, err := e.store.LinkUsage(ctx, e.org, e.link.ID); err != nil || len(uses) != 0 {
		t.Errorf("usage left %+v %v", uses, err)
	}
	if _, err := e.svc.Get(ctx, e.org, g.ID); !fault.Is(err, groups.CodeNotFound) {
		t.Errorf("get after delete: %v", err)
	}
	e.create(e.input("deleted", `[]`, nil))
}

func TestOtherOrganisation(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := newEnv(t)
	g := e.create(e.input("mine", `[]`, nil))
	other := ids.New(ids.Org)
	if _, err := e.svc.Get(ctx, other, g.ID); !fault.Is(err, groups.CodeNotFound) {
		t.Errorf("get: %v", err)
	}
	if _, err := e.svc.Update(ctx, other, g.ID, "r", groups.Patch{Name: ptr("x")}, nil); !fault.Is(err, groups.CodeNotFound) {
		t.Errorf("update: %v", err)
	}
	if _, err := e.svc.Sync(ctx, other, g.ID, "r"); !fault.Is(err, groups.CodeNotFound) {
		t.Errorf("sync: %v", err)
	}
	if err := e.svc.Delete(ctx, other, g.ID, nil); !fault.Is(err, groups.CodeNotFound) {
		t.Errorf("delete: %v", err)
	}
	if gs, _, err := e.svc.List(ctx, other, groups.Filter{}, tenancy.Page{Limit: 10}); err != nil || len(gs) != 0 {
		t.Errorf("list: %+v %v", gs, err)
	}
	if _, err := e.svc.Get(ctx, e.org, "sg-0123456789abcdef0"); !fault.Is(err, groups.CodeNotFound) {
		t.Errorf("get by aws id: %v", err)
	}
	// Nor can a group be created in another organisation's account.
	in := e.input("theirs", `[]`, nil)
	if _, err := e.svc.Create(ctx, e.caller, other, "r", in); !fault.Is(err, "account_not_found") {
		t.Errorf("create in another org's account: %v", err)
	}
}

func TestList(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := newEnv(t)
	a := e.create(e.input("a", `[]`, nil))
	in := e.input("b", `[]`, nil)
	in.Region = ptr("eu-west-1")
	b := e.create(in)
	all, _, err := e.svc.List(ctx, e.org, groups.Filter{}, tenancy.Page{Limit: 10})
	if err != nil || len(all) != 2 {
		t.Fatalf("all: %+v %v", all, err)
	}
	for _, g := range all {
		if g.Warnings == nil || g.InboundRules == nil || g.OutboundRules == nil {
			t.Errorf("null lists in %+v", g)
		}
	}
	eu, _, err := e.svc.List(ctx, e.org, groups.Filter{Region: "eu-west-1"}, tenancy.Page{Limit: 10})
	if err != nil || len(eu) != 1 || eu[0].ID != b.ID {
		t.Errorf("eu: %+v %v", eu, err)
	}
	acc, _, err := e.svc.List(ctx, e.org, groups.Filter{AccountID: e.link.ID, Region: region}, tenancy.Page{Limit: 10})
	if err != nil || len(acc) != 1 || acc[0].ID != a.ID {
		t.Errorf("account+region: %+v %v", acc, err)
	}
	if _, _, err := e.svc.List(ctx, e.org, groups.Filter{Region: "nowhere"}, tenancy.Page{Limit: 10}); !fault.Is(err, "validation_failed") {
		t.Errorf("bad filter: %v", err)
	}
}

// TestCreateFaults makes each AWS call of a create fail in turn. Whatever
// fails, dFlow never leaves an AWS group it does not know: either nothing
// was written and nothing created, or the record is failed, names the
// error, and holds the id of the one AWS group tagged as it (or none exists).
// Sync then repairs it and delete removes everything.
func TestCreateFaults(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := newEnv(t)
	inbound := `[{"protocol":"tcp","fromPort":443,"toPort":443,"cidrIpv4":"0.0.0.0/0"}]`
	outbound := `[{"protocol":"tcp","fromPort":443,"toPort":443,"cidrIpv4":"0.0.0.0/0"}]`
	e.faults.Reset()
	e.create(e.input("dry run", inbound, &outbound))
	var plan []sdkfault.Occurrence
	for _, o := range sdkfault.Occurrences(e.faults.Calls()) {
		if strings.HasPrefix(o.Call, "EC2.") || o.Call == "DynamoDB.UpdateItem" || o.Call == "DynamoDB.TransactWriteItems" {
			plan = append(plan, o)
		}
	}
	if len(plan) < 8 {
		t.Fatalf("a create makes only %v", plan)
	}
	for i, o := range plan {
		t.Run(o.String(), func(t *testing.T) {
			name := fmt.Sprintf("faulty %d", i)
			e.faults.Reset()
			e.faults.FailNth(o.Call, o.Nth, &smithy.GenericAPIError{Code: "InternalError", Message: "injected", Fault: smithy.FaultServer})
			g, err := e.svc.Create(ctx, e.caller, e.org, "req-faulty", e.input(name, inbound, &outbound))
			if err == nil {
				t.Fatalf("create succeeded despite %s failing", o)
			}
			if g.ID == "" {
				// Refused before the record: no record, no AWS group.
				gs, _, _ := e.svc.List(ctx, e.org, groups.Filter{}, tenancy.Page{Limit: 100})
				for _, x := range gs {
					if x.Name == name {
						t.Errorf("record %+v left by a create that returned none", x)
					}
				}
				if c := e.count("EC2.CreateSecurityGroup"); c != 0 {
					t.Errorf("AWS group created, no record returned")
				}
				return
			}
			// Faults name the group (internal errors show nothing but a 500).
			if fe, ok := fault.As(err); ok && fe.Extra["securityGroupId"] != g.ID {
				t.Errorf("error does not name the group: %v", err)
			}
			rec, gerr := e.svc.Get(ctx, e.org, g.ID)
			if gerr != nil {
				t.Fatalf("record of a failed create: %v", gerr)
			}
			tagged := e.tagged(g.ID)
			switch {
			case len(tagged) > 1:
				t.Errorf("%d AWS groups for one dFlow group", len(tagged))
			case len(tagged) == 1 && rec.AWSGroupID != aws.ToString(tagged[0].GroupId):
				t.Errorf("AWS group %s untracked (record holds %q)", aws.ToString(tagged[0].GroupId), rec.AWSGroupID)
			case len(tagged) == 0 && rec.AWSGroupID != "":
				t.Errorf("record holds %s, which does not exist", rec.AWSGroupID)
			}
			if rec.Status != groups.StatusFailed || rec.LastError == nil || rec.LastError.RequestID != "req-faulty" {
				// The failure record itself is an UpdateItem: when that is the
				// call that failed, the group stays pending.
				if rec.Status != groups.StatusPending || o.Call != "DynamoDB.UpdateItem" {
					t.Errorf("record %+v", rec.Group)
				}
			}
			s, err := e.svc.Sync(ctx, e.org, g.ID, "req-repair")
			if err != nil || s.Status != groups.StatusInSync || len(s.Drift) != 0 {
				t.Fatalf("sync: %+v %v", s, err)
			}
			e.assertAWSHolds(s.Group)
			if err := e.svc.Delete(ctx, e.org, g.ID, nil); err != nil {
				t.Fatal(err)
			}
			if tg := e.tagged(g.ID); len(tg) != 0 {
				t.Errorf("left in AWS: %+v", tg)
			}
		})
	}
}

// AWS errors become the faults the API shows, and the group records them.
func TestCreateAWSFaults(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := newEnv(t)
	cases := []struct {
		call, awsCode string
		kind          fault.Kind
		code          string
	}{
		{"EC2.CreateSecurityGroup", "UnauthorizedOperation", fault.Unprocessable, groups.CodePermissionDenied},
		{"EC2.AuthorizeSecurityGroupIngress", "RequestLimitExceeded", fault.Unavailable, groups.CodeThrottled},
		{"EC2.AuthorizeSecurityGroupIngress", "RulesPerSecurityGroupLimitExceeded", fault.Unprocessable, groups.CodeRulesRejected},
		{"EC2.DescribeVpcs", "AuthFailure", fault.Unprocessable, groups.CodeAuthFailed},
	}
	for i, c := range cases {
		e.faults.Reset()
		e.faults.FailNth(c.call, 1, &smithy.GenericAPIError{Code: c.awsCode, Message: "m"})
		g, err := e.svc.Create(ctx, e.caller, e.org, "r", e.input(fmt.Sprintf("f%d", i), `[{"protocol":"tcp","fromPort":1,"toPort":1,"cidrIpv4":"10.0.0.0/8"}]`, nil))
		fe, ok := fault.As(err)
		if !ok || fe.Kind != c.kind || fe.Code != c.code || fe.Extra["awsErrorCode"] != c.awsCode {
			t.Errorf("%s %s: %v", c.call, c.awsCode, err)
			continue
		}
		if g.ID != "" && (g.LastError == nil || g.LastError.Code != c.code) {
			t.Errorf("%s %s: group %+v", c.call, c.awsCode, g)
		}
	}
}

// lostAnswer makes CreateSecurityGroup succeed in EC2 and its answer get lost.
type lostAnswer struct{ groups.EC2API }

func (l lostAnswer) CreateSecurityGroup(ctx context.Context, in *ec2.CreateSecurityGroupInput, opts ...func(*ec2.Options)) (*ec2.CreateSecurityGroupOutput, error) {
	if _, err := l.EC2API.CreateSecurityGroup(ctx, in, opts...); err != nil {
		return nil, err
	}
	return nil, &smithy.OperationError{ServiceID: "EC2", OperationName: "CreateSecurityGroup",
		Err: &smithy.GenericAPIError{Code: "ServiceUnavailable", Message: "connection reset", Fault: smithy.FaultServer}}
}

// A group EC2 made whose answer was lost is found by its tag and used.
func TestCreateLostAnswer(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.accts.wrap = func(api groups.EC2API) groups.EC2API { return lostAnswer{api} }
	g := e.create(e.input("lost", webInbound, nil))
	if g.Status != groups.StatusInSync {
		t.Fatalf("group %+v", g)
	}
	if tg := e.tagged(g.ID); len(tg) != 1 || aws.ToString(tg[0].GroupId) != g.AWSGroupID {
		t.Errorf("tagged %+v; record holds %s", tg, g.AWSGroupID)
	}
	e.assertAWSHolds(g)
}

// Rules referencing another group, and an IPv6 rule's description changed
// in place. (Group-referencing rules carry no description here: moto drops
// those descriptions; see shared/sgrules/moto_test.go.)
func TestGroupReferencesAndIPv6Descriptions(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := newEnv(t)
	peer := e.create(e.input("peers", `[]`, nil))
	in := fmt.Sprintf(`[
		{"protocol":"all","sourceSecurityGroupId":%q},
		{"protocol":"tcp","fromPort":10250,"toPort":10250,"sourceSecurityGroupId":%q},
		{"protocol":"udp","fromPort":51820,"toPort":51820,"cidrIpv6":"2001:db8::/32","description":"wg"}
	]`, peer.AWSGroupID, peer.AWSGroupID)
	g := e.create(e.input("workers", in, ptr(fmt.Sprintf(`[{"protocol":"all","sourceSecurityGroupId":%q}]`, peer.AWSGroupID))))
	e.assertAWSHolds(g)

	e.faults.Reset()
	next := fmt.Sprintf(`[
		{"protocol":"tcp","fromPort":10250,"toPort":10250,"sourceSecurityGroupId":%q},
		{"protocol":"udp","fromPort":51820,"toPort":51820,"cidrIpv6":"2001:db8::/32","description":"wireguard"}
	]`, peer.AWSGroupID)
	g2, err := e.svc.Update(ctx, e.org, g.ID, "r", groups.Patch{InboundRules: rules(t, next)}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if e.count("EC2.RevokeSecurityGroupIngress") != 1 || e.count("EC2.ModifySecurityGroupRules") != 1 || e.count("EC2.AuthorizeSecurityGroupIngress") != 0 {
		t.Errorf("calls %v", e.ec2Calls())
	}
	e.assertAWSHolds(g2)
	if d, err := e.svc.Get(ctx, e.org, g.ID); err != nil || len(d.Drift) != 0 || d.DriftError != nil {
		t.Errorf("drift %+v %v", d, err)
	}
}

// When EC2 has no room for new rules beside the old, the change is applied
// revoking first.
func TestRuleQuotaRevokesFirst(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := newEnv(t)
	g := e.create(e.input("full", `[{"protocol":"tcp","fromPort":1,"toPort":1,"cidrIpv4":"10.0.0.0/8"}]`, nil))
	e.faults.Reset()
	e.faults.FailNth("EC2.AuthorizeSecurityGroupIngress", 1, &smithy.GenericAPIError{Code: "RulesPerSecurityGroupLimitExceeded", Message: "full"})
	g2, err := e.svc.Update(ctx, e.org, g.ID, "r", groups.Patch{InboundRules: rules(t, `[{"protocol":"tcp","fromPort":2,"toPort":2,"cidrIpv4":"10.0.0.0/8"}]`)}, nil)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"EC2.DescribeSecurityGroups", "EC2.DescribeSecurityGroupRules", "EC2.AuthorizeSecurityGroupIngress",
		"EC2.DescribeSecurityGroupRules", "EC2.RevokeSecurityGroupIngress", "EC2.AuthorizeSecurityGroupIngress",
	}
	if got := e.ec2Calls(); !reflect.DeepEqual(got, want) {
		t.Errorf("calls %v\nwant %v", got, want)
	}
	e.assertAWSHolds(g2)
}

// Concurrent PATCHes: each either wins or gets concurrent_update; AWS ends
// with the rules of the last version, in sync.
func TestConcurrentPatches(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := newEnv(t)
	g := e.create(e.input("busy", `[]`, ptr(`[]`)))
	const n = 4
	errs := make(chan error, n)
	for i := range n {
		go func() {
			for {
				_, err := e.svc.Update(ctx, e.org, g.ID, "r", groups.Patch{InboundRules: rules(t,
					fmt.Sprintf(`[{"protocol":"tcp","fromPort":%d,"toPort":%d,"cidrIpv4":"10.0.0.0/8"}]`, 100+i, 100+i))}, nil)
				if fault.Is(err, groups.CodeConcurrent) {
					continue
				}
				errs <- err
				return
			}
		}()
	}
	for range n {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
	// Whoever wins, dFlow and AWS agree afterwards. (The version is not
	// asserted to be 1+n: moto does not serialise concurrent conditional
	// transactions — two writers at one version can both pass, which
	// DynamoDB never allows — so on moto a write may be lost here.)
	d, err := e.svc.Get(ctx, e.org, g.ID)
	if err != nil || d.Version < 2 || d.Status != groups.StatusInSync || len(d.Drift) != 0 {
		t.Errorf("after concurrent patches: %+v %v", d, err)
	}
	e.assertAWSHolds(d.Group)
}

// retriedCreate is the SDK retrying a CreateSecurityGroup whose first answer
// was lost: EC2 made the group, and the retry is refused as a duplicate.
type retriedCreate struct{ groups.EC2API }

func (r retriedCreate) CreateSecurityGroup(ctx context.Context, in *ec2.CreateSecurityGroupInput, opts ...func(*ec2.Options)) (*ec2.CreateSecurityGroupOutput, error) {
	if _, err := r.EC2API.CreateSecurityGroup(ctx, in, opts...); err != nil {
		return nil, err
	}
	return r.EC2API.CreateSecurityGroup(ctx, in, opts...)
}

// EC2 keeps group names unique per VPC, so a second create of the same dFlow
// group is refused, and the group is found by its name.
func TestCreateRetriedDuplicate(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.accts.wrap = func(api groups.EC2API) groups.EC2API { return retriedCreate{api} }
	g := e.create(e.input("retried", webInbound, nil))
	if e.count("EC2.CreateSecurityGroup") != 2 || g.Status != groups.StatusInSync {
		t.Fatalf("calls %v, group %+v", e.ec2Calls(), g)
	}
	if tg := e.tagged(g.ID); len(tg) != 1 || aws.ToString(tg[0].GroupId) != g.AWSGroupID {
		t.Errorf("tagged %+v; record holds %s", tg, g.AWSGroupID)
	}
	e.assertAWSHolds(g)
}
