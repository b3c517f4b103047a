package main

import (
	"fmt"
	"net/http"
	"testing"
)

type prepared struct {
	params []string
	body   any
}

// routeCases acts once per case on fresh targets, so destructive routes
// can succeed for every caller allowed to call them.
func routeCases(f *fixture) []struct {
	route string
	prep  func() prepared
	ok    int
} {
	link := func() string {
		return f.link(roleBody("r-"+randomSuffix(), fmt.Sprintf("arn:aws:iam::1111%08d:role/dflow", nextAccount())))["id"].(string)
	}
	return []struct {
		route string
		prep  func() prepared
		ok    int
	}{
		{"GET /v1/orgs/{orgId}/providers", func() prepared { return prepared{params: f.org()} }, 200},
		{"GET /v1/orgs/{orgId}/providers/aws/setup", func() prepared { return prepared{params: f.org()} }, 200},
		{"POST /v1/orgs/{orgId}/accounts", func() prepared {
			return prepared{params: f.org(), body: roleBody("n-"+randomSuffix(), fmt.Sprintf("arn:aws:iam::2222%08d:role/dflow", nextAccount()))}
		}, 201},
		{"GET /v1/orgs/{orgId}/accounts", func() prepared { return prepared{params: f.org()} }, 200},
		{"GET /v1/orgs/{orgId}/accounts/{accountId}", func() prepared { return prepared{params: f.org("accountId", link())} }, 200},
		{"PATCH /v1/orgs/{orgId}/accounts/{accountId}", func() prepared {
			return prepared{params: f.org("accountId", link()), body: map[string]any{"environments": []string{"staging"}}}
		}, 200},
		{"PUT /v1/orgs/{orgId}/accounts/{accountId}/credentials", func() prepared {
			id := link()
			got := f.api.As(admin).Route("GET /v1/orgs/{orgId}/accounts/{accountId}", f.org("accountId", id)...).Do().Map()
			return prepared{params: f.org("accountId", id), body: map[string]any{"type": "assumeRole", "roleArn": got["credentials"].(map[string]any)["roleArn"]}}
		}, 200},
		{"POST /v1/orgs/{orgId}/accounts/{accountId}/validate", func() prepared { return prepared{params: f.org("accountId", link())} }, 200},
		{"DELETE /v1/orgs/{orgId}/accounts/{accountId}", func() prepared { return prepared{params: f.org("accountId", link())} }, 204},
	}
}

var accountCounter int

func nextAccount() int { accountCounter++; return accountCounter }

func randomSuffix() string { return fmt.Sprint(nextAccount()) }

func TestPermissionMatrix(t *testing.T) {
	f := newFixture(t)
	// Who may do what: Admin everything; Developer and Viewer read (and
	// validate, a read); the custom role nothing; strangers see nothing.
	allowed := map[string][]string{
		"GET /v1/orgs/{orgId}/providers":                        {admin, developer, viewer},
		"GET /v1/orgs/{orgId}/providers/aws/setup":              {admin},
		"POST /v1/orgs/{orgId}/accounts":                        {admin},
		"GET /v1/orgs/{orgId}/accounts":                         {admin, developer, viewer},
		"GET /v1/orgs/{orgId}/accounts/{accountId}":             {admin, developer, viewer},
		"PATCH /v1/orgs/{orgId}/accounts/{accountId}":           {admin},
		"PUT /v1/orgs/{orgId}/accounts/{accountId}/credentials": {admin},
		"POST /v1/orgs/{orgId}/accounts/{accountId}/validate":   {admin, developer, viewer},
		"DELETE /v1/orgs/{orgId}/accounts/{accountId}":          {admin},
	}
	for _, rc := range routeCases(f) {
		for _, caller := range []string{admin, developer, viewer, custom, stranger, ""} {
			want := http.StatusForbidden
			switch {
			case caller == "":
				want = http.StatusUnauthorized
			case caller == stranger:
				want = http.StatusNotFound
			}
			for _, a := range allowed[rc.route] {
				if a == caller {
					want = rc.ok
				}
			}
			name := caller
			if name == "" {
				name = "no-token"
			}
			t.Run(rc.route+"/"+name, func(t *testing.T) {
				p := rc.prep()
				call := f.api.As(caller).Route(rc.route, p.params...)
				if p.body != nil {
					call = call.JSON(p.body)
				}
				r := call.Do().Expect(want)
				if want == http.StatusNotFound && r.Map()["detail"] != "no such organisation" {
					t.Fatal(r)
				}
			})
		}
	}
}

// A member of another organisation reaches nothing of this one, and a link
// id of this organisation is unknown inside theirs.
func TestOtherOrganisation(t *testing.T) {
	f := newFixture(t)
	other, _ := seedOther(t, f)
	for _, rc := range routeCases(f) {
		t.Run(rc.route, func(t *testing.T) {
			p := rc.prep()
			call := f.api.As(stranger).Route(rc.route, p.params...)
			if p.body != nil {
				call = call.JSON(p.body)
			}
			call.Do().Expect(http.StatusNotFound)
			// The same link id, asked inside the stranger's own organisation.
			if len(p.params) > 2 {
				params := append([]string{"orgId", other}, p.params[2:]...)
				call := f.api.As(stranger).Route(rc.route, params...)
				if p.body != nil {
					call = call.JSON(p.body)
				}
				if r := call.Do().Expect(http.StatusNotFound); r.Map()["code"] != "account_not_found" {
					t.Fatal(r)
				}
			}
		})
	}
}

func TestIdempotentLink(t *testing.T) {
	f := newFixture(t)
	id, secret := accessKey(t, "idem")
	send := func() map[string]any {
		r := f.api.As(admin).Route("POST /v1/orgs/{orgId}/accounts", f.org()...).Header("Idempotency-Key", "link-1").JSON(keyBody("prod", id, secret)).Do().Expect(http.StatusCreated)
		return map[string]any{"body": string(r.Body), "replayed": r.Header["Idempotent-Replayed"]}
	}
	first, second := send(), send()
	if first["body"] != second["body"] || second["replayed"] != "true" {
		t.Fatalf("not replayed:\n%v\n%v", first, second)
	}
	if n := len(f.secrets()); n != 1 {
		t.Fatalf("%d secrets after a replay", n)
	}
	assertNoSecret(t, f, secret)
}
