package main

import (
	"fmt"
	"net/http"
	"testing"

	"github.com/dflow-sh/cloud-accounts/shared/ids"
)

// TestPermissionMatrix runs every route as each kind of caller. The custom
// role grants nothing, so it shows deny by default.
func TestPermissionMatrix(t *testing.T) {
	callers := []string{admin, developer, viewer, custom, stranger, ""}
	const (
		ok201 = http.StatusCreated
		ok200 = http.StatusOK
		ok204 = http.StatusNoContent
		no403 = http.StatusForbidden
		no404 = http.StatusNotFound
		no401 = http.StatusUnauthorized
	)
	type prepared struct {
		params []string
		body   any
	}
	tests := []struct {
		route string
		// prep makes what the call acts on, fresh for each caller.
		prep func(f *fixture) prepared
		// want per caller: admin, developer, viewer, custom, stranger, no token.
		want [6]int
	}{
		{"POST /v1/orgs", func(f *fixture) prepared { return prepared{body: map[string]any{"name": "New"}} },
			[6]int{ok201, ok201, ok201, ok201, ok201, no401}},
		{"GET /v1/orgs", func(f *fixture) prepared { return prepared{} },
			[6]int{ok200, ok200, ok200, ok200, ok200, no401}},
		{"GET /v1/orgs/{orgId}", func(f *fixture) prepared { return prepared{params: f.org("")} },
			[6]int{ok200, ok200, ok200, ok200, no404, no401}},
		{"PATCH /v1/orgs/{orgId}", func(f *fixture) prepared {
			return prepared{params: f.org(""), body: map[string]any{"name": "Renamed"}}
		}, [6]int{ok200, no403, no403, no403, no404, no401}},
		{"GET /v1/orgs/{orgId}/roles", func(f *fixture) prepared { return prepared{params: f.org("")} },
			[6]int{ok200, ok200, ok200, no403, no404, no401}},
		{"POST /v1/orgs/{orgId}/roles", func(f *fixture) prepared {
			return prepared{params: f.org(""), body: map[string]any{"name": "R-" + ids.Secret(4)}}
		}, [6]int{ok201, no403, no403, no403, no404, no401}},
		{"GET /v1/orgs/{orgId}/roles/{roleId}", func(f *fixture) prepared { return prepared{params: f.org("", "roleId", "viewer")} },
			[6]int{ok200, ok200, ok200, no403, no404, no401}},
		{"PATCH /v1/orgs/{orgId}/roles/{roleId}", func(f *fixture) prepared {
			return prepared{params: f.org("", "roleId", f.createRole("T-"+ids.Secret(4), nil)), body: map[string]any{"description": "d"}}
		}, [6]int{ok200, no403, no403, no403, no404, no401}},
		{"DELETE /v1/orgs/{orgId}/roles/{roleId}", func(f *fixture) prepared {
			return prepared{params: f.org("", "roleId", f.createRole("D-"+ids.Secret(4), nil))}
		}, [6]int{ok204, no403, no403, no403, no404, no401}},
		{"GET /v1/orgs/{orgId}/members", func(f *fixture) prepared { return prepared{params: f.org("")} },
			[6]int{ok200, ok200, ok200, no403, no404, no401}},
		{"PUT /v1/orgs/{orgId}/members/{userId}", func(f *fixture) prepared {
			return prepared{params: f.org("", "userId", "new-"+ids.Secret(4)), body: map[string]any{"roleId": "viewer"}}
		}, [6]int{ok201, no403, no403, no403, no404, no401}},
		{"DELETE /v1/orgs/{orgId}/members/{userId}", func(f *fixture) prepared {
			u := "gone-" + ids.Secret(4)
			f.addMember(u, "viewer")
			return prepared{params: f.org("", "userId", u)}
		}, [6]int{ok204, no403, no403, no403, no404, no401}},
		{"GET /v1/orgs/{orgId}/audit", func(f *fixture) prepared { return prepared{params: f.org("")} },
			[6]int{ok200, ok200, ok200, no403, no404, no401}},
	}
	f := newFixture(t)
	for _, tt := range tests {
		for i, caller := range callers {
			name := caller
			if name == "" {
				name = "no-token"
			}
			t.Run(fmt.Sprintf("%s/%s", tt.route, name), func(t *testing.T) {
				p := tt.prep(f)
				call := f.api.As(caller).Route(tt.route, p.params...)
				if p.body != nil {
					call = call.JSON(p.body)
				}
				r := call.Do().Expect(tt.want[i])
				switch tt.want[i] {
				case no403:
					if problemCode(t, r) != "permission_denied" {
						t.Fatal(r)
					}
				case no404:
					// A stranger learns nothing, not even that the organisation exists.
					if p := r.Map(); p["code"] != "not_found" || p["detail"] != "no such organisation" {
						t.Fatal(r)
					}
				}
			})
		}
	}
}
