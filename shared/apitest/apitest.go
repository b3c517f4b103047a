// Package apitest drives API functions in tests the way API Gateway does:
// payload 2.0 events with verified JWT claims, against a real DynamoDB
// table in the test process's moto server.
package apitest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"

	"github.com/dflow-sh/cloud-accounts/shared/config"
	"github.com/dflow-sh/cloud-accounts/shared/dynamo"
	"github.com/dflow-sh/cloud-accounts/shared/ids"
	"github.com/dflow-sh/cloud-accounts/shared/logging"
	"github.com/dflow-sh/cloud-accounts/shared/motoserver"
	"github.com/dflow-sh/cloud-accounts/shared/platform"
)

// Env is a platform over a fresh table, with its log captured.
type Env struct {
	*platform.Platform
	Logs *SyncBuffer
}

// NewEnv makes a fresh table in the shared moto server and a platform on it.
func NewEnv(t testing.TB) *Env {
	t.Helper()
	awsCfg := motoserver.TestConfig(t)
	table := "test-" + strings.ReplaceAll(ids.New("t"), "_", "-")
	if err := dynamo.EnsureTable(context.Background(), dynamodb.NewFromConfig(awsCfg), table); err != nil {
		t.Fatalf("create table: %v", err)
	}
	logs := &SyncBuffer{}
	cfg := config.Config{TableName: table, SecretPrefix: "dflow/test", Stage: "test", LogLevel: "DEBUG"}
	return &Env{Platform: platform.New(cfg, awsCfg, logging.New(logs, "DEBUG"), time.Now), Logs: logs}
}

// SyncBuffer is a goroutine-safe log sink.
type SyncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *SyncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *SyncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// Lines decodes the JSON log lines.
func (b *SyncBuffer) Lines(t testing.TB) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, line := range strings.Split(strings.TrimSpace(b.String()), "\n") {
		if line == "" {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("log line is not JSON: %q", line)
		}
		out = append(out, m)
	}
	return out
}

// HandlerFunc is a Lambda handler for HTTP API events.
type HandlerFunc func(context.Context, events.APIGatewayV2HTTPRequest) (events.APIGatewayV2HTTPResponse, error)

// Client calls a handler as API Gateway would.
type Client struct {
	t       testing.TB
	handler HandlerFunc
	// Logs, when set, are shown with a failed expectation.
	Logs *SyncBuffer
	// Bodies records every response body, for tests that search them all.
	Bodies SyncBuffer
}

// NewClient wraps handler.
func NewClient(t testing.TB, h HandlerFunc) *Client { return &Client{t: t, handler: h} }

// Call is one request; build it with the helpers and Do it.
type Call struct {
	c       *Client
	event   events.APIGatewayV2HTTPRequest
	noToken bool
}

// As starts a request by user (the token's sub); "" sends no token.
func (c *Client) As(user string) *Call {
	call := &Call{c: c}
	call.event = events.APIGatewayV2HTTPRequest{
		Version: "2.0",
		Headers: map[string]string{"content-type": "application/json", "user-agent": "apitest"},
		RequestContext: events.APIGatewayV2HTTPRequestContext{
			AccountID: "123456789012", APIID: "test", Stage: "$default",
			RequestID: ids.New("req"), TimeEpoch: time.Now().UnixMilli(),
		},
	}
	if user != "" {
		call.event.RequestContext.Authorizer = &events.APIGatewayV2HTTPRequestContextAuthorizerDescription{
			JWT: &events.APIGatewayV2HTTPRequestContextAuthorizerJWTDescription{Claims: map[string]string{"sub": user}},
		}
	}
	return call
}

