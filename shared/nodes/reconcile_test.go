package nodes_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"

	"github.com/dflow-sh/cloud-accounts/shared/awsperms"
	"github.com/dflow-sh/cloud-accounts/shared/fault"
	"github.com/dflow-sh/cloud-accounts/shared/ids"
	"github.com/dflow-sh/cloud-accounts/shared/nodes"
	"github.com/dflow-sh/cloud-accounts/shared/sdkfault"
)

// Each call of a launch fails in turn (EC2 and DynamoDB alike); after a
// Reconcile past the grace period, every instance tagged as a node is
// tracked by its node's record, no node is left in provisioning, and the
// usage items match the active nodes.
func TestFaultAtEachStep(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	caller := admin("alice")
	e.faults.Reset()
	if _, err := e.svc.Create(e.ctx, caller, e.org, "probe", e.input("probe")); err != nil {
		t.Fatal(err)
	}
	steps := sdkfault.Occurrences(e.faults.Calls())
	if len(steps) < 8 {
		t.Fatalf("a launch made only %v", steps)
	}
	for i, step := range steps {
		e.faults.Reset()
		e.faults.FailNth(step.Call, step.Nth, nil)
		_, err := e.svc.Create(e.ctx, caller, e.org, fmt.Sprintf("fault-%d", i), e.input(fmt.Sprintf("n-%d", i)))
		t.Logf("%s failed: Create answered %s", step, code(err))
	}
	e.faults.Reset()

	e.clock.Add(nodes.DefaultGrace)
	sum, err := e.svc.Reconcile(e.ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("reconcile: %+v", sum)
	if len(sum.Errors) != 0 || len(sum.Untracked) != 0 {
		t.Errorf("reconcile errors %+v untracked %+v", sum.Errors, sum.Untracked)
	}
	e.checkInvariants()
}

// checkInvariants: every live instance tagged as a node is its node's
// recorded instance, on an active node; no node is provisioning without an
// instance; the account's usage items are the active nodes'.
func (e *env) checkInvariants() {
	t := e.t
	t.Helper()
	records := e.allNodes()
	byInstance := map[string]nodes.Node{}
	active := map[string]bool{}
	for _, n := range records {
		if n.Status == nodes.Provisioning && n.InstanceID == "" {
			t.Errorf("node %s left provisioning with no instance: %+v", n.ID, n.LastError)
		}
		if n.InstanceID != "" {
			byInstance[n.InstanceID] = n
		}
		if n.Active() {
			active[n.ID] = true
		}
	}
	for id, inst := range e.tagged() {
		tag := ""
		for _, tg := range inst.Tags {
			if aws.ToString(tg.Key) == awsperms.NodeTagKey {
				tag = aws.ToString(tg.Value)
			}
		}
		n, ok := byInstance[id]
		switch {
		case !ok:
			t.Errorf("instance %s (node tag %s) is untracked", id, tag)
		case n.ID != tag || !n.Active():
			t.Errorf("instance %s tagged %s recorded on %s (%s)", id, tag, n.ID, n.Status)
		}
	}
	uses := e.linkUsage()
	if len(uses) != len(active) {
		t.Errorf("%d usage items for %d active nodes", len(uses), len(active))
	}
	for _, u := range uses {
		if !active[u.ID] {
			t.Errorf("usage item of inactive node %s", u.ID)
		}
	}
}

// launchRaw starts an instance as dFlow would tag it, behind the service's back.
func (e *env) launchRaw(nodeID string) string {
	e.t.Helper()
	tags := []types.Tag{
		{Key: aws.String(awsperms.ManagedTagKey), Value: aws.String("true")},
		{Key: aws.String(awsperms.OrgTagKey), Value: aws.String(e.org)},
		{Key: aws.String(awsperms.NodeTagKey), Value: aws.String(nodeID)},
	}
	out, err := e.raw.RunInstances(e.ctx, &ec2.RunInstancesInput{
		ImageId: aws.String(e.ami), InstanceType: types.InstanceTypeT3Micro, MinCount: aws.Int32(1), MaxCount: aws.Int32(1),
		TagSpecifications: []types.TagSpecification{{ResourceType: types.ResourceTypeInstance, Tags: tags}},
	})
	if err != nil {
		e.t.Fatal(err)
	}
	return aws.ToString(out.Instances[0].InstanceId)
}

func TestReconcile(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	caller := admin("alice")
	ok, err := e.svc.Create(e.ctx, caller, e.org, "ok", e.input("ok"))
	if err != nil {
		t.Fatal(err)
	}
	// Terminated outside dFlow.
	gone, err := e.svc.Create(e.ctx, caller, e.org, "gone", e.input("gone"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.raw.TerminateInstances(e.ctx, &ec2.TerminateInstancesInput{InstanceIds: []string{gone.InstanceID}}); err != nil {
		t.Fatal(err)
	}
	// A launch whose outcome is unknown, and that did not happen.
	e.faults.FailNth("EC2.RunInstances", 1, nil)
	lost, err := e.svc.Create(e.ctx, caller, e.org, "lost", e.input("lost"))
	e.faults.Reset()
	if err == nil {
		t.Fatal("lost: no error")
	}
	if n, _ := e.store.GetNode(e.ctx, e.org, lost.ID); n.Status != nodes.Provisioning || n.LastError == nil {
		t.Fatalf("lost node %+v", n)
	}
	// Failed for sure before its launch (the guard failed)… then its
	// instance turns up anyway (say, a launch by an older attempt).
	e.faults.FailNth("EC2.DescribeInstances", 1, nil)
	failed, err := e.svc.Create(e.ctx, caller, e.org, "failed", e.input("failed"))
	e.faults.Reset()
	if err == nil {
		t.Fatal("failed: no error")
	}
	if n, _ := e.store.GetNode(e.ctx, e.org, failed.ID); n.Status != nodes.Failed || n.LastError == nil {
		t.Fatalf("failed node %+v", n)
	}
	lateInstance := e.launchRaw(failed.ID)
	// Deleted while its launch was in flight: the launch lands after the
	// delete found no instance.
	e.faults.FailNth("EC2.RunInstances", 1, nil)
	deleted, _ := e.svc.Create(e.ctx, caller, e.org, "deleted", e.input("deleted"))
	e.faults.Reset()
	if n, err := e.svc.Delete(e.ctx, caller, e.org, deleted.ID); err != nil || n.Status != nodes.Terminated {
		t.Fatalf("delete before launch: %+v %v", n, err)
	}
	reapMe := e.launchRaw(deleted.ID)
	// dFlow-tagged, no record.
	foreign := e.launchRaw(ids.New(ids.Node))

	// Before the grace period, the lost launch is left alone.
	sum, err := e.svc.Reconcile(e.ctx)
	if err != nil {
		t.Fatal(err)
	}
	if sum.Failed != 0 {
		t.Errorf("failed before the grace: %+v", sum)
	}
	e.clock.Add(nodes.DefaultGrace + time.Second)
	sum2, err := e.svc.Reconcile(e.ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("first %+v\nsecond %+v", sum, sum2)
	if sum.Attached != 1 || sum.Reaped != 1 || sum2.Failed != 1 || len(sum.Errors) != 0 || len(sum2.Errors) != 0 {
		t.Errorf("summaries %+v / %+v", sum, sum2)
	}
	if len(sum.Untracked) != 1 || sum.Untracked[0].InstanceID != foreign || sum.Untracked[0].Reason != "no_record" {
		t.Errorf("untracked %+v", sum.Untracked)
	}
	get := func(id string) nodes.Node {
		n, err := e.svc.Get(e.ctx, caller, e.org, id)
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	if n := get(ok.ID); n.Status != nodes.Running {
		t.Errorf("ok %+v", n)
	}
	if n := get(gone.ID); n.Status != nodes.Terminated {
		t.Errorf("gone %+v", n)
	}
	if n := get(lost.ID); n.Status != nodes.Failed || n.LastError == nil || n.LastError.Code != nodes.CodeLaunchNotConfirmed {
		t.Errorf("lost %+v", n)
	}
	if n := get(failed.ID); n.Status != nodes.Running || n.InstanceID != lateInstance || n.LastError != nil {
		t.Errorf("failed then found %+v", n)
	}
	if _, live := e.tagged()[reapMe]; live {
		t.Error("the deleted node's instance still runs")
	}
	// The foreign instance is the only untracked one; it is left running.
	if _, err := e.raw.TerminateInstances(e.ctx, &ec2.TerminateInstancesInput{InstanceIds: []string{foreign}}); err != nil {
		t.Fatal(err)
	}
	e.checkInvariants()
}

// A sweep past its deadline stops and counts what it skipped.
func TestReconcileDeadline(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	if _, err := e.svc.Create(e.ctx, admin("alice"), e.org, "a", e.input("a")); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(e.ctx)
	cancel()
	_, err := e.svc.Reconcile(ctx)
	if err == nil {
		t.Fatal("a cancelled context read the index")
	}
}

// One account's failure is recorded on its nodes and the sweep goes on;
// the next good sweep clears it.
func TestReconcileRecordsFailures(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	caller := admin("alice")
	other := e.addLink([]string{"*"})
	otherGroup := e.addGroup(other.ID, region, e.defVPC, e.groups[e.groupID].AWSGroupID)
	good, err := e.svc.Create(e.ctx, caller, e.org, "good", e.input("good"))
	if err != nil {
		t.Fatal(err)
	}
	in := e.input("bad")
	in.AccountID, in.SecurityGroupIDs = other.ID, []string{otherGroup}
	bad, err := e.svc.Create(e.ctx, caller, e.org, "bad", in)
	if err != nil {
		t.Fatal(err)
	}
	e.accounts.failEC2(other.ID, fault.Unavailablef(5, "provider_throttled", "AWS is throttling"))
	sum, err := e.svc.Reconcile(e.ctx)
	if err != nil {
		t.Fatal(err)
	}
	if sum.Checked != 2 || len(sum.Errors) != 1 || sum.Errors[0].NodeID != bad.ID || sum.Errors[0].Code != "provider_throttled" {
		t.Fatalf("summary %+v", sum)
	}
	if n, _ := e.store.GetNode(e.ctx, e.org, good.ID); n.Status != nodes.Running || n.LastError != nil {
		t.Errorf("good %+v", n)
	}
	n, _ := e.store.GetNode(e.ctx, e.org, bad.ID)
	if n.LastError == nil || n.LastError.Code != nodes.CodeRefreshFailed || n.Status == nodes.Failed {
		t.Fatalf("bad %+v", n)
	}
	e.accounts.failEC2(other.ID, nil)
	if sum, err := e.svc.Reconcile(e.ctx); err != nil || len(sum.Errors) != 0 {
		t.Fatalf("second sweep %+v %v", sum, err)
	}
	if n, _ := e.store.GetNode(e.ctx, e.org, bad.ID); n.LastError != nil || n.Status != nodes.Running {
		t.Errorf("bad after recovery %+v", n)
	}
}
