package main

import (
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/dflow-sh/cloud-accounts/shared/apitest"
	"github.com/dflow-sh/cloud-accounts/shared/motoserver"
)

func TestMain(m *testing.M) { motoserver.Main(m) }

// fixture is a fresh table with an organisation whose members hold each
// kind of role.
type fixture struct {
	env    *apitest.Env
	api    *apitest.Client
	orgID  string
	custom string // a custom role granting nothing
}

const (
	admin     = "alice"
	developer = "dev-dan"
	viewer    = "vic-viewer"
	custom    = "cara-custom"
	stranger  = "mallory"
)

func newAPI(t *testing.T) (*apitest.Env, *apitest.Client) {
	t.Helper()
	env := apitest.NewEnv(t)
	srv, err := env.Server(routes(env.Platform))
	if err != nil {
		t.Fatal(err)
	}
	c := apitest.NewClient(t, srv.Handle)
	c.Logs = env.Logs
	return env, c
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	env, c := newAPI(t)
	f := &fixture{env: env, api: c}
	f.orgID = f.createOrg(admin, "Acme")
	f.addMember(developer, "developer")
	f.addMember(viewer, "viewer")
	f.custom = f.createRole("Nothing", nil)
	f.addMember(custom, f.custom)
	return f
}

func (f *fixture) createOrg(user, name string) string {
	var org struct{ ID string }
	f.api.As(user).Route("POST /v1/orgs").JSON(map[string]any{"name": name}).Do().Expect(http.StatusCreated).Decode(&org)
	return org.ID
}

func (f *fixture) addMember(user, roleID string) {
	f.api.As(admin).Route("PUT /v1/orgs/{orgId}/members/{userId}", "orgId", f.orgID, "userId", user).
		JSON(map[string]any{"roleId": roleID}).Do().Expect(http.StatusCreated)
}

func (f *fixture) createRole(name string, perms map[string]any) string {
	body := map[string]any{"name": name}
	if perms != nil {
		body["permissions"] = perms
	}
	var role struct{ ID string }
	f.api.As(admin).Route("POST /v1/orgs/{orgId}/roles", "orgId", f.orgID).JSON(body).Do().Expect(http.StatusCreated).Decode(&role)
	return role.ID
}

func (f *fixture) org(route string, params ...string) []string {
	return append([]string{"orgId", f.orgID}, params...)
}

func problemCode(t *testing.T, r *apitest.Result) string { t.Helper(); return r.Code() }

func fieldsOf(t *testing.T, r *apitest.Result) []string { t.Helper(); return r.Fields() }

func mustContain(t *testing.T, hay []string, needle string) {
	t.Helper()
	for _, h := range hay {
		if h == needle {
			return
		}
	}
	t.Fatalf("%q not in %v", needle, hay)
}

func itemsOf(t *testing.T, r *apitest.Result) ([]map[string]any, *string) {
	t.Helper()
	var l struct {
		Items      []map[string]any
		NextCursor *string
	}
	r.Decode(&l)
	return l.Items, l.NextCursor
}

func column(items []map[string]any, field string) []string {
	var out []string
	for _, it := range items {
		out = append(out, fmt.Sprint(it[field]))
	}
	return out
}

func joined(s []string) string { return strings.Join(s, ",") }
