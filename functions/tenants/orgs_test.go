package main

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/dflow-sh/cloud-accounts/shared/apitest"
	"github.com/dflow-sh/cloud-accounts/shared/platform"
)

func TestOrgLifecycle(t *testing.T) {
	_, c := newAPI(t)
	created := c.As(admin).Route("POST /v1/orgs").JSON(map[string]any{"name": "Acme"}).Do().Expect(http.StatusCreated)
	org := created.Map()
	id := org["id"].(string)
	if !strings.HasPrefix(id, "org_") || org["name"] != "Acme" || org["createdBy"] != admin || org["version"] != float64(1) {
		t.Fatalf("created org = %v", org)
	}
	if created.Header["Location"] != "/v1/orgs/"+id || created.Header["ETag"] != `"1"` {
		t.Fatalf("headers = %v", created.Header)
	}
	if created.Header["X-Request-Id"] == "" {
		t.Fatal("no request id header")
	}

	items, next := itemsOf(t, c.As(admin).Route("GET /v1/orgs").Do().Expect(http.StatusOK))
	if len(items) != 1 || items[0]["id"] != id || next != nil {
		t.Fatalf("my orgs = %v next %v", items, next)
	}
	if items, _ := itemsOf(t, c.As(stranger).Route("GET /v1/orgs").Do().Expect(http.StatusOK)); len(items) != 0 {
		t.Fatalf("a stranger sees %v", items)
	}

	// Built-in roles are seeded and the creator is the one Admin.
	roles, _ := itemsOf(t, c.As(admin).Route("GET /v1/orgs/{orgId}/roles", "orgId", id).Do().Expect(http.StatusOK))
	if got := joined(column(roles, "id")); got != "admin,developer,viewer" {
		t.Fatalf("roles = %s", got)
	}
	for _, r := range roles {
		if r["builtin"] != true {
			t.Errorf("role %v not built in", r["id"])
		}
		if r["id"] == "admin" && r["memberCount"] != float64(1) {
			t.Errorf("admin memberCount = %v", r["memberCount"])
		}
	}
	members, _ := itemsOf(t, c.As(admin).Route("GET /v1/orgs/{orgId}/members", "orgId", id).Do().Expect(http.StatusOK))
	if len(members) != 1 || members[0]["userId"] != admin || members[0]["roleId"] != "admin" {
		t.Fatalf("members = %v", members)
	}

	// PATCH with the current version, then with a stale one.
	patched := c.As(admin).Route("PATCH /v1/orgs/{orgId}", "orgId", id).Header("If-Match", `"1"`).
		JSON(map[string]any{"name": "Acme Corp", "features": map[string]any{"provider.gcp": true}}).Do().Expect(http.StatusOK).Map()
	if patched["name"] != "Acme Corp" || patched["version"] != float64(2) || patched["features"].(map[string]any)["provider.gcp"] != true {
		t.Fatalf("patched = %v", patched)
	}
	stale := c.As(admin).Route("PATCH /v1/orgs/{orgId}", "orgId", id).Header("If-Match", `"1"`).JSON(map[string]any{"name": "Lost"}).Do().Expect(http.StatusPreconditionFailed)
	if code := problemCode(t, stale); code != "version_mismatch" {
		t.Fatalf("code = %s", code)
	}
	// A null feature removes the flag.
	got := c.As(admin).Route("PATCH /v1/orgs/{orgId}", "orgId", id).JSON(`{"features":{"provider.gcp":null}}`).Do().Expect(http.StatusOK).Map()
	if len(got["features"].(map[string]any)) != 0 || got["name"] != "Acme Corp" {
		t.Fatalf("after removing the flag: %v", got)
	}
	fetched := c.As(admin).Route("GET /v1/orgs/{orgId}", "orgId", id).Do().Expect(http.StatusOK)
	if fetched.Header["ETag"] != `"3"` {
		t.Fatalf("ETag = %s", fetched.Header["ETag"])
	}
}

