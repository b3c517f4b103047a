package nodes_test

import (
	"encoding/base64"
	"slices"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"

	"github.com/dflow-sh/cloud-accounts/shared/awsperms"
	"github.com/dflow-sh/cloud-accounts/shared/fault"
	"github.com/dflow-sh/cloud-accounts/shared/ids"
	"github.com/dflow-sh/cloud-accounts/shared/nodes"
	"github.com/dflow-sh/cloud-accounts/shared/tenancy"
)

// The instance is launched as the policy and the spec require: tags on
// instance and volume, IMDSv2, an encrypted gp3 root volume of diskGiB,
// the imported key; usage items appear with the node.
func TestLaunch(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	in := e.input("web-1")
	in.UserData = base64.StdEncoding.EncodeToString([]byte("#!/bin/sh\necho hi\n"))
	n, err := e.svc.Create(e.ctx, admin("alice"), e.org, "req-1", in)
	if err != nil {
		t.Fatal(err)
	}
	if !ids.Valid(ids.Node, n.ID) || n.InstanceID == "" || n.Status == nodes.Failed || n.Version != 2 {
		t.Fatalf("node %+v", n)
	}
	if n.ImageID != e.ami || n.OS != "amazon-linux" || n.VPCID != e.defVPC || n.SubnetID == "" || n.CreatedBy != "alice" {
		t.Errorf("node %+v", n)
	}
	if n.Connection.Port != 22 || n.Connection.Username != "ec2-user" || n.Connection.SSHKeyID != e.keyID {
		t.Errorf("connection %+v", n.Connection)
	}

	live := e.tagged()
	inst, ok := live[n.InstanceID]
	if !ok || len(live) != 1 {
		t.Fatalf("instances %v", live)
	}
	want := map[string]string{
		"Name": "web-1", awsperms.ManagedTagKey: "true", awsperms.OrgTagKey: e.org,
		nodes.EnvironmentTagKey: "production", awsperms.NodeTagKey: n.ID, nodes.RequestTagKey: "req-1",
	}
	checkTags(t, "instance", inst.Tags, want)
	if inst.MetadataOptions == nil || inst.MetadataOptions.HttpTokens != types.HttpTokensStateRequired ||
		inst.MetadataOptions.HttpEndpoint != types.InstanceMetadataEndpointStateEnabled {
		t.Errorf("metadata options %+v", inst.MetadataOptions)
	}
	if aws.ToString(inst.KeyName) != "dflow-"+e.keyID || string(inst.InstanceType) != "t3.micro" || aws.ToString(inst.SubnetId) != n.SubnetID {
		t.Errorf("key %s type %s subnet %s", aws.ToString(inst.KeyName), inst.InstanceType, aws.ToString(inst.SubnetId))
	}
	if len(inst.SecurityGroups) != 1 || aws.ToString(inst.SecurityGroups[0].GroupId) != e.groups[e.groupID].AWSGroupID {
		t.Errorf("groups %+v", inst.SecurityGroups)
	}
	ud, err := e.raw.DescribeInstanceAttribute(e.ctx, &ec2.DescribeInstanceAttributeInput{InstanceId: inst.InstanceId, Attribute: types.InstanceAttributeNameUserData})
	if err != nil || ud.UserData == nil || aws.ToString(ud.UserData.Value) != in.UserData {
		t.Errorf("user data %v %v", ud, err)
	}

	vols, err := e.raw.DescribeVolumes(e.ctx, &ec2.DescribeVolumesInput{Filters: []types.Filter{
		{Name: aws.String("attachment.instance-id"), Values: []string{n.InstanceID}},
	}})
	if err != nil || len(vols.Volumes) != 1 {
		t.Fatalf("volumes %+v %v", vols, err)
	}
	v := vols.Volumes[0]
	if !aws.ToBool(v.Encrypted) || v.VolumeType != types.VolumeTypeGp3 || aws.ToInt32(v.Size) != 20 {
		t.Errorf("volume encrypted=%v type=%s size=%d", aws.ToBool(v.Encrypted), v.VolumeType, aws.ToInt32(v.Size))
	}
	checkTags(t, "volume", v.Tags, want)

	// Usage items: the account and the group are in use.
	if u := e.linkUsage(); len(u) != 1 || u[0].Kind != nodes.UsageKind || u[0].ID != n.ID {
		t.Errorf("link usage %+v", u)
	}
	if u := e.groupUsers(e.groupID); !slices.Equal(u, []string{n.ID}) {
		t.Errorf("group users %v", u)
	}

	got, err := e.svc.Get(e.ctx, admin("bob"), e.org, n.ID)
	if err != nil || got.Status != nodes.Running || got.InstanceID != n.InstanceID || got.PrivateIP == "" || got.Connection.Host == "" {
		t.Fatalf("get %+v %v", got, err)
	}
}

