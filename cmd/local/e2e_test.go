package main

import (
	"bytes"
	"cmp"
	"context"
	"encoding/base64"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/dflow-sh/cloud-accounts/shared/samtemplate"
)

// startLocalAPI runs the whole local API (build, processes, gateway) for a
// template and serves it on a loopback port.
func startLocalAPI(t *testing.T, opts options) *httptest.Server {
	t.Helper()
	out := testOutput(t)
	if opts.ParentEnv == nil {
		opts.ParentEnv = envMap(os.Environ())
	}
	if opts.StateDir == "" {
		opts.StateDir = t.TempDir()
	}
	opts.Output = out
	opts.Log = slog.New(slog.NewJSONHandler(out, nil))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	api, err := newLocalAPI(ctx, opts)
	if err != nil {
		t.Fatalf("start local API: %v", err)
	}
	t.Cleanup(api.Close)
	srv := httptest.NewServer(api.Handler)
	t.Cleanup(srv.Close)
	return srv
}

// fixtureTemplate is testdata/template.yaml with its functions built from
// testdata/echo.
func fixtureTemplate(t *testing.T) *samtemplate.Template {
	t.Helper()
	tpl, err := samtemplate.Load("testdata/template.yaml")
	if err != nil {
		t.Fatal(err)
	}
	for i := range tpl.Functions {
		tpl.Functions[i].Dir = filepath.Join("testdata", "echo")
	}
	return tpl
}

type client struct {
	t    *testing.T
	base string
}

type response struct {
	status int
	header http.Header
	body   []byte
}

func (c client) do(method, path, token, contentType string, body []byte) response {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, bytes.NewReader(body))
	if err != nil {
		c.t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		c.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		c.t.Fatal(err)
	}
	return response{resp.StatusCode, resp.Header, b}
}

func (c client) token(sub, email string) string {
	c.t.Helper()
	r := c.do("POST", "/_local/token", "", "application/json", []byte(`{"sub":"`+sub+`","email":"`+email+`"}`))
	var out struct{ Token string }
	if r.status != 200 || json.Unmarshal(r.body, &out) != nil || out.Token == "" {
		c.t.Fatalf("token: %d %s", r.status, r.body)
	}
	return out.Token
}

func expect(t *testing.T, what string, r response, status int, body string) {
	t.Helper()
	if r.status != status {
		t.Errorf("%s: status %d, want %d (body %s)", what, r.status, status, r.body)
	}
	if body != "" && strings.TrimSpace(string(r.body)) != body {
		t.Errorf("%s: body %s, want %s", what, r.body, body)
	}
}

// echoed is what testdata/echo answers to an HTTP event.
type echoed struct {
	RouteKey       string            `json:"routeKey"`
	PathParameters map[string]string `json:"pathParameters"`
	Claims         map[string]string `json:"claims"`
	Env            map[string]string `json:"env"`
	Event          events.APIGatewayV2HTTPRequest
}

