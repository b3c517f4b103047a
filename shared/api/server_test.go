package api

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"

	"github.com/dflow-sh/cloud-accounts/shared/audit"
	"github.com/dflow-sh/cloud-accounts/shared/fault"
	"github.com/dflow-sh/cloud-accounts/shared/logging"
	"github.com/dflow-sh/cloud-accounts/shared/tenancy"
)

const org = "org_aaaaaaaaaaaaaaaaaaaaaaaaaa"

// fakeAuth is a membership table in memory.
type fakeAuth struct {
	roles map[string]tenancy.Role // user → role in org
	err   error
}

func (f fakeAuth) MemberRole(_ context.Context, orgID, userID string) (tenancy.Role, error) {
	if f.err != nil {
		return tenancy.Role{}, f.err
	}
	r, ok := f.roles[userID]
	if !ok || orgID != org {
		return tenancy.Role{}, fault.NotFoundf("member_not_found", "no member")
	}
	return r, nil
}

func (f fakeAuth) OrgExists(_ context.Context, orgID string) (bool, error) { return orgID == org, nil }

// recorder keeps audit events.
type recorder struct {
	mu     sync.Mutex
	events []audit.Event
}

func (r *recorder) Record(_ context.Context, e audit.Event) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.events = append(r.events, e)
	return nil
}

// memIdem is an in-memory idempotency store with the real one's contract.
type memIdem struct {
	mu   sync.Mutex
	recs map[IdempotencyKey]*memRec
}

type memRec struct {
	fp   string
	resp *StoredResponse
}

func (m *memIdem) Begin(_ context.Context, k IdempotencyKey, fp string, _ time.Duration) (*StoredResponse, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.recs == nil {
		m.recs = map[IdempotencyKey]*memRec{}
	}
	r, ok := m.recs[k]
	switch {
	case !ok:
		m.recs[k] = &memRec{fp: fp}
		return nil, nil
	case r.fp != fp:
		return nil, ErrKeyReused
	case r.resp == nil:
		return nil, ErrInProgress
	}
	return r.resp, nil
}

func (m *memIdem) Finish(_ context.Context, k IdempotencyKey, resp StoredResponse) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.recs[k].resp = &resp
	return nil
}

func (m *memIdem) Abandon(_ context.Context, k IdempotencyKey) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.recs, k)
	return nil
}

func viewerRole() tenancy.Role {
	for _, r := range tenancy.BuiltinRoles(org, time.Now()) {
		if r.ID == tenancy.ViewerRoleID {
			return r
		}
	}
	panic("no viewer")
}

type harness struct {
	srv   *Server
	audit *recorder
	idem  *memIdem
	logs  *bytes.Buffer
	calls int
}