func checkTags(t *testing.T, what string, tags []types.Tag, want map[string]string) {
	t.Helper()
	have := map[string]string{}
	for _, tg := range tags {
		have[aws.ToString(tg.Key)] = aws.ToString(tg.Value)
	}
	for k, v := range want {
		if have[k] != v {
			t.Errorf("%s tag %s = %q, want %q (all: %v)", what, k, have[k], v, have)
		}
	}
}

// Stop, start, reboot, terminate; usage released when terminated; a
// terminated node refuses to start.
func TestLifecycle(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	caller := admin("alice")
	n, err := e.svc.Create(e.ctx, caller, e.org, "req-1", e.input("web-1"))
	if err != nil {
		t.Fatal(err)
	}
	steps := []struct {
		action, want string
	}{
		{nodes.ActionStop, nodes.Stopped},
		{nodes.ActionStop, nodes.Stopped},
		{nodes.ActionStart, nodes.Running},
		{nodes.ActionStart, nodes.Running},
		{nodes.ActionReboot, nodes.Running},
	}
	for _, st := range steps {
		got, err := e.svc.Action(e.ctx, caller, e.org, n.ID, st.action)
		if err != nil || got.Status != st.want {
			t.Fatalf("%s: %+v %v", st.action, got.Status, err)
		}
		if inst := e.tagged("pending", "running", "stopping", "stopped")[n.InstanceID]; inst.State == nil {
			t.Fatalf("%s: instance gone", st.action)
		}
	}
	if _, err := e.svc.Action(e.ctx, caller, e.org, n.ID, "explode"); code(err) != "validation_failed" {
		t.Errorf("unknown action: %v", err)
	}
	stopped, err := e.svc.Action(e.ctx, caller, e.org, n.ID, nodes.ActionStop)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.svc.Action(e.ctx, caller, e.org, n.ID, nodes.ActionReboot); code(err) != nodes.CodeInvalidState {
		t.Errorf("reboot stopped: %v (%s)", err, stopped.Status)
	}

	del, err := e.svc.Delete(e.ctx, caller, e.org, n.ID)
	if err != nil || del.Status != nodes.Terminated {
		t.Fatalf("delete: %+v %v", del.Status, err)
	}
	if len(e.tagged()) != 0 {
		t.Error("instance still running")
	}
	if u := e.linkUsage(); len(u) != 0 {
		t.Errorf("link usage after terminate %+v", u)
	}
	if u := e.groupUsers(e.groupID); len(u) != 0 {
		t.Errorf("group users after terminate %v", u)
	}
	if _, err := e.svc.Action(e.ctx, caller, e.org, n.ID, nodes.ActionStart); code(err) != nodes.CodeInvalidState {
		t.Errorf("start terminated: %v", err)
	}
	again, err := e.svc.Delete(e.ctx, caller, e.org, n.ID)
	if err != nil || again.Status != nodes.Terminated || again.Version != del.Version {
		t.Errorf("delete again: %+v %v", again, err)
	}
	active, err := e.store.ActiveNodes(e.ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range active {
		if a.ID == n.ID {
			t.Error("terminated node still in the active index")
		}
	}
}

// Sending Create twice for the same request starts one instance, also when
// the first attempt's record of its instance was lost: moto ignores
// ClientToken, so this is the tag guard at work.
func TestCreateTwiceStartsOneInstance(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	caller := admin("alice")
	first, err := e.svc.Create(e.ctx, caller, e.org, "key-1", e.input("web-1"))
	if err != nil {
		t.Fatal(err)
	}
	second, err := e.svc.Create(e.ctx, caller, e.org, "key-1", e.input("web-1"))
	if err != nil || second.ID != first.ID || second.InstanceID != first.InstanceID {
		t.Fatalf("second: %+v %v", second, err)
	}
	if _, err := e.svc.Create(e.ctx, caller, e.org, "key-1", e.input("other-name")); code(err) != nodes.CodeExists {
		t.Errorf("same key, other node: %v", err)
	}

	// Lose the record of the launch: the second TransactWriteItems (the
	// update after RunInstances) fails.
	e.faults.Reset()
	e.faults.FailNth("DynamoDB.TransactWriteItems", 2, nil)
	lost, err := e.svc.Create(e.ctx, caller, e.org, "key-2", e.input("web-2"))
	e.faults.Reset()
	if err != nil || lost.InstanceID == "" {
		t.Fatalf("lost: %+v %v", lost, err)
	}
	stored, err := e.store.GetNode(e.ctx, e.org, lost.ID)
	if err != nil || stored.InstanceID != "" || stored.Status != nodes.Provisioning {
		t.Fatalf("stored: %+v %v", stored, err)
	}
	// A retry while the first attempt may still run answers the node as is.
	early, err := e.svc.Create(e.ctx, caller, e.org, "key-2", e.input("web-2"))
	if err != nil || early.InstanceID != "" {
		t.Fatalf("early retry: %+v %v", early, err)
	}
	e.clock.Add(nodes.ResumeAfter)
	retried, err := e.svc.Create(e.ctx, caller, e.org, "key-2", e.input("web-2"))
	if err != nil || retried.InstanceID != lost.InstanceID {
		t.Fatalf("retry: %+v %v", retried, err)
	}
	if calls := strings.Join(e.faults.Calls(), " "); strings.Contains(calls, "RunInstances") {
		t.Errorf("the retry launched again: %s", calls)
	}
	if live := e.tagged(); len(live) != 2 {
		t.Errorf("%d instances, want 2", len(live))
	}
}

// Refusals before anything is launched.
func TestRefusals(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	armAMI := e.findAMI("arm64")
	otherLink := e.addLink([]string{"*"})
	otherRegionGroup := e.addGroup(e.link.ID, "eu-west-1", "vpc-0123456789abcdef0", "sg-0123456789abcdef0")
	otherAccountGroup := e.addGroup(otherLink.ID, region, e.defVPC, e.groups[e.groupID].AWSGroupID)
	vpc, err := e.raw.CreateVpc(e.ctx, &ec2.CreateVpcInput{CidrBlock: aws.String("10.9.0.0/16")})
	if err != nil {
		t.Fatal(err)
	}
	sn, err := e.raw.CreateSubnet(e.ctx, &ec2.CreateSubnetInput{VpcId: vpc.Vpc.VpcId, CidrBlock: aws.String("10.9.1.0/24")})
	if err != nil {
		t.Fatal(err)
	}
	otherSubnet := aws.ToString(sn.Subnet.SubnetId)
	otherVPCGroup := e.addGroup(e.link.ID, region, aws.ToString(vpc.Vpc.VpcId), "sg-0123456789abcdef1")

	cases := []struct {
		name string
		edit func(*nodes.Input)
		code string
	}{
		{"environment not allowed", func(in *nodes.Input) { in.Environment = "dev" }, nodes.CodeEnvironmentNotAllowed},
		{"account not found", func(in *nodes.Input) { in.AccountID = ids.New(ids.Account) }, nodes.CodeAccountNotFound},
		{"type not offered", func(in *nodes.Input) { in.InstanceType = "zz9.huge" }, nodes.CodeInstanceTypeNotOffered},
		{"image not found", func(in *nodes.Input) { in.Image.ID = "ami-00000000deadbeef0" }, nodes.CodeImageNotFound},
		{"image architecture", func(in *nodes.Input) { in.Image.ID = armAMI }, nodes.CodeImageArchitectureMismatch},
		{"group other region", func(in *nodes.Input) { in.SecurityGroupIDs = []string{otherRegionGroup} }, nodes.CodeSecurityGroupMismatch},
		{"group other account", func(in *nodes.Input) { in.SecurityGroupIDs = []string{otherAccountGroup} }, nodes.CodeSecurityGroupMismatch},
		{"groups in two vpcs", func(in *nodes.Input) { in.SecurityGroupIDs = append(in.SecurityGroupIDs, otherVPCGroup) }, nodes.CodeSecurityGroupMismatch},
		{"unknown group", func(in *nodes.Input) { in.SecurityGroupIDs = []string{ids.New(ids.Group)} }, nodes.CodeSecurityGroupNotFound},
		{"subnet not found", func(in *nodes.Input) { in.SubnetID = "subnet-0123456789abcdef0" }, nodes.CodeSubnetNotFound},
		{"subnet of another vpc", func(in *nodes.Input) { in.SubnetID = otherSubnet }, nodes.CodeSubnetMismatch},
		{"ssh key unknown", func(in *nodes.Input) { in.SSHKeyID = ids.New(ids.SSHKey) }, "ssh_key_not_found"},
		{"disk too small", func(in *nodes.Input) { in.DiskGiB = 4 }, "validation_failed"},
		{"disk too large", func(in *nodes.Input) { in.DiskGiB = 4096 }, "validation_failed"},
		{"name empty", func(in *nodes.Input) { in.Name = "" }, "validation_failed"},
		{"name long", func(in *nodes.Input) { in.Name = strings.Repeat("n", 65) }, "validation_failed"},
		{"user data not base64", func(in *nodes.Input) { in.UserData = "%%%" }, "validation_failed"},
		{"user data too large", func(in *nodes.Input) {
			in.UserData = base64.StdEncoding.EncodeToString(make([]byte, 16<<10+1))
		}, "validation_failed"},
		{"image id and os", func(in *nodes.Input) { in.Image.OS = "ubuntu" }, "validation_failed"},
		{"no group", func(in *nodes.Input) { in.SecurityGroupIDs = nil }, "validation_failed"},
	}
	for i, c := range cases {
		in := e.input("web")
		c.edit(&in)
		_, err := e.svc.Create(e.ctx, admin("alice"), e.org, "req-"+c.name, in)
		if code(err) != c.code {
			t.Errorf("%d %s: %v, want %s", i, c.name, err, c.code)
		}
	}
	if live := e.tagged(); len(live) != 0 {
		t.Errorf("refusals launched %d instances", len(live))
	}
	if n := e.allNodes(); len(n) != 0 {
		t.Errorf("refusals stored nodes %+v", n)
	}
	// A subnet of the right VPC is used as asked.
	in := e.input("web")
	in.SubnetID = aws.ToString(e.subnets[len(e.subnets)-1].SubnetId)
	n, err := e.svc.Create(e.ctx, admin("alice"), e.org, "req-subnet", in)
	if err != nil || n.SubnetID != in.SubnetID {
		t.Errorf("subnet: %+v %v", n, err)
	}
}

// createLimit counts the caller's nodes that are not terminated or failed.
func TestCreateLimit(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	limited := withGrant("carol", tenancy.Grant{Create: true, Read: true, Update: true, Delete: true, CreateLimit: 2, ReadScope: tenancy.ScopeAll})
	var made []nodes.Node
	for i := range 2 {
		n, err := e.svc.Create(e.ctx, limited, e.org, "req-"+string(rune('a'+i)), e.input("web"))
		if err != nil {
			t.Fatal(err)
		}
		made = append(made, n)
	}
	_, err := e.svc.Create(e.ctx, limited, e.org, "req-c", e.input("web"))
	if code(err) != nodes.CodeCreateLimitReached {
		t.Fatalf("third: %v", err)
	}
	if fe, _ := asFault(err); fe == nil || fe.Extra["limit"] != 2 {
		t.Errorf("limit not in the problem: %+v", fe)
	}
	// Others are not counted against carol.
	if _, err := e.svc.Create(e.ctx, admin("alice"), e.org, "req-x", e.input("web")); err != nil {
		t.Fatal(err)
	}
	if _, err := e.svc.Delete(e.ctx, limited, e.org, made[0].ID); err != nil {
		t.Fatal(err)
	}
	if _, err := e.svc.Create(e.ctx, limited, e.org, "req-c", e.input("web")); err != nil {
		t.Fatalf("after a delete: %v", err)
	}
}

// readScope own: the caller sees only the nodes they created; another
// organisation's node is 404 for everyone.
func TestReadScope(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	own := withGrant("dave", tenancy.Grant{Create: true, Read: true, Update: true, Delete: true, ReadScope: tenancy.ScopeOwn})
	alices, err := e.svc.Create(e.ctx, admin("alice"), e.org, "req-a", e.input("alice-node"))
	if err != nil {
		t.Fatal(err)
	}
	daves, err := e.svc.Create(e.ctx, own, e.org, "req-d", e.input("dave-node"))
	if err != nil {
		t.Fatal(err)
	}
	list, _, err := e.svc.List(e.ctx, own, e.org, nodes.Filter{}, tenancy.Page{Limit: 50})
	if err != nil || len(list) != 1 || list[0].ID != daves.ID {
		t.Fatalf("own list %+v %v", list, err)
	}
	all, _, err := e.svc.List(e.ctx, admin("alice"), e.org, nodes.Filter{Environment: "production", AccountID: e.link.ID}, tenancy.Page{Limit: 50})
	if err != nil || len(all) != 2 {
		t.Fatalf("all list %+v %v", all, err)
	}
	if _, err := e.svc.Get(e.ctx, own, e.org, alices.ID); code(err) != nodes.CodeNotFound {
		t.Errorf("own scope, alice's node: %v", err)
	}
	if _, err := e.svc.Action(e.ctx, own, e.org, alices.ID, nodes.ActionStop); code(err) != nodes.CodeNotFound {
		t.Errorf("own scope, stop alice's node: %v", err)
	}
	if _, err := e.svc.Delete(e.ctx, own, e.org, alices.ID); code(err) != nodes.CodeNotFound {
		t.Errorf("own scope, delete alice's node: %v", err)
	}
	if _, err := e.svc.Get(e.ctx, admin("alice"), ids.New(ids.Org), alices.ID); code(err) != nodes.CodeNotFound {
		t.Errorf("other org: %v", err)
	}
	if _, err := e.svc.Get(e.ctx, admin("alice"), e.org, "wn_nope"); code(err) != nodes.CodeNotFound {
		t.Errorf("malformed id: %v", err)
	}
	if _, _, err := e.svc.List(e.ctx, admin("alice"), e.org, nodes.Filter{Status: "exploded"}, tenancy.Page{Limit: 5}); code(err) != "validation_failed" {
		t.Errorf("bad status filter: %v", err)
	}
}

// An OS (and version) resolves to the current official image through
// discovery.
func TestImageByOS(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	in := e.input("al")
	in.Image = nodes.ImageInput{OS: "amazon-linux", Version: "2023"}
	n, err := e.svc.Create(e.ctx, admin("alice"), e.org, "req-os", in)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(n.ImageID, "ami-") || n.OS != "amazon-linux" || n.Connection.Username != "ec2-user" {
		t.Errorf("node %+v", n)
	}
	in.Image = nodes.ImageInput{OS: "amazon-linux", Version: "2"}
	if _, err := e.svc.Create(e.ctx, admin("alice"), e.org, "req-os2", in); code(err) != nodes.CodeImageNotFound {
		t.Errorf("unsupported version: %v", err)
	}
}

func asFault(err error) (*fault.Error, bool) { return fault.As(err) }
