package main

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/dflow-sh/cloud-accounts/shared/samtemplate"
)

const routesTemplate = `
Resources:
  TenantsFunction:
    Type: AWS::Serverless::Function
    Properties:
      Events:
        ListOrgs: {Type: HttpApi, Properties: {Method: get, Path: /v1/orgs}}
        CreateOrg: {Type: HttpApi, Properties: {Method: post, Path: /v1/orgs}}
        GetOrg: {Type: HttpApi, Properties: {Method: get, Path: "/v1/orgs/{orgId}"}}
        Me: {Type: HttpApi, Properties: {Method: get, Path: /v1/orgs/me}}
        Roles: {Type: HttpApi, Properties: {Method: get, Path: "/v1/orgs/{orgId}/roles/{roleId}"}}
        Files: {Type: HttpApi, Properties: {Method: any, Path: "/v1/files/{path+}"}}
        FilesGet: {Type: HttpApi, Properties: {Method: get, Path: "/v1/files/special/{name}"}}
        Health: {Type: HttpApi, Properties: {Method: get, Path: /health, Auth: {Authorizer: NONE}}}
`

func testRoutes(t *testing.T) []route {
	t.Helper()
	tpl, err := samtemplate.Parse([]byte(routesTemplate))
	if err != nil {
		t.Fatal(err)
	}
	routes, err := compileRoutes(tpl)
	if err != nil {
		t.Fatal(err)
	}
	return routes
}

func TestMatchRoute(t *testing.T) {
	routes := testRoutes(t)
	tests := []struct {
		method, path string
		wantKey      string // "" = no match (404)
		wantParams   map[string]string
	}{
		{"GET", "/v1/orgs", "GET /v1/orgs", nil},
		{"POST", "/v1/orgs", "POST /v1/orgs", nil},
		{"GET", "/v1/orgs/org_1", "GET /v1/orgs/{orgId}", map[string]string{"orgId": "org_1"}},
		{"GET", "/v1/orgs/me", "GET /v1/orgs/me", nil}, // a literal beats {orgId}
		{"GET", "/v1/orgs/o1/roles/r2", "GET /v1/orgs/{orgId}/roles/{roleId}", map[string]string{"orgId": "o1", "roleId": "r2"}},
		{"GET", "/v1/files/a/b/c.txt", "ANY /v1/files/{path+}", map[string]string{"path": "a/b/c.txt"}},
		{"DELETE", "/v1/files/x", "ANY /v1/files/{path+}", map[string]string{"path": "x"}},
		{"GET", "/v1/files/special/x", "GET /v1/files/special/{name}", map[string]string{"name": "x"}},
		{"PUT", "/v1/files/special/x", "ANY /v1/files/{path+}", map[string]string{"path": "special/x"}},
		{"GET", "/v1/files/", "", nil},  // greedy needs at least one character
		{"GET", "/v1/files", "", nil},   // and its segment
		{"DELETE", "/v1/orgs", "", nil}, // API Gateway answers 404, not 405
		{"GET", "/v1/orgs/", "", nil},   // {orgId} must not be empty
		{"GET", "/v1/orgs/o1/extra", "", nil},
		{"GET", "/nope", "", nil},
		{"GET", "/health", "GET /health", nil},
	}
	for _, tt := range tests {
		t.Run(tt.method+" "+tt.path, func(t *testing.T) {
			r, params, ok := matchRoute(routes, tt.method, tt.path)
			if tt.wantKey == "" {
				if ok {
					t.Fatalf("matched %q, want no match", r.key)
				}
				return
			}
			if !ok {
				t.Fatalf("no match, want %q", tt.wantKey)
			}
			if r.key != tt.wantKey || r.function != "TenantsFunction" {
				t.Errorf("route = %q (%s), want %q", r.key, r.function, tt.wantKey)
			}
			if !reflect.DeepEqual(params, tt.wantParams) {
				t.Errorf("params = %v, want %v", params, tt.wantParams)
			}
		})
	}
}

func TestRouteAuth(t *testing.T) {
	for _, r := range testRoutes(t) {
		if want := r.key != "GET /health"; r.auth != want {
			t.Errorf("%s: auth = %v, want %v", r.key, r.auth, want)
		}
	}
}

func TestParseRoutePathRejectsGreedyInTheMiddle(t *testing.T) {
	if _, err := parseRoutePath("/v1/{path+}/x"); err == nil {
		t.Fatal("want an error")
	}
}