func newHarness(t *testing.T, routes ...Route) *harness {
	t.Helper()
	h := &harness{audit: &recorder{}, idem: &memIdem{}, logs: &bytes.Buffer{}}
	auth := fakeAuth{roles: map[string]tenancy.Role{"vic": viewerRole()}}
	var err error
	h.srv, err = NewServer(Deps{Authorizer: auth, Auditor: h.audit, Idempotency: h.idem, Logger: logging.New(h.logs, "INFO")}, routes)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func event(user, routeKey, path, body string, headers map[string]string) events.APIGatewayV2HTTPRequest {
	e := events.APIGatewayV2HTTPRequest{RouteKey: routeKey, RawPath: path, Body: body, Headers: map[string]string{}}
	for k, v := range headers {
		e.Headers[k] = v
	}
	e.RequestContext.RequestID = "req-1"
	if strings.Contains(routeKey, "{orgId}") {
		e.PathParameters = map[string]string{"orgId": org}
	}
	if user != "" {
		e.RequestContext.Authorizer = &events.APIGatewayV2HTTPRequestContextAuthorizerDescription{
			JWT: &events.APIGatewayV2HTTPRequestContextAuthorizerJWTDescription{Claims: map[string]string{"sub": user}},
		}
	}
	return e
}

func TestNewServerRefusesUnsafeRoutes(t *testing.T) {
	h := func(context.Context, *Request) (*Response, error) { return OK(nil), nil }
	deps := Deps{Authorizer: fakeAuth{}, Auditor: &recorder{}, Idempotency: &memIdem{}, Logger: logging.New(&bytes.Buffer{}, "INFO")}
	bad := []Route{
		{Key: "GET /v1/things", Handler: h},                                                         // no permission
		{Key: "POST /v1/orgs/{orgId}/x", Permission: AnyMember(), Handler: h},                       // no audit action
		{Key: "GET /v1/x", Permission: AnyMember(), Handler: h},                                     // org permission, no org
		{Key: "GET /v1/orgs/{orgId}/things/{thingId}", Permission: AnyMember(), Handler: h},         // unchecked param
		{Key: "GET v1/orgs", Permission: AnyUser(), Handler: h},                                     // malformed key
		{Key: "GET /v1/orgs/{orgId}", Permission: Allow(tenancy.Roles, tenancy.Read), Handler: nil}, // no handler
	}
	for _, r := range bad {
		if _, err := NewServer(deps, []Route{r}); err == nil {
			t.Errorf("route %q accepted", r.Key)
		}
	}
	ok := Route{Key: "GET /v1/orgs", Permission: AnyUser(), Handler: h}
	if _, err := NewServer(deps, []Route{ok, ok}); err == nil {
		t.Error("duplicate route accepted")
	}
}

func TestAuthorization(t *testing.T) {
	called := 0
	h := func(context.Context, *Request) (*Response, error) {
		called++
		return OK(map[string]string{"ok": "yes"}), nil
	}
	hs := newHarness(t,
		Route{Key: "GET /v1/orgs/{orgId}/roles", Permission: Allow(tenancy.Roles, tenancy.Read), Handler: h},
		Route{Key: "POST /v1/orgs/{orgId}/roles", Permission: Allow(tenancy.Roles, tenancy.Create), Action: "roles.create", Handler: h},
		Route{Key: "PATCH /v1/orgs/{orgId}", Permission: AdminOnly(), Action: "orgs.update", Handler: h},
	)
	tests := []struct {
		user, route string
		status      int
	}{
		{"vic", "GET /v1/orgs/{orgId}/roles", 200},
		{"vic", "POST /v1/orgs/{orgId}/roles", 403},
		{"vic", "PATCH /v1/orgs/{orgId}", 403},
		{"eve", "GET /v1/orgs/{orgId}/roles", 404},
		{"", "GET /v1/orgs/{orgId}/roles", 401},
	}
	for _, tt := range tests {
		called = 0
		resp, _ := hs.srv.Handle(context.Background(), event(tt.user, tt.route, "/v1/orgs/"+org, `{}`, nil))
		if resp.StatusCode != tt.status {
			t.Errorf("%s %s: %d, want %d (%s)", tt.user, tt.route, resp.StatusCode, tt.status, resp.Body)
		}
		if (tt.status == 200) != (called == 1) {
			t.Errorf("%s %s: handler called %d times", tt.user, tt.route, called)
		}
		if resp.Headers["X-Request-Id"] != "req-1" {
			t.Errorf("no request id header: %v", resp.Headers)
		}
	}
	// Mutating attempts are audited as denied, reads are not audited.
	if len(hs.audit.events) != 2 {
		t.Fatalf("audit = %+v", hs.audit.events)
	}
	for _, e := range hs.audit.events {
		if e.Outcome != audit.Denied || e.ActorID != "vic" || e.Code != "permission_denied" {
			t.Errorf("audit event %+v", e)
		}
	}
}

func TestStoreFailureIsA500WithoutDetail(t *testing.T) {
	logs := &bytes.Buffer{}
	srv, err := NewServer(Deps{
		Authorizer: fakeAuth{err: errors.New("dynamodb: connection reset by 10.0.0.7")}, Auditor: &recorder{},
		Idempotency: &memIdem{}, Logger: logging.New(logs, "INFO"),
	}, []Route{{Key: "GET /v1/orgs/{orgId}", Permission: AnyMember(), Handler: func(context.Context, *Request) (*Response, error) { return OK(nil), nil }}})
	if err != nil {
		t.Fatal(err)
	}
	resp, _ := srv.Handle(context.Background(), event("vic", "GET /v1/orgs/{orgId}", "/v1/orgs/"+org, "", nil))
	if resp.StatusCode != 500 || strings.Contains(resp.Body, "10.0.0.7") || resp.Headers["Content-Type"] != "application/problem+json" {
		t.Fatalf("%d %s %v", resp.StatusCode, resp.Body, resp.Headers)
	}
	if !strings.Contains(logs.String(), "10.0.0.7") {
		t.Fatal("cause not logged")
	}
}

func TestIdempotencyPipeline(t *testing.T) {
	calls := 0
	fail := false
	h := func(_ context.Context, r *Request) (*Response, error) {
		r.OrgID = org
		calls++
		if fail {
			return nil, errors.New("boom")
		}
		return Created("/v1/x/1", map[string]int{"n": calls}), nil
	}
	hs := newHarness(t, Route{Key: "POST /v1/orgs", Permission: AnyUser(), Action: "orgs.create", Idempotent: true, Handler: h})
	send := func(user, key, body string) events.APIGatewayV2HTTPResponse {
		resp, _ := hs.srv.Handle(context.Background(), event(user, "POST /v1/orgs", "/v1/orgs", body, map[string]string{"idempotency-key": key}))
		return resp
	}
	first := send("vic", "a", `{"name":"x"}`)
	second := send("vic", "a", `{"name":"x"}`)
	if calls != 1 || first.Body != second.Body || second.Headers["Idempotent-Replayed"] != "true" || second.Headers["Location"] != "/v1/x/1" || second.StatusCode != 201 {
		t.Fatalf("calls %d\n%v %s\n%v %s", calls, first.Headers, first.Body, second.Headers, second.Body)
	}
	if r := send("vic", "a", `{"name":"y"}`); r.StatusCode != http.StatusUnprocessableEntity {
		t.Fatalf("reused key: %d", r.StatusCode)
	}
	// In progress: claim the key the way a concurrent request would.
	if _, err := hs.idem.Begin(context.Background(), IdempotencyKey{OrgID: "-", UserID: "vic", Key: "b"}, "other", time.Minute); err != nil {
		t.Fatal(err)
	}
	hs.idem.recs[IdempotencyKey{OrgID: "-", UserID: "vic", Key: "b"}].fp = fingerprint(&Request{RouteKey: "POST /v1/orgs", Event: &events.APIGatewayV2HTTPRequest{RawPath: "/v1/orgs"}, body: []byte(`{"name":"x"}`)})
	if r := send("vic", "b", `{"name":"x"}`); r.StatusCode != http.StatusConflict || !strings.Contains(r.Body, "idempotency_in_progress") {
		t.Fatalf("in progress: %d %s", r.StatusCode, r.Body)
	}
	// A 5xx frees the key: the retry runs the handler again.
	fail = true
	if r := send("vic", "c", `{}`); r.StatusCode != 500 {
		t.Fatalf("failure: %d", r.StatusCode)
	}
	fail = false
	before := calls
	if r := send("vic", "c", `{}`); r.StatusCode != 201 || calls != before+1 {
		t.Fatalf("retry after 5xx: %d, calls %d", r.StatusCode, calls-before)
	}
	// Replays are not audited twice. Refusals before the handler ran have no
	// organisation to be recorded in on this org-less route.
	var outcomes []string
	for _, e := range hs.audit.events {
		outcomes = append(outcomes, e.Outcome)
	}
	if strings.Join(outcomes, ",") != "success,failure,success" {
		t.Fatalf("audit outcomes = %v", outcomes)
	}
}

func TestCursorIsScoped(t *testing.T) {
	c := sealCursor("orgs/a/roles", `{"PK":"ORG#a"}`)
	if tok, err := openCursor("orgs/a/roles", c); err != nil || tok != `{"PK":"ORG#a"}` {
		t.Fatalf("round trip: %q %v", tok, err)
	}
	for name, bad := range map[string]string{
		"other scope": c,
		"garbage":     "%%%",
		"no mac":      strings.Split(c, ".")[0],
		"flipped":     flip(c),
	} {
		scope := "orgs/a/roles"
		if name == "other scope" {
			scope = "orgs/b/roles"
		}
		if _, err := openCursor(scope, bad); err == nil {
			t.Errorf("%s accepted", name)
		}
	}
}

func flip(s string) string {
	b := []byte(s)
	if b[0] == 'A' {
		b[0] = 'B'
	} else {
		b[0] = 'A'
	}
	return string(b)
}

func TestDecodeNamesTheField(t *testing.T) {
	type inner struct {
		Port int `json:"port"`
	}
	type body struct {
		Name  string  `json:"name"`
		Rules []inner `json:"rules"`
	}
	tests := map[string]string{
		`{"name": 1}`:                 "name",
		`{"rules": [{"port": "22"}]}`: "rules.port",
		`{"rules": [{"colour": 1}]}`:  "colour",
		`[]`:                          "body",
		`{"name":"a"}x`:               "body",
	}
	for in, field := range tests {
		r := &Request{body: []byte(in)}
		var v body
		err := r.Decode(&v)
		e, ok := fault.As(err)
		if !ok || len(e.Fields) != 1 || e.Fields[0].Field != field {
			t.Errorf("%s: %v, want field %s", in, err, field)
		}
	}
	r := &Request{body: []byte(`{"name":"a"}`)}
	var v body
	if err := r.Decode(&v); err != nil || v.Name != "a" {
		t.Fatalf("valid body: %v %+v", err, v)
	}
}
