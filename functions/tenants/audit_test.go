package main

import (
	"net/http"
	"strings"
	"testing"
)

func TestAuditTrail(t *testing.T) {
	f := newFixture(t)
	c := f.api
	// Allowed, denied (member without permission), denied (stranger), failed.
	c.As(admin).Route("PATCH /v1/orgs/{orgId}", f.org("")...).JSON(map[string]any{"name": "Renamed"}).Do().Expect(http.StatusOK)
	c.As(viewer).Route("PATCH /v1/orgs/{orgId}", f.org("")...).JSON(map[string]any{"name": "Mine"}).Do().Expect(http.StatusForbidden)
	c.As(stranger).Route("DELETE /v1/orgs/{orgId}/members/{userId}", f.org("", "userId", admin)...).Do().Expect(http.StatusNotFound)
	c.As(admin).Route("DELETE /v1/orgs/{orgId}/members/{userId}", f.org("", "userId", admin)...).Do().Expect(http.StatusConflict)
	// Reads are not audited.
	c.As(admin).Route("GET /v1/orgs/{orgId}", f.org("")...).Do().Expect(http.StatusOK)

	items, _ := itemsOf(t, c.As(viewer).Route("GET /v1/orgs/{orgId}/audit", f.org("")...).Query("limit", "4").Do().Expect(http.StatusOK))
	type want struct{ actor, action, outcome, code string }
	wants := []want{
		{admin, "members.delete", "failure", "last_admin"},
		{stranger, "members.delete", "denied", "not_found"},
		{viewer, "orgs.update", "denied", "permission_denied"},
		{admin, "orgs.update", "success", ""},
	}
	if len(items) != len(wants) {
		t.Fatalf("audit = %v", items)
	}
	for i, w := range wants {
		e := items[i]
		if e["actor"] != w.actor || e["action"] != w.action || e["outcome"] != w.outcome || (w.code != "" && e["code"] != w.code) {
			t.Errorf("event %d = %v, want %+v", i, e, w)
		}
		if e["requestId"] == "" || e["at"] == "" || e["orgId"] != f.orgID || !strings.HasPrefix(e["target"].(string), "/v1/orgs/"+f.orgID) {
			t.Errorf("event %d lacks context: %v", i, e)
		}
	}
	// Newest first, all the way back to the organisation's creation.
	all, _ := itemsOf(t, c.As(admin).Route("GET /v1/orgs/{orgId}/audit", f.org("")...).Query("limit", "100").Do().Expect(http.StatusOK))
	last := all[len(all)-1]
	if last["action"] != "orgs.create" || last["target"] != "/v1/orgs/"+f.orgID {
		t.Fatalf("oldest event = %v", last)
	}
	for i := 1; i < len(all); i++ {
		if all[i-1]["at"].(string) < all[i]["at"].(string) {
			t.Fatalf("not newest first at %d: %v then %v", i, all[i-1]["at"], all[i]["at"])
		}
	}
	// A stranger's attempt on an organisation that does not exist leaves no trail.
	c.As(stranger).Route("PATCH /v1/orgs/{orgId}", "orgId", "org_aaaaaaaaaaaaaaaaaaaaaaaaaa").JSON(map[string]any{"name": "x"}).Do().Expect(http.StatusNotFound)
	c.As(admin).Route("GET /v1/orgs/{orgId}/audit", "orgId", "org_aaaaaaaaaaaaaaaaaaaaaaaaaa").Do().Expect(http.StatusNotFound)
}

func TestOneLogLinePerRequest(t *testing.T) {
	f := newFixture(t)
	before := len(f.env.Logs.Lines(t))
	r := f.api.As(admin).Route("GET /v1/orgs/{orgId}/roles", f.org("")...).Header("Authorization", "Bearer eyJhbGciOiJSUzI1NiJ9.c2VjcmV0.c2ln").Do().Expect(http.StatusOK)
	lines := f.env.Logs.Lines(t)[before:]
	if len(lines) != 1 {
		t.Fatalf("%d log lines: %v", len(lines), lines)
	}
	l := lines[0]
	if l["requestId"] != r.Header["X-Request-Id"] || l["orgId"] != f.orgID || l["route"] != "GET /v1/orgs/{orgId}/roles" || l["status"] != float64(200) || l["level"] != "INFO" {
		t.Fatalf("log line = %v", l)
	}
	if _, ok := l["durationMs"].(float64); !ok {
		t.Fatalf("no duration: %v", l)
	}
	if strings.Contains(f.env.Logs.String(), "c2VjcmV0") {
		t.Fatal("the bearer token reached the log")
	}
}