func TestBuildEvent(t *testing.T) {
	now := time.Date(2025, 3, 12, 19, 3, 58, 0, time.UTC)
	rt := route{key: "POST /v1/orgs/{orgId}", method: "POST", function: "TenantsFunction"}

	req := httptest.NewRequest("POST", "http://127.0.0.1:3000/v1/orgs/org%201?b=2&a=1&a=x%20y", strings.NewReader(`{"name":"Acme"}`))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "curl/8")
	req.Header.Add("X-Multi", "one")
	req.Header.Add("X-Multi", "two")
	req.Header.Add("Cookie", "a=1; b=2")
	req.Header.Add("Cookie", "c=3")
	body := []byte(`{"name":"Acme"}`)
	claims := map[string]string{"sub": "alice"}

	ev := buildEvent(req, body, rt, map[string]string{"orgId": "org 1"}, claims, []string{"orgs:read"}, "REQ=", now)

	checks := map[string][2]any{
		"version":       {ev.Version, "2.0"},
		"routeKey":      {ev.RouteKey, "POST /v1/orgs/{orgId}"},
		"ctx.routeKey":  {ev.RequestContext.RouteKey, "POST /v1/orgs/{orgId}"},
		"rawPath":       {ev.RawPath, "/v1/orgs/org 1"},
		"rawQuery":      {ev.RawQueryString, "b=2&a=1&a=x%20y"},
		"body":          {ev.Body, `{"name":"Acme"}`},
		"base64":        {ev.IsBase64Encoded, false},
		"content-type":  {ev.Headers["content-type"], "application/json"},
		"x-multi":       {ev.Headers["x-multi"], "one,two"},
		"host":          {ev.Headers["host"], "127.0.0.1:3000"},
		"method":        {ev.RequestContext.HTTP.Method, "POST"},
		"path":          {ev.RequestContext.HTTP.Path, "/v1/orgs/org 1"},
		"protocol":      {ev.RequestContext.HTTP.Protocol, "HTTP/1.1"},
		"userAgent":     {ev.RequestContext.HTTP.UserAgent, "curl/8"},
		"sourceIp":      {ev.RequestContext.HTTP.SourceIP, "192.0.2.1"},
		"accountId":     {ev.RequestContext.AccountID, "123456789012"},
		"apiId":         {ev.RequestContext.APIID, "local"},
		"stage":         {ev.RequestContext.Stage, "$default"},
		"requestId":     {ev.RequestContext.RequestID, "REQ="},
		"domainName":    {ev.RequestContext.DomainName, "127.0.0.1"},
		"time":          {ev.RequestContext.Time, "12/Mar/2025:19:03:58 +0000"},
		"timeEpoch":     {ev.RequestContext.TimeEpoch, now.UnixMilli()},
		"claims.sub":    {ev.RequestContext.Authorizer.JWT.Claims["sub"], "alice"},
		"scopes":        {strings.Join(ev.RequestContext.Authorizer.JWT.Scopes, " "), "orgs:read"},
		"orgId":         {ev.PathParameters["orgId"], "org 1"},
		"query a":       {ev.QueryStringParameters["a"], "1,x y"},
		"query b":       {ev.QueryStringParameters["b"], "2"},
		"cookies":       {strings.Join(ev.Cookies, "|"), "a=1|b=2|c=3"},
		"cookie header": {ev.Headers["cookie"], ""},
	}
	for name, c := range checks {
		if c[0] != c[1] {
			t.Errorf("%s = %#v, want %#v", name, c[0], c[1])
		}
	}
	for k := range ev.Headers {
		if k != strings.ToLower(k) {
			t.Errorf("header %q is not lower case", k)
		}
	}
}

func TestBuildEventBinaryBodyAndNoAuth(t *testing.T) {
	bin := []byte{0xff, 0x00, 0x10}
	for _, tc := range []struct {
		contentType string
		body        []byte
		wantBase64  bool
	}{
		{"application/octet-stream", []byte("abc"), true},
		{"image/png", bin, true},
		{"text/plain; charset=utf-8", []byte("héllo"), false},
		{"application/vnd.api+json", []byte(`{}`), false},
		{"", []byte("plain"), false},
		{"", bin, true},
	} {
		req := httptest.NewRequest("PUT", "/v1/files/x", nil)
		if tc.contentType != "" {
			req.Header.Set("Content-Type", tc.contentType)
		}
		ev := buildEvent(req, tc.body, route{key: "ANY /v1/files/{path+}"}, nil, nil, nil, "id", time.Now())
		if ev.IsBase64Encoded != tc.wantBase64 {
			t.Errorf("%q: isBase64Encoded = %v", tc.contentType, ev.IsBase64Encoded)
		}
		got := []byte(ev.Body)
		if ev.IsBase64Encoded {
			var err error
			if got, err = base64.StdEncoding.DecodeString(ev.Body); err != nil {
				t.Fatal(err)
			}
		}
		if string(got) != string(tc.body) {
			t.Errorf("%q: body = %q, want %q", tc.contentType, got, tc.body)
		}
		if ev.RequestContext.Authorizer != nil {
			t.Errorf("authorizer set on a route without auth")
		}
		if ev.QueryStringParameters != nil || ev.PathParameters != nil || ev.Cookies != nil {
			t.Errorf("empty maps should be omitted: %+v", ev)
		}
	}
}

