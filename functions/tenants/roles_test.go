package main

import (
	"net/http"
	"testing"
)

func TestRoles(t *testing.T) {
	f := newFixture(t)
	c := f.api

	// A new role grants nothing it does not list.
	nothing := c.As(admin).Route("GET /v1/orgs/{orgId}/roles/{roleId}", f.org("", "roleId", f.custom)...).Do().Expect(http.StatusOK).Map()
	for coll, g := range nothing["permissions"].(map[string]any) {
		for action, v := range g.(map[string]any) {
			if v == true {
				t.Errorf("new role grants %s.%s", coll, action)
			}
		}
	}
	c.As(custom).Route("GET /v1/orgs/{orgId}/roles", f.org("")...).Do().Expect(http.StatusForbidden)

	// Granting roles.read lets its holders list roles, nothing more.
	r := c.As(admin).Route("PATCH /v1/orgs/{orgId}/roles/{roleId}", f.org("", "roleId", f.custom)...).
		Header("If-Match", `"1"`).JSON(map[string]any{"permissions": map[string]any{"roles": map[string]any{"read": true}}}).Do().Expect(http.StatusOK).Map()
	if r["version"] != float64(2) {
		t.Fatalf("version = %v", r["version"])
	}
	c.As(custom).Route("GET /v1/orgs/{orgId}/roles", f.org("")...).Do().Expect(http.StatusOK)
	c.As(custom).Route("GET /v1/orgs/{orgId}/members", f.org("")...).Do().Expect(http.StatusForbidden)

	invalid := []struct {
		name  string
		body  map[string]any
		field string
	}{
		{"unknown collection", map[string]any{"name": "A", "permissions": map[string]any{"spaceships": map[string]any{"read": true}}}, "permissions.spaceships"},
		{"rotate outside accounts", map[string]any{"name": "B", "permissions": map[string]any{"sshKeys": map[string]any{"rotate": true}}}, "permissions.sshKeys.rotate"},
		{"limit outside nodes", map[string]any{"name": "C", "permissions": map[string]any{"team": map[string]any{"createLimit": 3}}}, "permissions.team.createLimit"},
		{"bad scope", map[string]any{"name": "D", "permissions": map[string]any{"workerNodes": map[string]any{"readScope": "mine"}}}, "permissions.workerNodes.readScope"},
		{"negative limit", map[string]any{"name": "E", "permissions": map[string]any{"workerNodes": map[string]any{"createLimit": -1}}}, "permissions.workerNodes.createLimit"},
		{"unknown action", map[string]any{"name": "F", "permissions": map[string]any{"team": map[string]any{"launch": true}}}, "launch"},
		{"no name", map[string]any{"permissions": map[string]any{}}, "name"},
	}
	for _, tt := range invalid {
		t.Run(tt.name, func(t *testing.T) {
			res := c.As(admin).Route("POST /v1/orgs/{orgId}/roles", f.org("")...).JSON(tt.body).Do().Expect(http.StatusBadRequest)
			mustContain(t, fieldsOf(t, res), tt.field)
		})
	}

	// Names are unique ignoring case, built-ins included.
	for _, name := range []string{"nothing", "ADMIN"} {
		res := c.As(admin).Route("POST /v1/orgs/{orgId}/roles", f.org("")...).JSON(map[string]any{"name": name}).Do().Expect(http.StatusConflict)
		if problemCode(t, res) != "role_name_taken" {
			t.Fatalf("%s: %s", name, res)
		}
	}
	// Renaming frees the old name.
	ops := f.createRole("Ops", map[string]any{"workerNodes": map[string]any{"read": true, "create": true, "createLimit": 2, "readScope": "own"}})
	c.As(admin).Route("PATCH /v1/orgs/{orgId}/roles/{roleId}", f.org("", "roleId", ops)...).JSON(map[string]any{"name": "Operators"}).Do().Expect(http.StatusOK)
	f.createRole("ops", nil)
	got := c.As(admin).Route("GET /v1/orgs/{orgId}/roles/{roleId}", f.org("", "roleId", ops)...).Do().Expect(http.StatusOK).Map()
	wn := got["permissions"].(map[string]any)["workerNodes"].(map[string]any)
	if got["name"] != "Operators" || wn["createLimit"] != float64(2) || wn["readScope"] != "own" || wn["create"] != true || wn["delete"] != false {
		t.Fatalf("role = %v", got)
	}

	// Built-in roles cannot change.
	for _, id := range []string{"admin", "developer", "viewer"} {
		res := c.As(admin).Route("PATCH /v1/orgs/{orgId}/roles/{roleId}", f.org("", "roleId", id)...).JSON(map[string]any{"description": "mine now"}).Do().Expect(http.StatusConflict)
		if problemCode(t, res) != "role_builtin" {
			t.Fatal(res)
		}
		c.As(admin).Route("DELETE /v1/orgs/{orgId}/roles/{roleId}", f.org("", "roleId", id)...).Do().Expect(http.StatusConflict)
	}

	// A role in use cannot be deleted; once nobody holds it, it can.
	res := c.As(admin).Route("DELETE /v1/orgs/{orgId}/roles/{roleId}", f.org("", "roleId", f.custom)...).Do().Expect(http.StatusConflict)
	if problemCode(t, res) != "role_in_use" || res.Map()["memberCount"] != float64(1) {
		t.Fatalf("delete in use: %s", res)
	}
	c.As(admin).Route("PUT /v1/orgs/{orgId}/members/{userId}", f.org("", "userId", custom)...).JSON(map[string]any{"roleId": "viewer"}).Do().Expect(http.StatusOK)
	c.As(admin).Route("DELETE /v1/orgs/{orgId}/roles/{roleId}", f.org("", "roleId", f.custom)...).Header("If-Match", `"1"`).Do().Expect(http.StatusPreconditionFailed)
	c.As(admin).Route("DELETE /v1/orgs/{orgId}/roles/{roleId}", f.org("", "roleId", f.custom)...).Do().Expect(http.StatusNoContent)
	c.As(admin).Route("GET /v1/orgs/{orgId}/roles/{roleId}", f.org("", "roleId", f.custom)...).Do().Expect(http.StatusNotFound)
	// Its name is free again.
	f.createRole("Nothing", nil)
}

