package main

import (
	"net/http"
	"testing"
)

func TestMembers(t *testing.T) {
	f := newFixture(t)
	c := f.api
	path := func(user string) []string { return f.org("", "userId", user) }

	// Unknown role → 400 on roleId; missing roleId → 400.
	res := c.As(admin).Route("PUT /v1/orgs/{orgId}/members/{userId}", path("zoe")...).JSON(map[string]any{"roleId": "rol_aaaaaaaaaaaaaaaaaaaaaaaaaa"}).Do().Expect(http.StatusBadRequest)
	mustContain(t, fieldsOf(t, res), "roleId")
	res = c.As(admin).Route("PUT /v1/orgs/{orgId}/members/{userId}", path("zoe")...).JSON(map[string]any{}).Do().Expect(http.StatusBadRequest)
	mustContain(t, fieldsOf(t, res), "roleId")

	// Moving a member moves the role counts.
	m := c.As(admin).Route("PUT /v1/orgs/{orgId}/members/{userId}", path(viewer)...).JSON(map[string]any{"roleId": "developer"}).Do().Expect(http.StatusOK)
	if m.Map()["roleId"] != "developer" || m.Header["ETag"] != `"2"` {
		t.Fatalf("moved: %s %v", m, m.Header)
	}
	count := func(role string) float64 {
		return c.As(admin).Route("GET /v1/orgs/{orgId}/roles/{roleId}", f.org("", "roleId", role)...).Do().Expect(http.StatusOK).Map()["memberCount"].(float64)
	}
	if count("developer") != 2 || count("viewer") != 0 || count("admin") != 1 {
		t.Fatalf("counts: developer %v viewer %v admin %v", count("developer"), count("viewer"), count("admin"))
	}
	// Stale If-Match on a member.
	c.As(admin).Route("PUT /v1/orgs/{orgId}/members/{userId}", path(viewer)...).Header("If-Match", `"1"`).JSON(map[string]any{"roleId": "viewer"}).Do().Expect(http.StatusPreconditionFailed)

	// The last Admin can be neither demoted nor removed.
	res = c.As(admin).Route("PUT /v1/orgs/{orgId}/members/{userId}", path(admin)...).JSON(map[string]any{"roleId": "viewer"}).Do().Expect(http.StatusConflict)
	if problemCode(t, res) != "last_admin" {
		t.Fatal(res)
	}
	res = c.As(admin).Route("DELETE /v1/orgs/{orgId}/members/{userId}", path(admin)...).Do().Expect(http.StatusConflict)
	if problemCode(t, res) != "last_admin" {
		t.Fatal(res)
	}
	// With a second Admin, the first may step down.
	c.As(admin).Route("PUT /v1/orgs/{orgId}/members/{userId}", path(developer)...).JSON(map[string]any{"roleId": "admin"}).Do().Expect(http.StatusOK)
	c.As(admin).Route("DELETE /v1/orgs/{orgId}/members/{userId}", path(admin)...).Do().Expect(http.StatusNoContent)
	if n := c.As(developer).Route("GET /v1/orgs/{orgId}/roles/{roleId}", f.org("", "roleId", "admin")...).Do().Expect(http.StatusOK).Map()["memberCount"]; n != float64(1) {
		t.Fatalf("admins = %v", n)
	}
	// Alice is gone: her organisation is now invisible to her.
	c.As(admin).Route("GET /v1/orgs/{orgId}", f.org("")...).Do().Expect(http.StatusNotFound)
	if items, _ := itemsOf(t, c.As(admin).Route("GET /v1/orgs").Do().Expect(http.StatusOK)); len(items) != 0 {
		t.Fatalf("alice still lists %v", items)
	}
	c.As(developer).Route("DELETE /v1/orgs/{orgId}/members/{userId}", path("nobody")...).Do().Expect(http.StatusNotFound)
}

func TestPagination(t *testing.T) {
	f := newFixture(t)
	c := f.api
	for _, name := range []string{"R1", "R2", "R3", "R4"} {
		f.createRole(name, nil)
	}
	// 3 built-in + Nothing + 4 = 8 roles, pages of 3.
	seen := map[string]bool{}
	var cursor *string
	pages := 0
	for {
		call := c.As(admin).Route("GET /v1/orgs/{orgId}/roles", f.org("")...).Query("limit", "3")
		if cursor != nil {
			call = call.Query("cursor", *cursor)
		}
		items, next := itemsOf(t, call.Do().Expect(http.StatusOK))
		pages++
		if len(items) > 3 {
			t.Fatalf("page of %d", len(items))
		}
		for _, id := range column(items, "id") {
			if seen[id] {
				t.Fatalf("role %s on two pages", id)
			}
			seen[id] = true
		}
		if next == nil {
			break
		}
		cursor = next
		if pages > 5 {
			t.Fatal("pagination does not end")
		}
	}
	if len(seen) != 8 || pages != 3 {
		t.Fatalf("saw %d roles in %d pages", len(seen), pages)
	}

	_, first := itemsOf(t, c.As(admin).Route("GET /v1/orgs/{orgId}/roles", f.org("")...).Query("limit", "2").Do().Expect(http.StatusOK))
	tampered := "x" + (*first)[1:]
	res := c.As(admin).Route("GET /v1/orgs/{orgId}/roles", f.org("")...).Query("cursor", tampered).Do().Expect(http.StatusBadRequest)
	mustContain(t, fieldsOf(t, res), "cursor")
	// A cursor of one list is refused by another list and another organisation.
	c.As(admin).Route("GET /v1/orgs/{orgId}/members", f.org("")...).Query("cursor", *first).Do().Expect(http.StatusBadRequest)
	other := f.createOrg(admin, "Other")
	c.As(admin).Route("GET /v1/orgs/{orgId}/roles", "orgId", other).Query("cursor", *first).Do().Expect(http.StatusBadRequest)
}
