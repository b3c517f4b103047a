package main

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/smithy-go"

	"github.com/dflow-sh/cloud-accounts/shared/apitest"
	"github.com/dflow-sh/cloud-accounts/shared/links"
	"github.com/dflow-sh/cloud-accounts/shared/motoserver"
	"github.com/dflow-sh/cloud-accounts/shared/platform"
	"github.com/dflow-sh/cloud-accounts/shared/sdkfault"
)

func TestMain(m *testing.M) { motoserver.Main(m) }

const (
	admin    = "alice"
	viewer   = "vic-viewer"
	custom   = "cara-custom"
	stranger = "mallory"
)

type fixture struct {
	t      *testing.T
	env    *apitest.Env
	faults *sdkfault.Faults
	api    *apitest.Client
	h      *handlers
	orgID  string
	linker *links.Service
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	env := apitest.NewEnv(t)
	faults := &sdkfault.Faults{}
	cfg := env.Config
	cfg.SecretPrefix = "dflow/test-" + strings.ToLower(t.Name())
	p := platform.New(cfg, faults.Attach(env.AWS), env.Platform.Logger, time.Now)
	h, err := newHandlers(p)
	if err != nil {
		t.Fatal(err)
	}
	srv, err := p.Server(h.Routes())
	if err != nil {
		t.Fatal(err)
	}
	f := &fixture{t: t, env: env, faults: faults, api: apitest.NewClient(t, srv.Handle), h: h}
	f.api.Logs = env.Logs
	f.env.Platform = p
	f.orgID, _ = apitest.SeedOrg(t, p, admin, map[string]string{viewer: "viewer"}, custom)
	// Links are made by the linking code, as AccountsFunction makes them.
	f.linker = env.Linker(t, env.AWS, cfg.SecretPrefix)
	return f
}

// linkRole links a role in a (moto) account and returns the link id.
func (f *fixture) linkRole(account, region string) string {
	f.t.Helper()
	return apitest.LinkRole(f.t, f.linker, admin, f.orgID, account, region).ID
}

func (f *fixture) get(user, route, acc string, params ...string) *apitest.Result {
	f.t.Helper()
	all := append([]string{"orgId", f.orgID, "accountId", acc}, params...)
	return f.api.As(user).Route(route, all...).Do()
}

// ec2In is an EC2 client acting in a moto account (as the customer would).
func ec2In(t *testing.T, account, region string) *ec2.Client {
	t.Helper()
	cfg := motoserver.TestConfig(t)
	cfg.Region = region
	return ec2.NewFromConfig(cfg, func(o *ec2.Options) {
		o.APIOptions = append(o.APIOptions, sdkfault.MotoAccount(account))
	})
}

func throttle() error {
	return &smithy.GenericAPIError{Code: "RequestLimitExceeded", Message: "Request limit exceeded."}
}

func authFailure() error {
	return &smithy.GenericAPIError{Code: "AuthFailure", Message: "AWS was not able to validate the provided access credentials"}
}

var _ = http.StatusOK