func TestInputIsStrict(t *testing.T) {
	f := newFixture(t)
	big := `{"name":"` + strings.Repeat("a", 70_000) + `"}`
	tests := []struct {
		name   string
		body   string
		status int
		code   string
		field  string
	}{
		{"unknown field", `{"name":"x","colour":"red"}`, 400, "validation_failed", "colour"},
		{"wrong type", `{"name":42}`, 400, "validation_failed", "name"},
		{"trailing data", `{"name":"x"} {"name":"y"}`, 400, "validation_failed", "body"},
		{"not JSON", `{"name":`, 400, "validation_failed", "body"},
		{"empty", ``, 400, "validation_failed", "body"},
		{"missing name", `{}`, 400, "validation_failed", "name"},
		{"name too long", `{"name":"` + strings.Repeat("n", 65) + `"}`, 400, "validation_failed", "name"},
		{"control characters", `{"name":"a\u0007b"}`, 400, "validation_failed", "name"},
		{"too large", big, 413, "body_too_large", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := f.api.As(admin).Route("POST /v1/orgs").JSON(tt.body).Do().Expect(tt.status)
			if code := problemCode(t, r); code != tt.code {
				t.Fatalf("code = %s, want %s", code, tt.code)
			}
			p := r.Map()
			for _, k := range []string{"type", "title", "status", "detail", "code", "requestId"} {
				if _, ok := p[k]; !ok {
					t.Errorf("problem lacks %q: %v", k, p)
				}
			}
			if p["requestId"] != r.Header["X-Request-Id"] {
				t.Errorf("requestId %v differs from header %v", p["requestId"], r.Header["X-Request-Id"])
			}
			if tt.field != "" {
				mustContain(t, fieldsOf(t, r), tt.field)
			}
		})
	}

	params := []struct {
		name  string
		route string
		args  []string
		field string
	}{
		{"org id", "GET /v1/orgs/{orgId}", []string{"orgId", "acme"}, "orgId"},
		{"role id", "GET /v1/orgs/{orgId}/roles/{roleId}", []string{"orgId", f.orgID, "roleId", "../admin"}, "roleId"},
		{"user id", "DELETE /v1/orgs/{orgId}/members/{userId}", []string{"orgId", f.orgID, "userId", "a b"}, "userId"},
	}
	for _, tt := range params {
		t.Run("path "+tt.name, func(t *testing.T) {
			r := f.api.As(admin).Route(tt.route, tt.args...).Do().Expect(http.StatusBadRequest)
			mustContain(t, fieldsOf(t, r), tt.field)
		})
	}
	for _, bad := range []string{"0", "101", "x", "-1"} {
		r := f.api.As(admin).Route("GET /v1/orgs/{orgId}/roles", "orgId", f.orgID).Query("limit", bad).Do().Expect(http.StatusBadRequest)
		mustContain(t, fieldsOf(t, r), "limit")
	}
	r := f.api.As(admin).Route("PATCH /v1/orgs/{orgId}", "orgId", f.orgID).Header("If-Match", "soon").JSON(`{"name":"x"}`).Do().Expect(http.StatusBadRequest)
	mustContain(t, fieldsOf(t, r), "If-Match")
	r = f.api.As(admin).Route("PATCH /v1/orgs/{orgId}", "orgId", f.orgID).JSON(`{}`).Do().Expect(http.StatusBadRequest)
	mustContain(t, fieldsOf(t, r), "body")
	r = f.api.As(admin).Route("PATCH /v1/orgs/{orgId}/roles/{roleId}", "orgId", f.orgID, "roleId", f.custom).JSON(`{}`).Do().Expect(http.StatusBadRequest)
	mustContain(t, fieldsOf(t, r), "body")
	r = f.api.As(admin).Route("PATCH /v1/orgs/{orgId}", "orgId", f.orgID).JSON(`{"features":{"Not A Flag":true}}`).Do().Expect(http.StatusBadRequest)
	mustContain(t, fieldsOf(t, r), "features.Not A Flag")
}

func TestUnknownRouteAndIdentity(t *testing.T) {
	_, c := newAPI(t)
	r := c.As(admin).Route("GET /v1/nowhere").Do().Expect(http.StatusNotFound)
	if problemCode(t, r) != "route_not_found" {
		t.Fatalf("unknown route: %s", r)
	}
	r = c.As("").Route("GET /v1/orgs").Do().Expect(http.StatusUnauthorized)
	if problemCode(t, r) != "unauthenticated" {
		t.Fatalf("no claims: %s", r)
	}
	// A header claiming to be someone is not identity; only verified claims are.
	c.As("").Route("GET /v1/orgs").Header("X-User-Id", admin).Do().Expect(http.StatusUnauthorized)
}

func TestInternalErrorsRevealNothing(t *testing.T) {
	env := apitest.NewEnv(t)
	cfg := env.Config
	cfg.TableName = "no-such-table"
	p := platform.New(cfg, env.AWS, env.Logger, time.Now)
	srv, err := p.Server(routes(p))
	if err != nil {
		t.Fatal(err)
	}
	r := apitest.NewClient(t, srv.Handle).As(admin).Route("GET /v1/orgs").Do().Expect(http.StatusInternalServerError)
	if problemCode(t, r) != "internal_error" || strings.Contains(string(r.Body), "no-such-table") || strings.Contains(string(r.Body), "ResourceNotFound") {
		t.Fatalf("5xx body leaks: %s", r.Body)
	}
	// The cause goes to the log, with the request id, for operators.
	if !strings.Contains(env.Logs.String(), r.Header["X-Request-Id"]) || !strings.Contains(env.Logs.String(), "ResourceNotFoundException") {
		t.Fatalf("cause not logged: %s", env.Logs.String())
	}
}
