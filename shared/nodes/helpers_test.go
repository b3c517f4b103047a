package nodes_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"encoding/binary"
	"fmt"
	mrand "math/rand/v2"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	ddbtypes "github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"

	"github.com/dflow-sh/cloud-accounts/shared/awsperms"
	"github.com/dflow-sh/cloud-accounts/shared/discovery"
	"github.com/dflow-sh/cloud-accounts/shared/dynamo"
	"github.com/dflow-sh/cloud-accounts/shared/fault"
	"github.com/dflow-sh/cloud-accounts/shared/ids"
	"github.com/dflow-sh/cloud-accounts/shared/links"
	"github.com/dflow-sh/cloud-accounts/shared/motoserver"
	"github.com/dflow-sh/cloud-accounts/shared/nodes"
	"github.com/dflow-sh/cloud-accounts/shared/partition"
	"github.com/dflow-sh/cloud-accounts/shared/sdkfault"
	"github.com/dflow-sh/cloud-accounts/shared/tenancy"
)

func TestMain(m *testing.M) { motoserver.Main(m) }

const region = "us-east-1"

// clock is a settable test clock.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// env is one organisation with a linked account backed by its own moto
// account, a fresh table, and the service over them. EC2 and DynamoDB
// calls pass through faults.
type env struct {
	t        *testing.T
	ctx      context.Context
	org      string
	link     links.Link
	store    *dynamo.Store
	ddb      *dynamodb.Client
	table    string
	faults   *sdkfault.Faults
	clock    *clock
	svc      *nodes.Service
	raw      *ec2.Client // the customer's own view, no faults
	groups   map[string]nodes.GroupRef
	keyID    string
	ami      string
	defVPC   string
	subnets  []types.Subnet
	groupID  string // a dFlow group on the default VPC's default group
	imported int
	accounts *fakeAccounts
}

func newEnv(t *testing.T) *env {
	t.Helper()
	ctx := context.Background()
	cfg := motoserver.TestConfig(t)
	e := &env{t: t, ctx: ctx, org: ids.New(ids.Org), faults: &sdkfault.Faults{}, clock: &clock{t: time.Now().UTC()}, groups: map[string]nodes.GroupRef{}}
	account := fmt.Sprintf("%012d", 100000000000+mrand.Int64N(800000000000))

	e.ddb = dynamodb.NewFromConfig(e.faults.Attach(cfg))
	e.table = "test-" + strings.ReplaceAll(ids.New("t"), "_", "-")
	if err := dynamo.EnsureTable(ctx, dynamodb.NewFromConfig(cfg), e.table); err != nil {
		t.Fatal(err)
	}
	e.store = dynamo.New(e.ddb, e.table)

	ec2cfg := e.faults.Attach(cfg)
	ec2cfg.APIOptions = append(ec2cfg.APIOptions, sdkfault.MotoAccount(account))
	api := ec2.NewFromConfig(ec2cfg)
	rawcfg := cfg.Copy()
	rawcfg.APIOptions = append(rawcfg.APIOptions, sdkfault.MotoAccount(account))
	e.raw = ec2.NewFromConfig(rawcfg)

	e.link = e.addLink([]string{"production", "staging"})
	e.keyID = ids.New(ids.SSHKey)
	pub := sshPublicKey(t)

	accounts := &fakeAccounts{store: e.store, api: api, fail: map[string]error{}}
	e.accounts = accounts
	keys := keysFunc(func(ctx context.Context, orgID, keyID string, l links.Link, r string) (string, error) {
		if keyID != e.keyID {
			return "", fault.NotFoundf("ssh_key_not_found", "no such SSH key")
		}
		name := "dflow-" + keyID
		out, err := api.DescribeKeyPairs(ctx, &ec2.DescribeKeyPairsInput{Filters: []types.Filter{{Name: aws.String("key-name"), Values: []string{name}}}})
		if err != nil {
			return "", err
		}
		if len(out.KeyPairs) == 0 {
			if _, err := api.ImportKeyPair(ctx, &ec2.ImportKeyPairInput{KeyName: aws.String(name), PublicKeyMaterial: []byte(pub)}); err != nil {
				return "", err
			}
			e.imported++
		}
		return name, nil
	})
	disc := discovery.NewService(nil)
	images := nodes.ImagesFunc(func(ctx context.Context, l links.Link, r, os, arch string) ([]discovery.Image, error) {
		p, _ := partition.ByID(l.Partition)
		list, err := disc.Images(ctx, discovery.Target{LinkID: l.ID, Partition: p}, discoveryClients{api}, r, os, arch, true)
		return list.Items, err
	})
	e.svc = nodes.NewService(nodes.Deps{
		Store: e.store, Accounts: accounts, Keys: keys, Groups: groupsFunc(e.resolve), Images: images,
		Now: e.clock.Now, Concurrency: 4,
	})

	// The default VPC, its subnets and its default group; an AMI moto knows.
	vpcs, err := e.raw.DescribeVpcs(ctx, &ec2.DescribeVpcsInput{Filters: []types.Filter{{Name: aws.String("is-default"), Values: []string{"true"}}}})
	if err != nil || len(vpcs.Vpcs) != 1 {
		t.Fatalf("default vpc: %v %v", vpcs, err)
	}
	e.defVPC = aws.ToString(vpcs.Vpcs[0].VpcId)
	sn, err := e.raw.DescribeSubnets(ctx, &ec2.DescribeSubnetsInput{Filters: []types.Filter{{Name: aws.String("vpc-id"), Values: []string{e.defVPC}}}})
	if err != nil || len(sn.Subnets) == 0 {
		t.Fatalf("subnets: %v", err)
	}
	e.subnets = sn.Subnets
	sgs, err := e.raw.DescribeSecurityGroups(ctx, &ec2.DescribeSecurityGroupsInput{Filters: []types.Filter{
		{Name: aws.String("vpc-id"), Values: []string{e.defVPC}}, {Name: aws.String("group-name"), Values: []string{"default"}},
	}})
	if err != nil || len(sgs.SecurityGroups) != 1 {
		t.Fatalf("default group: %v", err)
	}
	e.groupID = e.addGroup(e.link.ID, region, e.defVPC, aws.ToString(sgs.SecurityGroups[0].GroupId))
	e.ami = e.findAMI("x86_64")
	return e
}