func TestNoPrivilegeEscalation(t *testing.T) {
	f := newFixture(t)
	c := f.api
	// A team manager who cannot touch cloud accounts.
	manager := f.createRole("Team manager", map[string]any{
		"team":  map[string]any{"read": true, "create": true, "update": true, "delete": true},
		"roles": map[string]any{"read": true, "create": true, "update": true},
	})
	f.addMember("tom", manager)

	res := c.As("tom").Route("PUT /v1/orgs/{orgId}/members/{userId}", f.org("", "userId", "tom")...).JSON(map[string]any{"roleId": "admin"}).Do().Expect(http.StatusForbidden)
	if problemCode(t, res) != "privilege_escalation" {
		t.Fatal(res)
	}
	res = c.As("tom").Route("POST /v1/orgs/{orgId}/roles", f.org("")...).
		JSON(map[string]any{"name": "Keys", "permissions": map[string]any{"cloudProviderAccounts": map[string]any{"rotate": true}}}).Do().Expect(http.StatusForbidden)
	if problemCode(t, res) != "privilege_escalation" {
		t.Fatal(res)
	}
	// Nor may the manager widen their own role, or remove an Admin.
	c.As("tom").Route("PATCH /v1/orgs/{orgId}/roles/{roleId}", f.org("", "roleId", manager)...).
		JSON(map[string]any{"permissions": map[string]any{"audit": map[string]any{"read": true}, "team": map[string]any{"read": true}}}).Do().Expect(http.StatusForbidden)
	c.As("tom").Route("DELETE /v1/orgs/{orgId}/members/{userId}", f.org("", "userId", admin)...).Do().Expect(http.StatusForbidden)
	// Moving an Admin onto a lesser role takes Admin away: refused as well.
	f.addMember("second-admin", "admin")
	res = c.As("tom").Route("PUT /v1/orgs/{orgId}/members/{userId}", f.org("", "userId", "second-admin")...).JSON(map[string]any{"roleId": f.custom}).Do().Expect(http.StatusForbidden)
	if problemCode(t, res) != "privilege_escalation" {
		t.Fatal(res)
	}
	// Such refusals are audited as denied.
	events, _ := itemsOf(t, c.As(admin).Route("GET /v1/orgs/{orgId}/audit", f.org("")...).Query("limit", "1").Do().Expect(http.StatusOK))
	if events[0]["outcome"] != "denied" || events[0]["actor"] != "tom" {
		t.Fatalf("last audit event = %v", events[0])
	}
	// What the manager holds, the manager may hand out.
	c.As("tom").Route("PUT /v1/orgs/{orgId}/members/{userId}", f.org("", "userId", "newbie")...).JSON(map[string]any{"roleId": f.custom}).Do().Expect(http.StatusCreated)
	c.As("tom").Route("POST /v1/orgs/{orgId}/roles", f.org("")...).JSON(map[string]any{"name": "Readers", "permissions": map[string]any{"team": map[string]any{"read": true}}}).Do().Expect(http.StatusCreated)
}
