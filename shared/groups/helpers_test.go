package groups_test

import (
	"context"
	"encoding/json"
	"fmt"
	mrand "math/rand/v2"
	"reflect"
	"strings"
	"sync"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	ddbtypes "github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"

	"github.com/dflow-sh/cloud-accounts/shared/dynamo"
	"github.com/dflow-sh/cloud-accounts/shared/fault"
	"github.com/dflow-sh/cloud-accounts/shared/groups"
	"github.com/dflow-sh/cloud-accounts/shared/ids"
	"github.com/dflow-sh/cloud-accounts/shared/links"
	"github.com/dflow-sh/cloud-accounts/shared/motoserver"
	"github.com/dflow-sh/cloud-accounts/shared/sdkfault"
	"github.com/dflow-sh/cloud-accounts/shared/sgrules"
	"github.com/dflow-sh/cloud-accounts/shared/tenancy"
)

func TestMain(m *testing.M) { motoserver.Main(m) }

const region = "us-east-1"

// env is a group service over a fresh table, with one linked account (a moto
// account of the test's own). Every AWS call, EC2 and DynamoDB, passes
// through faults.
type env struct {
	t      *testing.T
	org    string
	link   links.Link
	store  *dynamo.Store
	db     *dynamodb.Client
	table  string
	svc    *groups.Service
	faults *sdkfault.Faults
	accts  *accounts
	caller tenancy.Caller
}

type accounts struct {
	t      *testing.T
	faults *sdkfault.Faults
	links  map[string]links.Link
	// wrap, when set, stands in front of the moto client (fakes of what
	// moto does not model).
	wrap func(groups.EC2API) groups.EC2API

	mu      sync.Mutex
	clients map[string]*ec2.Client
}

func (a *accounts) Link(_ context.Context, orgID, id string) (links.Link, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	l, ok := a.links[id]
	if !ok || l.OrgID != orgID {
		return links.Link{}, fault.NotFoundf("account_not_found", "no such linked account")
	}
	return l, nil
}

func (a *accounts) EC2(_ context.Context, l links.Link, r string) (groups.EC2API, error) {
	c := a.client(l, r)
	if a.wrap != nil {
		return a.wrap(c), nil
	}
	return c, nil
}

func (a *accounts) client(l links.Link, r string) *ec2.Client {
	a.mu.Lock()
	defer a.mu.Unlock()
	k := l.ID + "/" + r
	if c, ok := a.clients[k]; ok {
		return c
	}
	cfg, err := motoserver.Shared(a.t).Config(context.Background(), r)
	if err != nil {
		a.t.Fatal(err)
	}
	cfg.APIOptions = append(cfg.APIOptions, sdkfault.MotoAccount(l.AWSAccountID))
	c := ec2.NewFromConfig(a.faults.Attach(cfg))
	a.clients[k] = c
	return c
}

func newEnv(t *testing.T) *env {
	t.Helper()
	ctx := context.Background()
	faults := &sdkfault.Faults{}
	cfg := motoserver.TestConfig(t)
	table := "test-" + strings.ReplaceAll(ids.New("t"), "_", "-")
	db := dynamodb.NewFromConfig(cfg)
	if err := dynamo.EnsureTable(ctx, db, table); err != nil {
		t.Fatal(err)
	}
	store := dynamo.New(dynamodb.NewFromConfig(faults.Attach(cfg)), table)
	org := ids.New(ids.Org)
	link := links.Link{
		OrgID: org, ID: ids.New(ids.Account), Name: "prod", Partition: "aws",
		AWSAccountID: fmt.Sprintf("%012d", 100000000000+mrand.Int64N(800000000000)),
	}
	// The group's write checks that its account is linked.
	if err := dynamo.New(db, table).CreateLink(ctx, link, links.Record{SecretName: "s", CredKey: "key-" + link.ID}); err != nil {
		t.Fatal(err)
	}
	accts := &accounts{t: t, faults: faults, links: map[string]links.Link{link.ID: link}, clients: map[string]*ec2.Client{}}
	return &env{
		t: t, org: org, link: link, store: store, db: db, table: table, faults: faults, accts: accts,
		svc:    groups.NewService(store, accts, nil, nil),
		caller: tenancy.Caller{UserID: "user-1"},
	}
}

func (e *env) ec2(r string) *ec2.Client { return e.accts.client(e.link, r) }

func ptr[T any](v T) *T { return &v }

