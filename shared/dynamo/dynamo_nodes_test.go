package dynamo

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/dflow-sh/cloud-accounts/shared/fault"
	"github.com/dflow-sh/cloud-accounts/shared/ids"
	"github.com/dflow-sh/cloud-accounts/shared/links"
	"github.com/dflow-sh/cloud-accounts/shared/nodes"
	"github.com/dflow-sh/cloud-accounts/shared/tenancy"
)

type nodeFixture struct {
	t      *testing.T
	ctx    context.Context
	store  *Store
	client *dynamodb.Client
	org    string
	acc    string
	groups []string
}

func newNodeFixture(t *testing.T) *nodeFixture {
	t.Helper()
	store, client := newStore(t)
	f := &nodeFixture{t: t, ctx: context.Background(), store: store, client: client, org: ids.New(ids.Org), acc: ids.New(ids.Account)}
	l := links.Link{OrgID: f.org, ID: f.acc, Name: "a", Provider: "aws", Environments: []string{"*"}, Version: 1}
	if err := store.CreateLink(f.ctx, l, links.Record{SecretName: "s", CredKey: "k"}); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		g := ids.New(ids.Group)
		f.putRaw(map[string]types.AttributeValue{attrPK: str(orgPK(f.org)), attrSK: str(groupSK(g)), "type": str("securityGroup")})
		f.groups = append(f.groups, g)
	}
	return f
}

func (f *nodeFixture) putRaw(item map[string]types.AttributeValue) {
	f.t.Helper()
	if _, err := f.client.PutItem(f.ctx, &dynamodb.PutItemInput{TableName: &f.store.table, Item: item}); err != nil {
		f.t.Fatal(err)
	}
}

func (f *nodeFixture) node(user string) nodes.Node {
	now := time.Now().UTC()
	return nodes.Node{
		OrgID: f.org, ID: ids.New(ids.Node), Name: "n", Environment: "production", AccountID: f.acc, Region: "us-east-1",
		InstanceType: "t3.micro", ImageID: "ami-0123456789abcdef0", SecurityGroupIDs: slices.Clone(f.groups), DiskGiB: 20,
		SSHKeyID: ids.New(ids.SSHKey), Status: nodes.Provisioning, Version: 1, CreatedAt: now, CreatedBy: user, UpdatedAt: now,
	}
}

func (f *nodeFixture) count(user string) int {
	f.t.Helper()
	var it struct {
		Active int `json:"active"`
	}
	err := f.store.get(f.ctx, orgPK(f.org), nodeCountSK(user), &it, nodes.ErrNotFound)
	if err != nil && err != nodes.ErrNotFound {
		f.t.Fatal(err)
	}
	return it.Active
}

func (f *nodeFixture) active() []string {
	f.t.Helper()
	all, err := f.store.ActiveNodes(f.ctx)
	if err != nil {
		f.t.Fatal(err)
	}
	var out []string
	for _, n := range all {
		if n.OrgID == f.org {
			out = append(out, n.ID)
		}
	}
	slices.Sort(out)
	return out
}

// usage says how many account usage items and group use items exist.
func (f *nodeFixture) usage() (int, int) {
	f.t.Helper()
	u, err := f.store.LinkUsage(f.ctx, f.org, f.acc)
	if err != nil {
		f.t.Fatal(err)
	}
	g := 0
	for _, id := range f.groups {
		users, err := f.store.SecurityGroupUsers(f.ctx, f.org, id)
		if err != nil {
			f.t.Fatal(err)
		}
		g += len(users)
	}
	return len(u), g
}

