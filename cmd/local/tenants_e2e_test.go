package main

import (
	"encoding/json"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/dflow-sh/cloud-accounts/shared/ids"
	"github.com/dflow-sh/cloud-accounts/shared/motoserver"
	"github.com/dflow-sh/cloud-accounts/shared/samtemplate"
)

// TestTenantsEndToEnd runs the real template's TenantsFunction as `make run`
// does, against moto: a token, POST /v1/orgs, GET /v1/orgs. A missing
// moto_server fails it (motoserver.Shared), never skips it.
func TestTenantsEndToEnd(t *testing.T) {
	tpl, root, err := samtemplate.Find()
	if err != nil {
		t.Fatalf("load the real template: %v", err)
	}
	if _, ok := tpl.Function("TenantsFunction"); !ok {
		t.Fatal("template.yaml has no TenantsFunction")
	}
	moto := motoserver.Shared(t)

	// env.json as the lead keeps it, on its own table so reruns and other
	// packages sharing this moto do not meet its data.
	params := map[string]any{"TABLE_NAME": "dflow-local", "SECRET_PREFIX": "dflow/local", "STAGE": "local", "LOG_LEVEL": "INFO"}
	doc := map[string]any{"Parameters": params}
	if raw, err := os.ReadFile(filepath.Join(root, "env.json")); err == nil {
		if err := json.Unmarshal(raw, &doc); err != nil {
			t.Fatalf("env.json: %v", err)
		}
	} else if !errors.Is(err, fs.ErrNotExist) {
		t.Fatal(err)
	}
	if p, ok := doc["Parameters"].(map[string]any); ok {
		params = p
	}
	params["TABLE_NAME"] = "dflow-e2e-" + ids.Secret(5)
	doc["Parameters"] = params
	raw, _ := json.Marshal(doc)
	envPath := writeFile(t, "env.json", string(raw))

	parent := envMap(os.Environ())
	for k, v := range map[string]string{
		"AWS_REGION": "us-east-1", "AWS_ACCESS_KEY_ID": dummyAccessKeyID, "AWS_SECRET_ACCESS_KEY": dummySecretAccessKey,
		"AWS_SESSION_TOKEN": "", "AWS_PROFILE": "", "AWS_CONFIG_FILE": "/dev/null", "AWS_SHARED_CREDENTIALS_FILE": "/dev/null",
		"AWS_EC2_METADATA_DISABLED": "true", "AWS_ACCOUNT_ID_ENDPOINT_MODE": "disabled", "AWS_MAX_ATTEMPTS": "1",
	} {
		parent[k] = v
	}
	srv := startLocalAPI(t, options{
		Root:        root,
		Template:    tpl,
		EnvPath:     envPath,
		EnvRequired: true,
		Endpoint:    moto.URL,
		ParentEnv:   parent,
	})
	c := client{t, srv.URL}
	token := c.token("alice", "alice@example.com")

	created := c.do("POST", "/v1/orgs", token, "application/json", []byte(`{"name":"Acme"}`))
	expect(t, "POST /v1/orgs", created, 201, "")
	var org struct{ ID, Name string }
	if err := json.Unmarshal(created.body, &org); err != nil || org.Name != "Acme" || org.ID == "" {
		t.Fatalf("created org: %s", created.body)
	}
	if loc := created.header.Get("Location"); loc != "/v1/orgs/"+org.ID {
		t.Errorf("Location = %q", loc)
	}

	listed := c.do("GET", "/v1/orgs", token, "", nil)
	expect(t, "GET /v1/orgs", listed, 200, "")
	if !strings.Contains(string(listed.body), org.ID) || !strings.Contains(string(listed.body), `"Acme"`) {
		t.Errorf("GET /v1/orgs does not list the new org: %s", listed.body)
	}

	roles := c.do("GET", "/v1/orgs/"+org.ID+"/roles", token, "", nil)
	expect(t, "GET /v1/orgs/{orgId}/roles", roles, 200, "")

	// The JWT authorizer stands in front of the real function too.
	expect(t, "no token", c.do("GET", "/v1/orgs", "", "", nil), 401, `{"message":"Unauthorized"}`)
	bob := c.token("bob", "")
	if r := c.do("GET", "/v1/orgs/"+org.ID, bob, "", nil); r.status < 400 {
		t.Errorf("bob reads alice's org: %d %s", r.status, r.body)
	}
}