// rules decodes a JSON rule list as the API would.
func rules(t *testing.T, s string) []sgrules.RuleInput {
	t.Helper()
	var in []sgrules.RuleInput
	if err := json.Unmarshal([]byte(s), &in); err != nil {
		t.Fatal(err)
	}
	if in == nil {
		in = []sgrules.RuleInput{}
	}
	return in
}

func (e *env) input(name, inbound string, outbound *string) groups.Input {
	in := groups.Input{
		Name: &name, AccountID: &e.link.ID, Region: ptr(region),
		InboundRules: rules(e.t, inbound),
	}
	if outbound != nil {
		in.OutboundRules = rules(e.t, *outbound)
	}
	return in
}

func (e *env) create(in groups.Input) groups.Group {
	e.t.Helper()
	g, err := e.svc.Create(context.Background(), e.caller, e.org, "req-1", in)
	if err != nil {
		e.t.Fatalf("create %s: %v", *in.Name, err)
	}
	return g
}

// awsRules reads a group's rules from EC2.
func (e *env) awsRules(awsGroupID string) sgrules.Rules {
	e.t.Helper()
	out, err := e.ec2(region).DescribeSecurityGroupRules(context.Background(), &ec2.DescribeSecurityGroupRulesInput{
		Filters: []types.Filter{{Name: aws.String("group-id"), Values: []string{awsGroupID}}},
	})
	if err != nil {
		e.t.Fatal(err)
	}
	return sgrules.FromSecurityGroupRules(out.SecurityGroupRules)
}

// tagged lists the AWS groups tagged as dFlow group id.
func (e *env) tagged(id string) []types.SecurityGroup {
	e.t.Helper()
	out, err := e.ec2(region).DescribeSecurityGroups(context.Background(), &ec2.DescribeSecurityGroupsInput{
		Filters: []types.Filter{{Name: aws.String("tag:" + groups.GroupTagKey), Values: []string{id}}},
	})
	if err != nil {
		e.t.Fatal(err)
	}
	return out.SecurityGroups
}

// count is how many times call was made since the faults were last reset.
func (e *env) count(call string) int {
	n := 0
	for _, c := range e.faults.Calls() {
		if c == call {
			n++
		}
	}
	return n
}

// ec2Calls lists the EC2 calls made since the last reset.
func (e *env) ec2Calls() []string {
	var out []string
	for _, c := range e.faults.Calls() {
		if strings.HasPrefix(c, "EC2.") {
			out = append(out, c)
		}
	}
	return out
}

// useGroup writes the item a worker node writes when it uses a group.
func (e *env) useGroup(groupID, nodeID string) {
	e.t.Helper()
	_, err := e.db.PutItem(context.Background(), &dynamodb.PutItemInput{TableName: &e.table, Item: map[string]ddbtypes.AttributeValue{
		"PK": &ddbtypes.AttributeValueMemberS{Value: "ORG#" + e.org}, "SK": &ddbtypes.AttributeValueMemberS{Value: dynamo.GroupUseSK(groupID, nodeID)},
		"nodeId": &ddbtypes.AttributeValueMemberS{Value: nodeID},
	}})
	if err != nil {
		e.t.Fatal(err)
	}
}

func (e *env) unuseGroup(groupID, nodeID string) {
	e.t.Helper()
	_, err := e.db.DeleteItem(context.Background(), &dynamodb.DeleteItemInput{TableName: &e.table, Key: map[string]ddbtypes.AttributeValue{
		"PK": &ddbtypes.AttributeValueMemberS{Value: "ORG#" + e.org}, "SK": &ddbtypes.AttributeValueMemberS{Value: dynamo.GroupUseSK(groupID, nodeID)},
	}})
	if err != nil {
		e.t.Fatal(err)
	}
}

func sorted(r sgrules.Rules) sgrules.Rules {
	in, out := append([]sgrules.Rule{}, r.Inbound...), append([]sgrules.Rule{}, r.Outbound...)
	sgrules.Sort(in)
	sgrules.Sort(out)
	return sgrules.Rules{Inbound: in, Outbound: out}
}

// assertAWSHolds checks EC2 holds exactly g's rules.
func (e *env) assertAWSHolds(g groups.Group) {
	e.t.Helper()
	got := e.awsRules(g.AWSGroupID)
	want := sorted(g.Rules())
	if len(got.Inbound) == 0 && len(want.Inbound) == 0 {
		got.Inbound, want.Inbound = nil, nil
	}
	if len(got.Outbound) == 0 && len(want.Outbound) == 0 {
		got.Outbound, want.Outbound = nil, nil
	}
	if !reflect.DeepEqual(got, want) {
		e.t.Errorf("EC2 holds %+v\nwant %+v", got, want)
	}
}
