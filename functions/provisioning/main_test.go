package main

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"encoding/binary"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"

	"github.com/dflow-sh/cloud-accounts/shared/apitest"
	"github.com/dflow-sh/cloud-accounts/shared/motoserver"
	"github.com/dflow-sh/cloud-accounts/shared/platform"
	"github.com/dflow-sh/cloud-accounts/shared/sdkfault"
)

func TestMain(m *testing.M) { motoserver.Main(m) }

const (
	admin     = "alice"
	developer = "dev-dan"
	viewer    = "vic-viewer"
	stranger  = "mallory"
	customer  = "111122223333"
	region    = "us-east-1"
)

type fixture struct {
	t     *testing.T
	env   *apitest.Env
	api   *apitest.Client
	h     *handlers
	orgID string
	acc   string
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	env := apitest.NewEnv(t)
	cfg := env.Config
	cfg.SecretPrefix = "dflow/test-" + strings.ToLower(t.Name())
	p := platform.New(cfg, env.AWS, env.Platform.Logger, time.Now)
	h, err := newHandlers(p)
	if err != nil {
		t.Fatal(err)
	}
	srv, err := p.Server(h.Routes())
	if err != nil {
		t.Fatal(err)
	}
	f := &fixture{t: t, env: env, api: apitest.NewClient(t, srv.Handle), h: h}
	f.api.Logs = env.Logs
	f.env.Platform = p
	f.orgID, _ = apitest.SeedOrg(t, p, admin, map[string]string{developer: "developer", viewer: "viewer"}, "")
	// The account is linked by the linking code, as AccountsFunction does.
	linker := env.Linker(t, env.AWS, cfg.SecretPrefix)
	f.acc = apitest.LinkRole(t, linker, admin, f.orgID, customer, region, "production").ID
	return f
}

func (f *fixture) org(params ...string) []string {
	return append([]string{"orgId", f.orgID}, params...)
}

// publicKey is a fresh ed25519 key in OpenSSH's authorized_keys form.
func publicKey(t *testing.T) string {
	t.Helper()
	pub, _, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	var blob []byte
	for _, part := range [][]byte{[]byte("ssh-ed25519"), pub} {
		blob = binary.BigEndian.AppendUint32(blob, uint32(len(part)))
		blob = append(blob, part...)
	}
	return "ssh-ed25519 " + base64.StdEncoding.EncodeToString(blob) + " ops@example"
}

// customerEC2 looks at the customer's account as its owner would.
func customerEC2(t *testing.T) *ec2.Client {
	t.Helper()
	cfg := motoserver.TestConfig(t)
	cfg.Region = region
	return ec2.NewFromConfig(cfg, func(o *ec2.Options) { o.APIOptions = append(o.APIOptions, sdkfault.MotoAccount(customer)) })
}

func (f *fixture) instance(id string) types.Instance {
	f.t.Helper()
	out, err := customerEC2(f.t).DescribeInstances(context.Background(), &ec2.DescribeInstancesInput{InstanceIds: []string{id}})
	if err != nil || len(out.Reservations) == 0 || len(out.Reservations[0].Instances) == 0 {
		f.t.Fatalf("instance %s: %v", id, err)
	}
	return out.Reservations[0].Instances[0]
}

// setup registers a key and a group, as a node launch needs them.
func (f *fixture) setup() (keyID, groupID string) {
	f.t.Helper()
	k := f.api.As(admin).Route("POST "+keysPath, f.org()...).JSON(map[string]any{"name": "ops", "publicKey": publicKey(f.t)}).Do().Expect(http.StatusCreated).Map()
	g := f.api.As(admin).Route("POST "+groupsPath, f.org()...).JSON(map[string]any{
		"name": "web", "description": "web nodes", "accountId": f.acc, "region": region,
		"inboundRules": []map[string]any{{"protocol": "tcp", "fromPort": 22, "toPort": 22, "cidrIpv4": "10.0.0.0/8", "description": "ssh from the VPN"}},
	}).Do().Expect(http.StatusCreated).Map()
	if g["status"] != "in_sync" || !strings.HasPrefix(g["awsGroupId"].(string), "sg-") {
		f.t.Fatalf("group = %v", g)
	}
	return k["id"].(string), g["id"].(string)
}

func nodeBody(acc, key, group string) map[string]any {
	return map[string]any{
		"name": "web-1", "environment": "production", "accountId": acc, "region": region,
		"securityGroupIds": []string{group}, "instanceType": "t3.micro",
		"image": map[string]any{"os": "amazon-linux"}, "diskGiB": 20, "sshKeyId": key,
	}
}