func TestWriteFunctionResponse(t *testing.T) {
	tests := []struct {
		name       string
		result     string
		wantStatus int
		wantBody   string
		wantHeader map[string][]string
	}{
		{
			name:       "structured",
			result:     `{"statusCode":201,"headers":{"content-type":"application/json","x-one":"1"},"multiValueHeaders":{"x-many":["a","b"]},"cookies":["s=1","t=2"],"body":"{\"id\":\"x\"}"}`,
			wantStatus: 201, wantBody: `{"id":"x"}`,
			wantHeader: map[string][]string{"Content-Type": {"application/json"}, "X-One": {"1"}, "X-Many": {"a", "b"}, "Set-Cookie": {"s=1", "t=2"}},
		},
		{
			name:       "base64 body",
			result:     `{"statusCode":200,"headers":{"content-type":"application/octet-stream"},"body":"aGk=","isBase64Encoded":true}`,
			wantStatus: 200, wantBody: "hi",
		},
		{
			name:       "no statusCode: inferred 200 with the JSON as body",
			result:     `{"ok":true}`,
			wantStatus: 200, wantBody: `{"ok":true}`,
			wantHeader: map[string][]string{"Content-Type": {"application/json"}},
		},
		{name: "a JSON string", result: `"hello"`, wantStatus: 200, wantBody: `"hello"`},
		{name: "not JSON", result: `hello`, wantStatus: 500, wantBody: `{"message":"Internal Server Error"}` + "\n"},
		{name: "bad status", result: `{"statusCode":0}`, wantStatus: 500, wantBody: `{"message":"Internal Server Error"}` + "\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := httptest.NewRecorder()
			status, _ := writeFunctionResponse(rec, []byte(tt.result))
			if status != tt.wantStatus || rec.Code != tt.wantStatus {
				t.Errorf("status = %d/%d, want %d", status, rec.Code, tt.wantStatus)
			}
			if rec.Body.String() != tt.wantBody {
				t.Errorf("body = %q, want %q", rec.Body.String(), tt.wantBody)
			}
			for k, want := range tt.wantHeader {
				if got := rec.Header().Values(k); !reflect.DeepEqual(got, want) {
					t.Errorf("header %s = %q, want %q", k, got, want)
				}
			}
		})
	}
}

// fakeInvoker is a function that answers from a Go func.
type fakeInvoker struct {
	invoke func(ctx context.Context, payload []byte) ([]byte, error)
}

func (f fakeInvoker) Invoke(ctx context.Context, payload []byte) ([]byte, error) {
	return f.invoke(ctx, payload)
}

func TestGatewayErrors(t *testing.T) {
	iss := testIssuer(t)
	token, err := iss.issue("alice", "", time.Hour, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	var called bool
	var fail error
	gw := &gateway{
		routes: testRoutes(t),
		auth:   iss,
		log:    discardLogger(),
		now:    time.Now,
		functions: map[string]invoker{"TenantsFunction": fakeInvoker{func(ctx context.Context, payload []byte) ([]byte, error) {
			called = true
			return []byte(`{"statusCode":200,"body":"ok"}`), fail
		}}},
	}
	tests := []struct {
		name, method, path, auth string
		body                     string
		fail                     error
		wantStatus               int
		wantMessage              string
		wantCalled               bool
	}{
		{"unknown route", "GET", "/nope", "Bearer " + token, "", nil, 404, "Not Found", false},
		{"no token", "GET", "/v1/orgs", "", "", nil, 401, "Unauthorized", false},
		{"bad token", "GET", "/v1/orgs", "Bearer x.y.z", "", nil, 401, "Unauthorized", false},
		{"no auth needed", "GET", "/health", "", "", nil, 200, "", true},
		{"token without Bearer prefix", "GET", "/v1/orgs", token, "", nil, 200, "", true},
		{"function error", "GET", "/v1/orgs", "Bearer " + token, "", &FunctionError{Type: "errorString", Message: "boom"}, 500, "Internal Server Error", true},
		{"crash", "GET", "/v1/orgs", "Bearer " + token, "", ErrCrashed, 502, "Internal Server Error", true},
		{"timeout", "GET", "/v1/orgs", "Bearer " + token, "", ErrTimeout, 503, "Service Unavailable", true},
		{"body over 10 MB", "POST", "/v1/orgs", "Bearer " + token, strings.Repeat("x", maxRequestBody+1), nil, 413, "Request Entity Too Large", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			called, fail = false, tt.fail
			req := httptest.NewRequest(tt.method, tt.path, strings.NewReader(tt.body))
			if tt.auth != "" {
				req.Header.Set("Authorization", tt.auth)
			}
			rec := httptest.NewRecorder()
			gw.ServeHTTP(rec, req)
			if rec.Code != tt.wantStatus {
				t.Errorf("status = %d, want %d (body %s)", rec.Code, tt.wantStatus, rec.Body)
			}
			if tt.wantMessage != "" {
				var got struct{ Message string }
				if err := json.Unmarshal(rec.Body.Bytes(), &got); err != nil || got.Message != tt.wantMessage {
					t.Errorf("body = %s, want message %q", rec.Body, tt.wantMessage)
				}
			}
			if called != tt.wantCalled {
				t.Errorf("function called = %v, want %v", called, tt.wantCalled)
			}
			if rec.Header().Get("Apigw-Requestid") == "" {
				t.Error("no apigw-requestid header")
			}
			if tt.wantStatus == http.StatusUnauthorized && rec.Header().Get("WWW-Authenticate") == "" {
				t.Error("401 without WWW-Authenticate")
			}
		})
	}
}
