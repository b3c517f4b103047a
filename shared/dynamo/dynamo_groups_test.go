package dynamo

import (
	"context"
	"reflect"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/dflow-sh/cloud-accounts/shared/fault"
	"github.com/dflow-sh/cloud-accounts/shared/groups"
	"github.com/dflow-sh/cloud-accounts/shared/ids"
	"github.com/dflow-sh/cloud-accounts/shared/links"
	"github.com/dflow-sh/cloud-accounts/shared/sgrules"
	"github.com/dflow-sh/cloud-accounts/shared/tenancy"
)

func TestSecurityGroupStore(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s, _ := newStore(t)
	org := ids.New(ids.Org)
	link := links.Link{OrgID: org, ID: ids.New(ids.Account), Name: "prod"}
	if err := s.CreateLink(ctx, link, links.Record{SecretName: "s", CredKey: "c"}); err != nil {
		t.Fatal(err)
	}
	now := time.Now().UTC().Truncate(time.Millisecond)
	g := groups.Group{
		OrgID: org, ID: ids.New(ids.Group), Name: "Web", Description: "d",
		AccountID: link.ID, Region: "eu-west-1", VPCID: "vpc-0123456789abcdef0",
		InboundRules:  []sgrules.Rule{{Protocol: "tcp", FromPort: 22, ToPort: 22, CIDRv4: "10.0.0.0/8", Description: "ssh"}},
		OutboundRules: []sgrules.Rule{},
		Status:        groups.StatusPending, Warnings: []sgrules.Warning{{Code: "x"}},
		Version: 1, CreatedAt: now, CreatedBy: "u", UpdatedAt: now,
	}
	if err := s.CreateSecurityGroup(ctx, g); err != nil {
		t.Fatal(err)
	}
	twin := g
	twin.ID, twin.Name = ids.New(ids.Group), "WEB"
	if err := s.CreateSecurityGroup(ctx, twin); !fault.Is(err, groups.CodeNameTaken) {
		t.Errorf("name taken: %v", err)
	}
	twin.VPCID = "vpc-0123456789abcdef1"
	if err := s.CreateSecurityGroup(ctx, twin); err != nil {
		t.Errorf("same name in another VPC: %v", err)
	}
	orphan := g
	orphan.ID, orphan.Name, orphan.AccountID = ids.New(ids.Group), "orphan", ids.New(ids.Account)
	if err := s.CreateSecurityGroup(ctx, orphan); !fault.Is(err, "account_not_found") {
		t.Errorf("group of an unlinked account: %v", err)
	}

	uses, err := s.LinkUsage(ctx, org, link.ID)
	if err != nil || len(uses) != 2 || uses[0].Kind != UsageKindSecurityGroup {
		t.Errorf("usage %+v %v", uses, err)
	}
	got, err := s.GetSecurityGroup(ctx, org, g.ID)
	want := g
	want.Warnings = nil
	if err != nil || !reflect.DeepEqual(got, want) {
		t.Errorf("get %+v %v\nwant %+v", got, err, want)
	}

	// AWS id: recorded whatever the version, never overwritten by another.
	if err := s.SetSecurityGroupAWSID(ctx, org, g.ID, "sg-0aaaaaaaaaaaaaaaa", ""); err != nil {
		t.Fatal(err)
	}
	if err := s.SetSecurityGroupAWSID(ctx, org, g.ID, "sg-0aaaaaaaaaaaaaaaa", ""); err != nil {
		t.Errorf("recording the same id again: %v", err)
	}
	if err := s.SetSecurityGroupAWSID(ctx, org, g.ID, "sg-0bbbbbbbbbbbbbbbb", ""); !fault.Is(err, "concurrent_update") {
		t.Errorf("overwriting another id: %v", err)
	}
	if err := s.SetSecurityGroupAWSID(ctx, org, g.ID, "sg-0bbbbbbbbbbbbbbbb", "sg-0aaaaaaaaaaaaaaaa"); err != nil {
		t.Errorf("replacing a recreated group: %v", err)
	}

	g.Status, g.LastError = groups.StatusFailed, &groups.Error{Code: "c", Message: "m", At: now}
	if err := s.SetSecurityGroupStatus(ctx, g); err != nil {
		t.Fatal(err)
	}
	prev := g
	g.Name, g.Version, g.Status, g.LastError = "web2", 2, groups.StatusInSync, nil
	g.InboundRules = nil
	if err := s.UpdateSecurityGroup(ctx, g, prev); err != nil {
		t.Fatal(err)
	}
	if err := s.UpdateSecurityGroup(ctx, g, prev); !fault.Is(err, "concurrent_update") {
		t.Errorf("update from a stale version: %v", err)
	}
	if err := s.SetSecurityGroupStatus(ctx, prev); !fault.Is(err, "concurrent_update") {
		t.Errorf("status of a stale version: %v", err)
	}
	got, _ = s.GetSecurityGroup(ctx, org, g.ID)
	if got.Name != "web2" || got.LastError != nil || got.Status != groups.StatusInSync || got.AWSGroupID != "sg-0bbbbbbbbbbbbbbbb" || len(got.InboundRules) != 0 {
		t.Errorf("after update %+v", got)
	}
	// The old name is free, the new one taken.
	free := prev
	free.ID = ids.New(ids.Group)
	if err := s.CreateSecurityGroup(ctx, free); err != nil {
		t.Errorf("old name not released: %v", err)
	}

	list, _, err := s.ListSecurityGroups(ctx, org, groups.Filter{Region: "eu-west-1", AccountID: link.ID}, tenancy.Page{Limit: 10})
	if err != nil || len(list) != 3 {
		t.Errorf("list %d %v", len(list), err)
	}
	list, _, err = s.ListSecurityGroups(ctx, org, groups.Filter{Region: "us-east-1"}, tenancy.Page{Limit: 10})
	if err != nil || len(list) != 0 {
		t.Errorf("list other region %d %v", len(list), err)
	}

	// Nodes claim the use of a group in their own transaction.
	use := func(nodeID string) error {
		check, put := GroupUseItems(org, g.ID, nodeID)
		return s.transact(ctx, "use group", []types.TransactWriteItem{check, put}, map[int]error{0: ErrGroupUnusable})
	}
	if err := use("wn_1"); err != nil {
		t.Fatal(err)
	}
	if users, err := s.SecurityGroupUsers(ctx, org, g.ID); err != nil || !reflect.DeepEqual(users, []string{"wn_1"}) {
		t.Errorf("users %v %v", users, err)
	}
	if err := s.SetSecurityGroupDeleting(ctx, g, true); err != nil {
		t.Fatal(err)
	}
	if err := use("wn_2"); err != ErrGroupUnusable {
		t.Errorf("use of a group being deleted: %v", err)
	}
	if err := s.SetSecurityGroupDeleting(ctx, g, false); err != nil {
		t.Fatal(err)
	}
	if err := use("wn_2"); err != nil {
		t.Errorf("use after unmark: %v", err)
	}
	for _, n := range []string{"wn_1", "wn_2"} {
		if err := s.transact(ctx, "unuse", []types.TransactWriteItem{GroupUnuseItem(org, g.ID, n)}, nil); err != nil {
			t.Fatal(err)
		}
	}
	if users, _ := s.SecurityGroupUsers(ctx, org, g.ID); len(users) != 0 {
		t.Errorf("users after unuse %v", users)
	}

	if err := s.DeleteSecurityGroup(ctx, prev); !fault.Is(err, "concurrent_update") {
		t.Errorf("delete at a stale version: %v", err)
	}
	if err := s.DeleteSecurityGroup(ctx, g); err != nil {
		t.Fatal(err)
	}
	if _, err := s.GetSecurityGroup(ctx, org, g.ID); !fault.Is(err, groups.CodeNotFound) {
		t.Errorf("get after delete: %v", err)
	}
	if err := use("wn_3"); err != ErrGroupUnusable {
		t.Errorf("use of a deleted group: %v", err)
	}
	if uses, _ := s.LinkUsage(ctx, org, link.ID); len(uses) != 2 {
		t.Errorf("usage after delete %+v", uses)
	}
}
