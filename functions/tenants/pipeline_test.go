package main

import (
	"net/http"
	"slices"
	"testing"

	"github.com/dflow-sh/cloud-accounts/shared/apitest"
	"github.com/dflow-sh/cloud-accounts/shared/samtemplate"
)

func TestRoutesMatchTemplate(t *testing.T) {
	tpl, _, err := samtemplate.Find()
	if err != nil {
		t.Fatal(err)
	}
	fn, ok := tpl.Function("TenantsFunction")
	if !ok {
		t.Fatal("TenantsFunction not in template.yaml")
	}
	var declared []string
	for _, r := range fn.Routes {
		declared = append(declared, r.Key())
	}
	env, _ := newAPI(t)
	srv, err := env.Server(routes(env.Platform))
	if err != nil {
		t.Fatal(err)
	}
	handled := srv.RouteKeys()
	slices.Sort(declared)
	slices.Sort(handled)
	if !slices.Equal(declared, handled) {
		t.Fatalf("template routes %v\nhandled routes  %v", declared, handled)
	}
}

func TestIdempotency(t *testing.T) {
	_, c := newAPI(t)
	post := func(user, key, name string) *apitest.Result {
		return c.As(user).Route("POST /v1/orgs").Header("Idempotency-Key", key).JSON(map[string]any{"name": name}).Do()
	}
	first := post(admin, "k-1", "Acme").Expect(http.StatusCreated)
	again := post(admin, "k-1", "Acme").Expect(http.StatusCreated)
	if string(again.Body) != string(first.Body) || again.Header["Idempotent-Replayed"] != "true" || again.Header["Location"] != first.Header["Location"] {
		t.Fatalf("replay differs:\n%s %v\n%s %v", first.Body, first.Header, again.Body, again.Header)
	}
	if first.Header["Idempotent-Replayed"] != "" {
		t.Fatal("first response marked as replayed")
	}
	if items, _ := itemsOf(t, c.As(admin).Route("GET /v1/orgs").Do()); len(items) != 1 {
		t.Fatalf("replay created another org: %v", items)
	}
	res := post(admin, "k-1", "Other").Expect(http.StatusUnprocessableEntity)
	if problemCode(t, res) != "idempotency_key_reused" {
		t.Fatal(res)
	}
	// Keys are per user: another user's same key is a new request.
	post(developer, "k-1", "Acme").Expect(http.StatusCreated)
	if items, _ := itemsOf(t, c.As(developer).Route("GET /v1/orgs").Do()); len(items) != 1 {
		t.Fatalf("developer orgs: %v", items)
	}
	// Validation failures are kept too: the same mistake replays.
	bad := c.As(admin).Route("POST /v1/orgs").Header("Idempotency-Key", "k-bad").JSON(`{"nom":"x"}`).Do().Expect(http.StatusBadRequest)
	replayed := c.As(admin).Route("POST /v1/orgs").Header("Idempotency-Key", "k-bad").JSON(`{"nom":"x"}`).Do().Expect(http.StatusBadRequest)
	if replayed.Header["Idempotent-Replayed"] != "true" || replayed.Map()["requestId"] != bad.Map()["requestId"] {
		t.Fatalf("400 not replayed: %v", replayed.Header)
	}
	c.As(admin).Route("POST /v1/orgs").Header("Idempotency-Key", string(make([]byte, 300))).JSON(`{"name":"x"}`).Do().Expect(http.StatusBadRequest)
}