func TestFixtureEndToEnd(t *testing.T) {
	envPath := writeFile(t, "env.json", `{"Parameters": {"STAGE": "local"}, "EchoFunction": {"ECHO_NAME": "echo"}}`)
	srv := startLocalAPI(t, options{
		Root:        ".",
		Template:    fixtureTemplate(t),
		EnvPath:     envPath,
		EnvRequired: true,
		// Nothing in the fixture calls AWS; an endpoint keeps moto out of it.
		Endpoint: "http://127.0.0.1:9",
	})
	c := client{t, srv.URL}
	token := c.token("alice", "alice@example.com")

	t.Run("authorised call", func(t *testing.T) {
		r := c.do("GET", "/v1/things/t1?x=1&x=2", token, "", nil)
		expect(t, "GET /v1/things/t1", r, 200, "")
		var got echoed
		if err := json.Unmarshal(r.body, &got); err != nil {
			t.Fatalf("body %s: %v", r.body, err)
		}
		if got.RouteKey != "GET /v1/things/{thingId}" || got.PathParameters["thingId"] != "t1" {
			t.Errorf("route = %q %v", got.RouteKey, got.PathParameters)
		}
		if got.Claims["sub"] != "alice" || got.Claims["email"] != "alice@example.com" || got.Claims["iss"] != tokenIssuer {
			t.Errorf("claims = %v", got.Claims)
		}
		if got.Event.QueryStringParameters["x"] != "1,2" || got.Event.RequestContext.Stage != "$default" {
			t.Errorf("event = %+v", got.Event)
		}
		wantEnv := map[string]string{
			"STAGE": "local", "GREETING": "hello", "ECHO_NAME": "echo",
			"REGION_ARN":               "arn:aws:lambda:" + cmp.Or(os.Getenv("AWS_REGION"), os.Getenv("AWS_DEFAULT_REGION"), "us-east-1") + ":123456789012",
			"AWS_LAMBDA_FUNCTION_NAME": "EchoFunction", "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "256",
			"AWS_LAMBDA_FUNCTION_VERSION": "$LATEST", "AWS_LAMBDA_LOG_FORMAT": "JSON",
		}
		if !reflect.DeepEqual(got.Env, wantEnv) {
			t.Errorf("env = %v", got.Env)
		}
		if cookies := r.header.Values("Set-Cookie"); len(cookies) != 2 {
			t.Errorf("Set-Cookie = %q", cookies)
		}
		if v := r.header.Values("X-Echo"); !reflect.DeepEqual(v, []string{"a", "b"}) {
			t.Errorf("X-Echo = %q", v)
		}
	})

	t.Run("binary body through a greedy ANY route", func(t *testing.T) {
		r := c.do("PUT", "/v1/files/a/b.bin", token, "application/octet-stream", []byte{0, 1, 2, 255})
		expect(t, "PUT /v1/files/a/b.bin", r, 200, "")
		var got echoed
		if err := json.Unmarshal(r.body, &got); err != nil {
			t.Fatal(err)
		}
		if got.RouteKey != "ANY /v1/files/{path+}" || got.PathParameters["path"] != "a/b.bin" {
			t.Errorf("route = %q %v", got.RouteKey, got.PathParameters)
		}
		if !got.Event.IsBase64Encoded || got.Event.Body != base64.StdEncoding.EncodeToString([]byte{0, 1, 2, 255}) {
			t.Errorf("body = %q base64=%v", got.Event.Body, got.Event.IsBase64Encoded)
		}
	})

	t.Run("401 without or with a bad token", func(t *testing.T) {
		expect(t, "no token", c.do("GET", "/v1/things/t1", "", "", nil), 401, `{"message":"Unauthorized"}`)
		expect(t, "bad token", c.do("GET", "/v1/things/t1", token+"x", "", nil), 401, `{"message":"Unauthorized"}`)
	})

	t.Run("route without auth", func(t *testing.T) {
		r := c.do("GET", "/health", "", "", nil)
		expect(t, "GET /health", r, 200, "")
		var got echoed
		if err := json.Unmarshal(r.body, &got); err != nil || got.Claims != nil {
			t.Errorf("claims on a public route: %s", r.body)
		}
	})

	t.Run("404", func(t *testing.T) {
		expect(t, "unknown path", c.do("GET", "/v1/nope", token, "", nil), 404, `{"message":"Not Found"}`)
		expect(t, "unknown method", c.do("DELETE", "/v1/things/t1", token, "", nil), 404, `{"message":"Not Found"}`)
	})

	t.Run("inferred response", func(t *testing.T) {
		expect(t, "plain", c.do("GET", "/v1/things/plain", token, "", nil), 200, `{"plain":true}`)
	})

	t.Run("function error, crash, timeout", func(t *testing.T) {
		expect(t, "fail", c.do("GET", "/v1/things/fail", token, "", nil), 500, `{"message":"Internal Server Error"}`)
		expect(t, "crash", c.do("GET", "/v1/things/crash", token, "", nil), 502, `{"message":"Internal Server Error"}`)
		expect(t, "after crash", c.do("GET", "/v1/things/t2", token, "", nil), 200, "")
		expect(t, "slow", c.do("GET", "/v1/slow", token, "", nil), 503, `{"message":"Service Unavailable"}`)
		expect(t, "after timeout", c.do("GET", "/v1/slow?fast=1", token, "", nil), 200, "")
	})

	t.Run("schedules", func(t *testing.T) {
		expect(t, "kebab name", c.do("POST", "/_local/schedules/echo-sweep", "", "", nil), 200, `{"ran":{"job":"sweep"}}`)
		expect(t, "event name", c.do("POST", "/_local/schedules/EchoSweep", "", "", nil), 200, `{"ran":{"job":"sweep"}}`)
		expect(t, "empty input", c.do("POST", "/_local/schedules/nightly-check", "", "", nil), 200, `{"ran":{}}`)
		r := c.do("POST", "/_local/schedules/nope", "", "", nil)
		expect(t, "unknown", r, 404, "")
		if !strings.Contains(string(r.body), "echo-sweep") || !strings.Contains(string(r.body), "nightly-check") {
			t.Errorf("404 does not list the schedules: %s", r.body)
		}
		r = c.do("GET", "/_local/schedules", "", "", nil)
		var list struct{ Schedules []schedule }
		if err := json.Unmarshal(r.body, &list); err != nil || len(list.Schedules) != 2 {
			t.Errorf("list: %s", r.body)
		}
	})

	t.Run("token endpoint", func(t *testing.T) {
		expect(t, "no sub", c.do("POST", "/_local/token", "", "", []byte(`{}`)), 400, "")
		expect(t, "unknown field", c.do("POST", "/_local/token", "", "", []byte(`{"sub":"a","role":"admin"}`)), 400, "")
		r := c.do("GET", "/_local/jwks.json", "", "", nil)
		if r.status != 200 || !strings.Contains(string(r.body), `"RS256"`) {
			t.Errorf("jwks: %d %s", r.status, r.body)
		}
	})
}

func TestStartupFailsOnUnresolvedVariable(t *testing.T) {
	opts := options{
		Root:        ".",
		Template:    fixtureTemplate(t),
		EnvPath:     writeFile(t, "env.json", `{"Parameters": {}}`),
		EnvRequired: true,
		Endpoint:    "http://127.0.0.1:9",
		ParentEnv:   map[string]string{},
		StateDir:    t.TempDir(),
		Output:      testOutput(t),
		Log:         discardLogger(),
	}
	_, err := newLocalAPI(context.Background(), opts)
	if err == nil || !strings.Contains(err.Error(), "ECHO_NAME of EchoFunction") || !strings.Contains(err.Error(), "STAGE of") {
		t.Fatalf("err = %v", err)
	}
}