// addLink stores a link of the organisation (CreateNode checks it exists).
func (e *env) addLink(envs []string) links.Link {
	e.t.Helper()
	l := links.Link{
		OrgID: e.org, ID: ids.New(ids.Account), Name: "acct-" + ids.Secret(4), Provider: links.ProviderAWS,
		Environments: envs, DefaultRegion: region, Partition: partition.Standard, Status: links.Healthy,
		Credentials: links.CredentialsInfo{Type: links.TypeAssumeRole}, Version: 1,
		CreatedAt: e.clock.Now(), UpdatedAt: e.clock.Now(), CreatedBy: "alice",
	}
	if err := dynamo.New(dynamodb.NewFromConfig(motoserver.TestConfig(e.t)), e.table).CreateLink(e.ctx, l, links.Record{SecretName: "s/" + l.ID, CredKey: l.ID}); err != nil {
		e.t.Fatal(err)
	}
	return l
}

// addGroup registers a dFlow group (the fake Groups answers it, and the
// table holds its SG# item, which a node's transaction checks).
func (e *env) addGroup(accountID, r, vpc, awsID string) string {
	e.t.Helper()
	id := ids.New(ids.Group)
	e.groups[id] = nodes.GroupRef{ID: id, AccountID: accountID, Region: r, VPCID: vpc, AWSGroupID: awsID}
	_, err := dynamodb.NewFromConfig(motoserver.TestConfig(e.t)).PutItem(e.ctx, &dynamodb.PutItemInput{
		TableName: &e.table,
		Item: map[string]ddbtypes.AttributeValue{
			"PK": &ddbtypes.AttributeValueMemberS{Value: "ORG#" + e.org}, "SK": &ddbtypes.AttributeValueMemberS{Value: "SG#" + id},
			"type": &ddbtypes.AttributeValueMemberS{Value: "securityGroup"},
		},
	})
	if err != nil {
		e.t.Fatal(err)
	}
	return id
}

func (e *env) resolve(_ context.Context, orgID string, groupIDs []string) ([]nodes.GroupRef, error) {
	var out []nodes.GroupRef
	for _, id := range groupIDs {
		if g, ok := e.groups[id]; ok && orgID == e.org {
			out = append(out, g)
		}
	}
	return out, nil
}

// findAMI returns an available image moto knows for arch.
func (e *env) findAMI(arch string) string {
	e.t.Helper()
	out, err := e.raw.DescribeImages(e.ctx, &ec2.DescribeImagesInput{Filters: []types.Filter{
		{Name: aws.String("architecture"), Values: []string{arch}},
		{Name: aws.String("name"), Values: []string{"al2023-ami-*"}},
	}})
	if err != nil || len(out.Images) == 0 {
		e.t.Fatalf("no %s image in moto: %v", arch, err)
	}
	return aws.ToString(out.Images[0].ImageId)
}

func (e *env) input(name string) nodes.Input {
	return nodes.Input{
		Name: name, Environment: "production", AccountID: e.link.ID, Region: region,
		SecurityGroupIDs: []string{e.groupID}, InstanceType: "t3.micro",
		Image: nodes.ImageInput{ID: e.ami}, DiskGiB: 20, SSHKeyID: e.keyID,
	}
}

