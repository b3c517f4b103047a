package dynamo

import (
	"context"
	"encoding/json"
	"reflect"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"

	"github.com/dflow-sh/cloud-accounts/shared/api"
	"github.com/dflow-sh/cloud-accounts/shared/fault"
	"github.com/dflow-sh/cloud-accounts/shared/ids"
	"github.com/dflow-sh/cloud-accounts/shared/motoserver"
	"github.com/dflow-sh/cloud-accounts/shared/samtemplate"
	"github.com/dflow-sh/cloud-accounts/shared/tenancy"
)

func TestMain(m *testing.M) { motoserver.Main(m) }

func newStore(t *testing.T) (*Store, *dynamodb.Client) {
	t.Helper()
	client := dynamodb.NewFromConfig(motoserver.TestConfig(t))
	table := "test-" + strings.ReplaceAll(ids.New("t"), "_", "-")
	if err := EnsureTable(context.Background(), client, table); err != nil {
		t.Fatal(err)
	}
	return New(client, table), client
}

// The local API and the tests create the table from Go; the stack from
// template.yaml. They must describe the same table.
func TestSchemaMatchesTemplate(t *testing.T) {
	tpl, _, err := samtemplate.Find()
	if err != nil {
		t.Fatal(err)
	}
	props := tpl.Resources["AppTable"]["Properties"].(map[string]any)
	in := CreateTableInput("x")

	var attrs []string
	for _, a := range props["AttributeDefinitions"].([]any) {
		m := a.(map[string]any)
		attrs = append(attrs, m["AttributeName"].(string)+":"+m["AttributeType"].(string))
	}
	var goAttrs []string
	for _, a := range in.AttributeDefinitions {
		goAttrs = append(goAttrs, aws.ToString(a.AttributeName)+":"+string(a.AttributeType))
	}
	sort.Strings(attrs)
	sort.Strings(goAttrs)
	if !reflect.DeepEqual(attrs, goAttrs) {
		t.Errorf("attributes: template %v, Go %v", attrs, goAttrs)
	}
	keys := func(ks []any) string {
		var out []string
		for _, k := range ks {
			m := k.(map[string]any)
			out = append(out, m["AttributeName"].(string)+":"+m["KeyType"].(string))
		}
		return strings.Join(out, ",")
	}
	goKeys := func(n string) string {
		var out []string
		for _, k := range in.KeySchema {
			if n == "" {
				out = append(out, aws.ToString(k.AttributeName)+":"+string(k.KeyType))
			}
		}
		for _, g := range in.GlobalSecondaryIndexes {
			if aws.ToString(g.IndexName) == n {
				for _, k := range g.KeySchema {
					out = append(out, aws.ToString(k.AttributeName)+":"+string(k.KeyType))
				}
			}
		}
		return strings.Join(out, ",")
	}
	if got, want := keys(props["KeySchema"].([]any)), goKeys(""); got != want {
		t.Errorf("key schema: template %s, Go %s", got, want)
	}
	gsis := props["GlobalSecondaryIndexes"].([]any)
	if len(gsis) != len(in.GlobalSecondaryIndexes) {
		t.Fatalf("template has %d indexes, Go %d", len(gsis), len(in.GlobalSecondaryIndexes))
	}
	for _, g := range gsis {
		m := g.(map[string]any)
		name := m["IndexName"].(string)
		if got, want := keys(m["KeySchema"].([]any)), goKeys(name); got != want {
			t.Errorf("index %s: template %s, Go %s", name, got, want)
		}
	}
	ttl := props["TimeToLiveSpecification"].(map[string]any)
	if ttl["AttributeName"] != attrExpires || ttl["Enabled"] != true {
		t.Errorf("ttl = %v", ttl)
	}
}

func TestIdempotencyRecords(t *testing.T) {
	store, _ := newStore(t)
	now := time.Now()
	clock := func() time.Time { return now }
	idem := NewIdempotency(store, clock)
	ctx := context.Background()
	k := api.IdempotencyKey{OrgID: "org_x", UserID: "alice", Key: "key-1"}

	if resp, err := idem.Begin(ctx, k, "fp-1", time.Minute); err != nil || resp != nil {
		t.Fatalf("first claim: %v %v", resp, err)
	}
	if _, err := idem.Begin(ctx, k, "fp-1", time.Minute); err != api.ErrInProgress {
		t.Fatalf("second claim while pending: %v", err)
	}
	if _, err := idem.Begin(ctx, k, "fp-2", time.Minute); err != api.ErrKeyReused {
		t.Fatalf("other request, same key: %v", err)
	}
	want := api.StoredResponse{Status: 201, Header: map[string]string{"Location": "/v1/orgs/x"}, Body: `{"id":"x"}`}
	if err := idem.Finish(ctx, k, want); err != nil {
		t.Fatal(err)
	}
	got, err := idem.Begin(ctx, k, "fp-1", time.Minute)
	if err != nil || !reflect.DeepEqual(*got, want) {
		t.Fatalf("replay = %+v %v", got, err)
	}
	// Keys are scoped: the same key of another user is free.
	if resp, err := idem.Begin(ctx, api.IdempotencyKey{OrgID: "org_x", UserID: "bob", Key: "key-1"}, "fp-1", time.Minute); err != nil || resp != nil {
		t.Fatalf("bob's key: %v %v", resp, err)
	}
	// Kept at least 24 hours; after expiry (TTL deletes late) it is free again.
	now = now.Add(24 * time.Hour)
	if got, err := idem.Begin(ctx, k, "fp-1", time.Minute); err != nil || got == nil {
		t.Fatalf("after 24h: %v %v", got, err)
	}
	now = now.Add(2 * time.Hour)
	if resp, err := idem.Begin(ctx, k, "fp-2", time.Minute); err != nil || resp != nil {
		t.Fatalf("after expiry: %v %v", resp, err)
	}
	// A pending claim whose request died is taken over after its lease.
	k2 := api.IdempotencyKey{OrgID: "-", UserID: "alice", Key: "key-2"}
	if _, err := idem.Begin(ctx, k2, "fp", time.Minute); err != nil {
		t.Fatal(err)
	}
	now = now.Add(2 * time.Minute)
	if resp, err := idem.Begin(ctx, k2, "fp", time.Minute); err != nil || resp != nil {
		t.Fatalf("after the lease: %v %v", resp, err)
	}
	// Abandon frees a pending claim.
	if err := idem.Abandon(ctx, k2); err != nil {
		t.Fatal(err)
	}
	if resp, err := idem.Begin(ctx, k2, "fp-other", time.Minute); err != nil || resp != nil {
		t.Fatalf("after abandon: %v %v", resp, err)
	}
}

