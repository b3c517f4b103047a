// Package api is the request pipeline every HTTP function shares: identity
// from verified JWT claims, deny-by-default authorization, strict input,
// problem+json errors, idempotency, cursors, audit and one log line per
// request. It is the one place where domain errors become HTTP statuses.
package api

import (
	"context"
	"fmt"
	"regexp"
	"strings"

	"github.com/dflow-sh/cloud-accounts/shared/tenancy"
)

// HandlerFunc serves one route. Expected outcomes, 4xx included, are returned
// as errors from package fault or as responses; both become HTTP here.
type HandlerFunc func(ctx context.Context, r *Request) (*Response, error)

type permKind int

const (
	permUnset permKind = iota
	permUser
	permMember
	permAdmin
	permGrant
)

// Permission is what a route requires of its caller. The zero value is
// invalid, so a route that names nothing cannot be registered.
type Permission struct {
	kind       permKind
	Collection tenancy.Collection
	Action     tenancy.Action
}

// AnyUser lets any authenticated user in; for routes outside an organisation.
func AnyUser() Permission { return Permission{kind: permUser} }

// AnyMember lets in every member of the organisation in the path.
func AnyMember() Permission { return Permission{kind: permMember} }

// AdminOnly lets in holders of the built-in Admin role.
func AdminOnly() Permission { return Permission{kind: permAdmin} }

// Allow requires a grant of action on collection.
func Allow(c tenancy.Collection, a tenancy.Action) Permission {
	return Permission{kind: permGrant, Collection: c, Action: a}
}

func (p Permission) String() string {
	switch p.kind {
	case permUser:
		return "authenticated"
	case permMember:
		return "member"
	case permAdmin:
		return "admin"
	case permGrant:
		return string(p.Collection) + "." + string(p.Action)
	}
	return "unset"
}

func (p Permission) allows(role tenancy.Role) bool {
	switch p.kind {
	case permUser, permMember:
		return true
	case permAdmin:
		return role.IsAdmin()
	case permGrant:
		return role.Allows(p.Collection, p.Action)
	}
	return false
}

// Route binds a route key to its permission and handler.
type Route struct {
	// Key is the API Gateway route key, e.g. "GET /v1/orgs/{orgId}".
	Key        string
	Permission Permission
	// Action names the audited action of a mutating route, e.g. "roles.create".
	Action string
	// Idempotent routes honour the Idempotency-Key header.
	Idempotent bool
	Handler    HandlerFunc
}

func (r Route) method() string { m, _, _ := strings.Cut(r.Key, " "); return m }

func (r Route) mutating() bool { return r.method() != "GET" && r.method() != "HEAD" }

var paramPattern = regexp.MustCompile(`\{([A-Za-z]+)\+?\}`)

func (r Route) params() []string {
	var out []string
	for _, m := range paramPattern.FindAllStringSubmatch(r.Key, -1) {
		out = append(out, m[1])
	}
	return out
}

func (r Route) validate() error {
	method, path, ok := strings.Cut(r.Key, " ")
	if !ok || method == "" || !strings.HasPrefix(path, "/") {
		return fmt.Errorf("route %q: key must be \"METHOD /path\"", r.Key)
	}
	if r.Permission.kind == permUnset {
		return fmt.Errorf("route %q: no permission named (deny by default)", r.Key)
	}
	if r.Handler == nil {
		return fmt.Errorf("route %q: no handler", r.Key)
	}
	if r.mutating() && r.Action == "" {
		return fmt.Errorf("route %q: mutating routes must name their audit action", r.Key)
	}
	inOrg := strings.Contains(path, "{orgId}")
	if r.Permission.kind != permUser && !inOrg {
		return fmt.Errorf("route %q: permission %s needs an {orgId} in the path", r.Key, r.Permission)
	}
	for _, p := range r.params() {
		if _, ok := paramFormats[p]; !ok {
			return fmt.Errorf("route %q: no format check for path parameter %q", r.Key, p)
		}
	}
	return nil
}