func admin(user string) tenancy.Caller {
	return tenancy.Caller{UserID: user, Role: tenancy.BuiltinRoles("org", time.Now())[0]}
}

func withGrant(user string, g tenancy.Grant) tenancy.Caller {
	c := admin(user)
	p := tenancy.Permissions{}
	for k, v := range c.Role.Permissions {
		p[k] = v
	}
	p[tenancy.WorkerNodes] = g
	c.Role.Permissions = p
	c.Role.ID = ids.New(ids.Role)
	return c
}

// tagged lists the account's instances carrying a dflow:node tag, by id.
func (e *env) tagged(states ...string) map[string]types.Instance {
	e.t.Helper()
	if len(states) == 0 {
		states = []string{"pending", "running", "stopping", "stopped"}
	}
	out := map[string]types.Instance{}
	p := ec2.NewDescribeInstancesPaginator(e.raw, &ec2.DescribeInstancesInput{Filters: []types.Filter{
		{Name: aws.String("tag-key"), Values: []string{awsperms.NodeTagKey}},
		{Name: aws.String("instance-state-name"), Values: states},
	}})
	for p.HasMorePages() {
		page, err := p.NextPage(e.ctx)
		if err != nil {
			e.t.Fatal(err)
		}
		for _, r := range page.Reservations {
			for _, i := range r.Instances {
				out[aws.ToString(i.InstanceId)] = i
			}
		}
	}
	return out
}

func (e *env) allNodes() []nodes.Node {
	e.t.Helper()
	var out []nodes.Node
	after := ""
	for {
		page, next, err := e.store.ListNodes(e.ctx, e.org, nodes.Filter{}, tenancy.Page{Limit: 100, After: after})
		if err != nil {
			e.t.Fatal(err)
		}
		out = append(out, page...)
		if next == "" {
			return out
		}
		after = next
	}
}

// linkUsage lists the account's usage items.
func (e *env) linkUsage() []links.Usage {
	e.t.Helper()
	u, err := e.store.LinkUsage(e.ctx, e.org, e.link.ID)
	if err != nil {
		e.t.Fatal(err)
	}
	return u
}

func (e *env) groupUsers(groupID string) []string {
	e.t.Helper()
	u, err := e.store.SecurityGroupUsers(e.ctx, e.org, groupID)
	if err != nil {
		e.t.Fatal(err)
	}
	return u
}

type fakeAccounts struct {
	store *dynamo.Store
	api   nodes.EC2API
	mu    sync.Mutex
	fail  map[string]error // account id → EC2's error
}

func (a *fakeAccounts) failEC2(accountID string, err error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if err == nil {
		delete(a.fail, accountID)
	} else {
		a.fail[accountID] = err
	}
}

func (a *fakeAccounts) Link(ctx context.Context, orgID, accountID string) (links.Link, error) {
	l, _, err := a.store.GetLink(ctx, orgID, accountID)
	return l, err
}

func (a *fakeAccounts) EC2(_ context.Context, l links.Link, _ string) (nodes.EC2API, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if err := a.fail[l.ID]; err != nil {
		return nil, err
	}
	return a.api, nil
}

type keysFunc func(ctx context.Context, orgID, keyID string, l links.Link, region string) (string, error)

func (f keysFunc) EnsureImported(ctx context.Context, orgID, keyID string, l links.Link, region string) (string, error) {
	return f(ctx, orgID, keyID, l, region)
}

type groupsFunc func(ctx context.Context, orgID string, groupIDs []string) ([]nodes.GroupRef, error)

func (f groupsFunc) Resolve(ctx context.Context, orgID string, groupIDs []string) ([]nodes.GroupRef, error) {
	return f(ctx, orgID, groupIDs)
}

// discoveryClients serves discovery's image lookups from the test's client.
type discoveryClients struct{ api *ec2.Client }

func (c discoveryClients) EC2(context.Context, string) (discovery.EC2API, error) { return c.api, nil }
func (c discoveryClients) SSM(context.Context, string) (discovery.SSMAPI, error) {
	return nil, fmt.Errorf("no ssm in this test")
}

// sshPublicKey makes an OpenSSH ed25519 public key line.
func sshPublicKey(t *testing.T) string {
	t.Helper()
	pub, _, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	var b []byte
	for _, f := range [][]byte{[]byte("ssh-ed25519"), pub} {
		b = binary.BigEndian.AppendUint32(b, uint32(len(f)))
		b = append(b, f...)
	}
	return "ssh-ed25519 " + base64.StdEncoding.EncodeToString(b) + " test"
}

func code(err error) string {
	if e, ok := fault.As(err); ok {
		return e.Code
	}
	if err == nil {
		return ""
	}
	return "internal: " + err.Error()
}