// Route sets the route key; params fill its {placeholders} in the path.
func (c *Call) Route(key string, params ...string) *Call {
	method, path, _ := strings.Cut(key, " ")
	c.event.RouteKey = key
	c.event.RequestContext.RouteKey = key
	c.event.RequestContext.HTTP.Method = method
	if len(params)%2 != 0 {
		c.c.t.Fatalf("Route(%q): params must be name, value pairs", key)
	}
	if len(params) > 0 {
		c.event.PathParameters = map[string]string{}
	}
	for i := 0; i < len(params); i += 2 {
		c.event.PathParameters[params[i]] = params[i+1]
		path = strings.Replace(path, "{"+params[i]+"}", params[i+1], 1)
	}
	c.event.RawPath = path
	c.event.RequestContext.HTTP.Path = path
	return c
}

// Query adds a query string parameter.
func (c *Call) Query(name, value string) *Call {
	if c.event.QueryStringParameters == nil {
		c.event.QueryStringParameters = map[string]string{}
	}
	c.event.QueryStringParameters[name] = value
	var parts []string
	for k, v := range c.event.QueryStringParameters {
		parts = append(parts, k+"="+v)
	}
	c.event.RawQueryString = strings.Join(parts, "&")
	return c
}

// Header sets a request header (API Gateway lower-cases names).
func (c *Call) Header(name, value string) *Call {
	c.event.Headers[strings.ToLower(name)] = value
	return c
}

// JSON sets the body to v marshalled, or to v itself when it is a string.
func (c *Call) JSON(v any) *Call {
	if s, ok := v.(string); ok {
		c.event.Body = s
		return c
	}
	b, err := json.Marshal(v)
	if err != nil {
		c.c.t.Fatalf("marshal body: %v", err)
	}
	c.event.Body = string(b)
	return c
}

// Event returns the event as built so far.
func (c *Call) Event() events.APIGatewayV2HTTPRequest { return c.event }

// Do sends the request.
func (c *Call) Do() *Result {
	c.c.t.Helper()
	resp, err := c.c.handler(context.Background(), c.event)
	if err != nil {
		c.c.t.Fatalf("%s: handler error: %v", c.event.RouteKey, err)
	}
	c.c.Bodies.Write([]byte(resp.Body + "\n"))
	for k, v := range resp.Headers {
		c.c.Bodies.Write([]byte(k + ": " + v + "\n"))
	}
	return &Result{t: c.c.t, Status: resp.StatusCode, Header: resp.Headers, Body: []byte(resp.Body), route: c.event.RouteKey, logs: c.c.Logs}
}

// Result is a response.
type Result struct {
	t      testing.TB
	route  string
	Status int
	Header map[string]string
	Body   []byte
	logs   *SyncBuffer
}

// Expect fails the test unless the status is want; it returns r for chaining.
func (r *Result) Expect(want int) *Result {
	r.t.Helper()
	if r.Status != want {
		tail := ""
		if r.logs != nil {
			s := r.logs.String()
			tail = "\nlast log lines:\n" + s[max(0, len(s)-2000):]
		}
		r.t.Fatalf("%s: status %d, want %d; body %s%s", r.route, r.Status, want, r.Body, tail)
	}
	return r
}

// Decode unmarshals the body into v.
func (r *Result) Decode(v any) {
	r.t.Helper()
	if err := json.Unmarshal(r.Body, v); err != nil {
		r.t.Fatalf("%s: decode %s: %v", r.route, r.Body, err)
	}
}

// Map decodes the body as a JSON object.
func (r *Result) Map() map[string]any {
	r.t.Helper()
	var m map[string]any
	r.Decode(&m)
	return m
}

// String returns the body.
func (r *Result) String() string { return fmt.Sprintf("%d %s", r.Status, r.Body) }

// Code is the problem's machine code; it fails unless the response is
// problem+json.
func (r *Result) Code() string {
	r.t.Helper()
	if ct := r.Header["Content-Type"]; ct != "application/problem+json" {
		r.t.Fatalf("%s: content type %q for %s", r.route, ct, r)
	}
	code, _ := r.Map()["code"].(string)
	return code
}

// Fields lists the fields a validation problem names.
func (r *Result) Fields() []string {
	r.t.Helper()
	var p struct {
		Errors []struct{ Field string }
	}
	r.Decode(&p)
	var out []string
	for _, e := range p.Errors {
		out = append(out, e.Field)
	}
	return out
}