func TestNodeItems(t *testing.T) {
	f := newNodeFixture(t)
	a := f.node("alice")
	if err := f.store.CreateNode(f.ctx, a, 2); err != nil {
		t.Fatal(err)
	}
	got, err := f.store.GetNode(f.ctx, f.org, a.ID)
	if err != nil || got.OrgID != f.org || got.ID != a.ID || !slices.Equal(got.SecurityGroupIDs, f.groups) || got.Version != 1 {
		t.Fatalf("get %+v %v", got, err)
	}
	if u, g := f.usage(); u != 1 || g != 2 || f.count("alice") != 1 || !slices.Equal(f.active(), []string{a.ID}) {
		t.Fatalf("after create: usage %d groups %d count %d active %v", u, g, f.count("alice"), f.active())
	}
	uses, _ := f.store.LinkUsage(f.ctx, f.org, f.acc)
	if uses[0] != (links.Usage{Kind: nodes.UsageKind, ID: a.ID}) {
		t.Errorf("usage %+v", uses)
	}

	// Refusals: same id, the limit, an account or group gone.
	if err := f.store.CreateNode(f.ctx, a, 0); !fault.Is(err, nodes.CodeExists) {
		t.Errorf("same id: %v", err)
	}
	b := f.node("alice")
	if err := f.store.CreateNode(f.ctx, b, 1); !fault.Is(err, nodes.CodeCreateLimitReached) {
		t.Errorf("limit: %v", err)
	}
	c := f.node("bob")
	c.AccountID = ids.New(ids.Account)
	if err := f.store.CreateNode(f.ctx, c, 0); !fault.Is(err, "account_not_found") {
		t.Errorf("account gone: %v", err)
	}
	c = f.node("bob")
	c.SecurityGroupIDs = []string{ids.New(ids.Group)}
	if err := f.store.CreateNode(f.ctx, c, 0); !fault.Is(err, ErrGroupUnusable.Code) {
		t.Errorf("group gone: %v", err)
	}
	if u, g := f.usage(); u != 1 || g != 2 || f.count("bob") != 0 {
		t.Fatalf("refusals left items: %d %d %d", u, g, f.count("bob"))
	}

	// Running, then a stale write, then terminated: everything released.
	run := got
	run.Status, run.InstanceID, run.Version = nodes.Running, "i-0123456789abcdef0", 2
	if err := f.store.UpdateNode(f.ctx, run, got); err != nil {
		t.Fatal(err)
	}
	if err := f.store.UpdateNode(f.ctx, run, got); !fault.Is(err, nodes.ErrConcurrent.Code) {
		t.Errorf("stale: %v", err)
	}
	term := run
	term.Status, term.Version = nodes.Terminated, 3
	if err := f.store.UpdateNode(f.ctx, term, run); err != nil {
		t.Fatal(err)
	}
	if u, g := f.usage(); u != 0 || g != 0 || f.count("alice") != 0 || len(f.active()) != 0 {
		t.Fatalf("after terminate: usage %d groups %d count %d active %v", u, g, f.count("alice"), f.active())
	}
	// Under the limit again.
	if err := f.store.CreateNode(f.ctx, b, 1); err != nil {
		t.Fatalf("after terminate, limit 1: %v", err)
	}

	// A failed node whose instance turns up takes its items back.
	failed := b
	failed.Status, failed.Version = nodes.Failed, 2
	if err := f.store.UpdateNode(f.ctx, failed, b); err != nil {
		t.Fatal(err)
	}
	if u, g := f.usage(); u != 0 || g != 0 || f.count("alice") != 0 {
		t.Fatalf("after fail: %d %d %d", u, g, f.count("alice"))
	}
	back := failed
	back.Status, back.InstanceID, back.Version = nodes.Running, "i-0fedcba9876543210", 3
	if err := f.store.UpdateNode(f.ctx, back, failed); err != nil {
		t.Fatal(err)
	}
	if u, g := f.usage(); u != 1 || g != 2 || f.count("alice") != 1 || !slices.Equal(f.active(), []string{b.ID}) {
		t.Fatalf("after attach: %d %d %d %v", u, g, f.count("alice"), f.active())
	}
}

func TestListNodes(t *testing.T) {
	f := newNodeFixture(t)
	var made []nodes.Node
	for i, user := range []string{"alice", "bob", "alice"} {
		n := f.node(user)
		if i == 2 {
			n.Environment = "staging"
		}
		if err := f.store.CreateNode(f.ctx, n, 0); err != nil {
			t.Fatal(err)
		}
		made = append(made, n)
	}
	list := func(fl nodes.Filter) int {
		t.Helper()
		total, after := 0, ""
		for {
			page, next, err := f.store.ListNodes(f.ctx, f.org, fl, tenancy.Page{Limit: 1, After: after})
			if err != nil {
				t.Fatal(err)
			}
			total += len(page)
			if next == "" {
				return total
			}
			after = next
		}
	}
	cases := []struct {
		f    nodes.Filter
		want int
	}{
		{nodes.Filter{}, 3},
		{nodes.Filter{CreatedBy: "alice"}, 2},
		{nodes.Filter{CreatedBy: "alice", Environment: "staging"}, 1},
		{nodes.Filter{AccountID: f.acc, Status: nodes.Provisioning}, 3},
		{nodes.Filter{Status: nodes.Running}, 0},
	}
	for _, c := range cases {
		if got := list(c.f); got != c.want {
			t.Errorf("%+v: %d, want %d", c.f, got, c.want)
		}
	}
	// A cursor only pages through the organisation it came from.
	if _, _, err := f.store.ListNodes(f.ctx, ids.New(ids.Org), nodes.Filter{}, tenancy.Page{Limit: 5, After: `{"PK":"ORG#` + f.org + `","SK":"NODE#x"}`}); err == nil {
		t.Error("a cursor of another organisation was accepted")
	}
	if _, err := f.store.GetNode(f.ctx, ids.New(ids.Org), made[0].ID); !fault.Is(err, nodes.CodeNotFound) {
		t.Errorf("other org: %v", err)
	}
}