func TestCursorCannotLeaveThePartition(t *testing.T) {
	store, _ := newStore(t)
	ctx := context.Background()
	svc := tenancy.NewService(store, nil)
	a, err := svc.CreateOrg(ctx, "alice", "A")
	if err != nil {
		t.Fatal(err)
	}
	b, err := svc.CreateOrg(ctx, "bob", "B")
	if err != nil {
		t.Fatal(err)
	}
	_, next, err := store.ListRoles(ctx, b.ID, tenancy.Page{Limit: 1})
	if err != nil || next == "" {
		t.Fatalf("page of b: %q %v", next, err)
	}
	// B's position used on A's list is refused, even with a valid seal.
	if _, _, err := store.ListRoles(ctx, a.ID, tenancy.Page{Limit: 10, After: next}); fault.KindOf(err) != fault.Invalid {
		t.Fatalf("foreign position: %v", err)
	}
	forged, _ := json.Marshal(map[string]string{"PK": orgPK(b.ID), "SK": "ROLE#"})
	if _, _, err := store.ListRoles(ctx, a.ID, tenancy.Page{Limit: 10, After: string(forged)}); fault.KindOf(err) != fault.Invalid {
		t.Fatalf("forged position: %v", err)
	}
}

// A transaction is all or nothing: when one condition fails, no item of it
// is written.
func TestCreateOrgIsAtomic(t *testing.T) {
	store, client := newStore(t)
	ctx := context.Background()
	now := time.Now()
	org := tenancy.Org{ID: ids.New(ids.Org), Name: "A", Version: 1, CreatedAt: now, UpdatedAt: now}
	owner := tenancy.Member{OrgID: org.ID, UserID: "alice", RoleID: tenancy.AdminRoleID, Version: 1}
	// The owner's membership exists already: the last put of the transaction fails.
	if err := store.AddMember(ctx, owner); err == nil {
		t.Fatal("adding a member to a role that does not exist succeeded")
	}
	mi, err := store.memberItem(owner)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := client.PutItem(ctx, &dynamodb.PutItemInput{TableName: &store.table, Item: mi}); err != nil {
		t.Fatal(err)
	}
	err = store.CreateOrg(ctx, org, tenancy.BuiltinRoles(org.ID, now), owner)
	if err == nil {
		t.Fatal("CreateOrg succeeded over an existing member")
	}
	if _, err := store.GetOrg(ctx, org.ID); fault.KindOf(err) != fault.NotFound {
		t.Fatalf("org written anyway: %v", err)
	}
	if _, err := store.GetRole(ctx, org.ID, tenancy.AdminRoleID); fault.KindOf(err) != fault.NotFound {
		t.Fatalf("role written anyway: %v", err)
	}
}

func TestCache(t *testing.T) {
	store, _ := newStore(t)
	now := time.Now()
	c := NewCache(store, func() time.Time { return now })
	ctx := context.Background()
	var out []string
	if _, ok, err := c.Get(ctx, "acc_1", "eu-west-1#vpcs", &out); ok || err != nil {
		t.Fatalf("empty cache: %v %v", ok, err)
	}
	if err := c.Put(ctx, "acc_1", "eu-west-1#vpcs", []string{"vpc-1"}, 5*time.Minute); err != nil {
		t.Fatal(err)
	}
	at, ok, err := c.Get(ctx, "acc_1", "eu-west-1#vpcs", &out)
	if !ok || err != nil || len(out) != 1 || out[0] != "vpc-1" || !at.Equal(now) {
		t.Fatalf("hit: %v %v %v %v", ok, err, out, at)
	}
	// Per link.
	if _, ok, _ := c.Get(ctx, "acc_2", "eu-west-1#vpcs", &out); ok {
		t.Fatal("another link's entry")
	}
	// Expired entries are misses even before TTL deletes them.
	now = now.Add(6 * time.Minute)
	if _, ok, _ := c.Get(ctx, "acc_1", "eu-west-1#vpcs", &out); ok {
		t.Fatal("expired entry served")
	}
}
