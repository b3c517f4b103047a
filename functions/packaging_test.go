// Package functions_test checks every function of template.yaml as it ships:
// built as `sam build` builds it, run under the Lambda Runtime Interface
// Emulator (aws-lambda-rie, our stand-in for `sam local invoke`) with the
// environment the template gives it, against moto.
package functions_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io/fs"
	"maps"
	"mime"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/aws/aws-lambda-go/events"

	"github.com/dflow-sh/cloud-accounts/shared/lambdatest"
	"github.com/dflow-sh/cloud-accounts/shared/motoserver"
	"github.com/dflow-sh/cloud-accounts/shared/samtemplate"
)

func TestMain(m *testing.M) { motoserver.Main(m) }

// expectation is what a sample event under events/ must get back: an API
// Gateway event a status, a schedule input (see scheduleInput) a result.
type expectation struct {
	status int
	// code is the problem's code, for statuses from 400 up.
	code string
	// field is a field a validation problem must name.
	field string
	// headers must be present.
	headers []string
	// result is a JSON object whose members the job's result (a JSON
	// object) must have, with these values; schedule inputs only.
	result string
}

// expectations has an entry for every file under events/, keyed by its path
// below events/: a new sample event fails TestPackaging until it says what
// it must get. The files are invoked in name order against one fresh table.
var expectations = map[string]expectation{
	"tenants/create-org.json":         {status: http.StatusCreated, headers: []string{"Location", "ETag"}},
	"tenants/create-org-invalid.json": {status: http.StatusBadRequest, code: "validation_failed", field: "plan"},
	"tenants/get-org-no-token.json":   {status: http.StatusUnauthorized, code: "unauthenticated"},
	"tenants/get-org-not-member.json": {status: http.StatusNotFound, code: "not_found"},
	"tenants/list-orgs.json":          {status: http.StatusOK},

	"accounts/link-role-not-member.json":      {status: http.StatusNotFound, code: "not_found"},
	"accounts/get-account-no-token.json":      {status: http.StatusUnauthorized, code: "unauthenticated"},
	"accounts/list-providers-not-member.json": {status: http.StatusNotFound, code: "not_found"},

	"discovery/list-regions-not-member.json":      {status: http.StatusNotFound, code: "not_found"},
	"discovery/get-vpcs-no-token.json":            {status: http.StatusUnauthorized, code: "unauthenticated"},
	"discovery/check-permissions-not-member.json": {status: http.StatusNotFound, code: "not_found"},

	"provisioning/create-key-not-member.json":  {status: http.StatusNotFound, code: "not_found"},
	"provisioning/create-node-not-member.json": {status: http.StatusNotFound, code: "not_found"},
	"provisioning/list-keys-no-token.json":     {status: http.StatusUnauthorized, code: "unauthenticated"},
	"provisioning/node-action-no-token.json":   {status: http.StatusUnauthorized, code: "unauthenticated"},
	"provisioning/sync-group-not-member.json":  {status: http.StatusNotFound, code: "not_found"},
	// The ReconcileNodes schedule's Input. The events before it create no
	// node, so the sweep finds the table empty: nodes.Summary, all zero.
	"provisioning/reconcile.json": {result: `{"checked": 0, "updated": 0, "attached": 0, "failed": 0, "reaped": 0, "skipped": 0, "untracked": [], "errors": []}`},

	"rotation/rotate-not-member.json":       {status: http.StatusNotFound, code: "not_found"},
	"rotation/list-rotations-no-token.json": {status: http.StatusUnauthorized, code: "unauthenticated"},
	// The RotationSweep and HealthSweep schedules' Inputs. No event links an
	// account, so both sweeps find nothing: rotation.SweepSummary (with its
	// FinishRetirements pass) and health.Summary, all zero.
	"rotation/rotation-sweep.json": {result: `{"due": 0, "started": 0, "rotated": 0, "failed": 0, "skipped": 0, "incomplete": false, "errors": [], "retirements": {"examined": 0, "retired": 0, "resumed": 0, "rolledBack": 0, "waiting": 0, "busy": 0, "failed": 0, "errors": []}}`},
	"rotation/health-sweep.json":   {result: `{"checked": 0, "healthy": 0, "unhealthy": 0, "changed": 0, "skipped": 0, "errors": [], "incomplete": false}`},
}

// TestPackaging builds each function, runs it under RIE with its template
// environment and a fresh table, and invokes it with every sample event of
// events/<function dir>/: API Gateway events, and schedule inputs as
// EventBridge Scheduler sends them.
func TestPackaging(t *testing.T) {
	lambdatest.RequireRIE(t)
	tpl, root := loadTemplate(t)
	files := sampleEvents(t, root)
	checkExpectations(t, tpl, files)

	for _, fn := range tpl.Functions {
		t.Run(fn.LogicalID, func(t *testing.T) {
			// Safe in parallel: each function has its own build directory,
			// table, emulator and port.
			t.Parallel()
			names := files[filepath.Base(fn.Dir)]
			if len(names) == 0 {
				t.Fatalf("no sample events in events/%[1]s/: add at least one, so `sam local invoke %[2]s -e events/%[1]s/<name>.json` works and this test can run it",
					filepath.Base(fn.Dir), fn.LogicalID)
			}
			rie := startFunction(t, tpl, fn)
			for _, name := range names {
				t.Run(filepath.Base(name), func(t *testing.T) {
					raw, err := os.ReadFile(filepath.Join(root, "events", name))
					if err != nil {
						t.Fatal(err)
					}
					want := expectations[filepath.ToSlash(name)]
					if scheduleInput(t, raw) {
						if want.result == "" {
							t.Fatalf("a schedule input (no routeKey): its entry in expectations must give result, not status")
						}
						checkJob(t, rie, raw, want.result)
						return
					}
					if want.result != "" {
						t.Fatalf("an API Gateway event: its entry in expectations must give status, not result")
					}
					ev := decodeEvent(t, raw)
					resp := rie.InvokeHTTP(t, raw)
					checkResponse(t, ev, resp, want)
				})
			}
			if d, err := rie.InitDuration(); err != nil {
				t.Error(err)
			} else {
				t.Logf("cold start (init) %v", d)
			}
		})
	}
}

// TestSampleEvents checks the sample events are what API Gateway sends for
// a route of their function, or what EventBridge Scheduler sends for one of
// its schedules, so `sam local invoke` and TestPackaging run realistic
// requests.
func TestSampleEvents(t *testing.T) {
	tpl, root := loadTemplate(t)
	files := sampleEvents(t, root)
	for _, fn := range tpl.Functions {
		routes := map[string]samtemplate.Route{}
		for _, r := range fn.Routes {
			routes[r.Key()] = r
		}
		for _, name := range files[filepath.Base(fn.Dir)] {
			t.Run(filepath.ToSlash(name), func(t *testing.T) {
				raw, err := os.ReadFile(filepath.Join(root, "events", name))
				if err != nil {
					t.Fatal(err)
				}
				if scheduleInput(t, raw) {
					checkScheduleInput(t, raw, fn.Schedules)
					return
				}
				ev := decodeEvent(t, raw)
				checkEventShape(t, ev, routes)
			})
		}
	}
}

func checkEventShape(t *testing.T, ev events.APIGatewayV2HTTPRequest, routes map[string]samtemplate.Route) {
	t.Helper()
	rc := ev.RequestContext
	if ev.Version != "2.0" {
		t.Errorf("version %q, want \"2.0\" (HTTP API payload format 2.0)", ev.Version)
	}
	r, ok := routes[ev.RouteKey]
	if !ok {
		t.Fatalf("routeKey %q is not a route of this function in template.yaml", ev.RouteKey)
	}
	if rc.RouteKey != ev.RouteKey {
		t.Errorf("requestContext.routeKey %q, routeKey %q", rc.RouteKey, ev.RouteKey)
	}
	if rc.HTTP.Method != r.Method {
		t.Errorf("requestContext.http.method %q, route method %s", rc.HTTP.Method, r.Method)
	}
	path := r.Path
	for name, v := range ev.PathParameters {
		if !strings.Contains(path, "{"+name+"}") {
			t.Errorf("pathParameters.%s is not a parameter of %s", name, r.Path)
		}
		path = strings.ReplaceAll(path, "{"+name+"}", v)
	}
	if ev.RawPath != path || rc.HTTP.Path != path {
		t.Errorf("rawPath %q and requestContext.http.path %q, want %q (route path with pathParameters)", ev.RawPath, rc.HTTP.Path, path)
	}
	q, err := url.ParseQuery(ev.RawQueryString)
	if err != nil {
		t.Errorf("rawQueryString %q: %v", ev.RawQueryString, err)
	}
	for k, vs := range q {
		if got := ev.QueryStringParameters[k]; got != strings.Join(vs, ",") {
			t.Errorf("queryStringParameters.%s = %q, rawQueryString says %q", k, got, strings.Join(vs, ","))
		}
	}
	if len(q) != len(ev.QueryStringParameters) {
		t.Errorf("queryStringParameters %v do not match rawQueryString %q", ev.QueryStringParameters, ev.RawQueryString)
	}
	for k := range ev.Headers {
		if k != strings.ToLower(k) {
			t.Errorf("header %q: API Gateway lower-cases header names", k)
		}
	}
	if rc.RequestID == "" || rc.AccountID == "" || rc.APIID == "" || rc.DomainName == "" || rc.Time == "" || rc.TimeEpoch == 0 {
		t.Errorf("requestContext lacks requestId, accountId, apiId, domainName, time or timeEpoch: %+v", rc)
	}
	if rc.Stage != "$default" {
		t.Errorf("requestContext.stage %q, want $default", rc.Stage)
	}
	if rc.HTTP.Protocol == "" || rc.HTTP.SourceIP == "" || rc.HTTP.UserAgent == "" {
		t.Errorf("requestContext.http lacks protocol, sourceIp or userAgent: %+v", rc.HTTP)
	}
	if a := rc.Authorizer; a != nil {
		if a.JWT == nil {
			t.Errorf("requestContext.authorizer without jwt: the API uses a JWT authorizer")
		} else {
			for _, claim := range []string{"sub", "iss", "aud", "exp", "iat"} {
				if a.JWT.Claims[claim] == "" {
					t.Errorf("requestContext.authorizer.jwt.claims lacks %s", claim)
				}
			}
		}
	}
	if ev.Body != "" && !ev.IsBase64Encoded && !json.Valid([]byte(ev.Body)) {
		t.Errorf("body is not JSON: %s", ev.Body)
	}
}

// checkExpectations makes events/ and the expectations table agree, and
// every events/<dir> belong to a function.
func checkExpectations(t *testing.T, tpl *samtemplate.Template, files map[string][]string) {
	t.Helper()
	dirs := map[string]bool{}
	for _, fn := range tpl.Functions {
		dirs[filepath.Base(fn.Dir)] = true
	}
	seen := map[string]bool{}
	for dir, names := range files {
		if !dirs[dir] {
			t.Errorf("events/%s/ belongs to no function in template.yaml (events/<dir>/ goes with functions/<dir>)", dir)
		}
		for _, name := range names {
			key := filepath.ToSlash(name)
			seen[key] = true
			if _, ok := expectations[key]; !ok {
				t.Errorf("events/%s has no entry in expectations (functions/packaging_test.go): say what status it must get", key)
			}
		}
	}
	for key, want := range expectations {
		if !seen[key] {
			t.Errorf("expectations names events/%s, which does not exist", key)
		}
		if (want.status >= 400) != (want.code != "") {
			t.Errorf("expectations[%q]: a problem code goes with a status from 400 up, and every such status needs one", key)
		}
		switch {
		case want.result != "" && (want.status != 0 || want.field != "" || len(want.headers) > 0):
			t.Errorf("expectations[%q]: result is for schedule inputs, status, field and headers for API Gateway events; not both", key)
		case want.result == "" && want.status == 0:
			t.Errorf("expectations[%q]: say what status it must get (or, for a schedule input, what result)", key)
		case want.result != "" && !isJSONObject(want.result):
			t.Errorf("expectations[%q]: result must be a JSON object: %s", key, want.result)
		}
	}
	if t.Failed() {
		t.FailNow()
	}
}

// sampleEvents lists events/<dir>/*.json by dir, as paths below events/.
func sampleEvents(t testing.TB, root string) map[string][]string {
	t.Helper()
	out := map[string][]string{}
	base := filepath.Join(root, "events")
	err := filepath.WalkDir(base, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(base, path)
		dir, file := filepath.Split(rel)
		dir = filepath.Clean(dir)
		if filepath.Ext(file) != ".json" || dir == "." || strings.Contains(dir, string(filepath.Separator)) {
			t.Errorf("events/%s: want events/<function dir>/<name>.json", filepath.ToSlash(rel))
			return nil
		}
		out[dir] = append(out[dir], rel)
		return nil
	})
	if err != nil {
		t.Fatalf("read events/: %v", err)
	}
	for _, names := range out {
		sort.Strings(names)
	}
	return out
}

// scheduleInput reports whether a sample event is a schedule's Input rather
// than an API Gateway event. EventBridge Scheduler sends a schedule's Input
// as it is, without an envelope; only API Gateway events carry a routeKey,
// which is also how platform.Serve tells the two apart.
func scheduleInput(t testing.TB, raw []byte) bool {
	t.Helper()
	var probe struct {
		RouteKey string `json:"routeKey"`
	}
	if err := json.Unmarshal(raw, &probe); err != nil {
		t.Fatalf("not a JSON object: %v", err)
	}
	return probe.RouteKey == ""
}

// checkScheduleInput checks that a schedule input is, as JSON, the Input of
// one of the function's schedules in template.yaml.
func checkScheduleInput(t *testing.T, raw []byte, schedules []samtemplate.Schedule) {
	t.Helper()
	var got any
	if err := json.Unmarshal(raw, &got); err != nil {
		t.Fatalf("not JSON: %v", err)
	}
	var known []string
	for _, s := range schedules {
		var in any
		if json.Unmarshal([]byte(s.Input), &in) == nil && reflect.DeepEqual(got, in) {
			return
		}
		known = append(known, fmt.Sprintf("%s: %s", s.Event, s.Input))
	}
	if len(known) == 0 {
		known = []string{"none"}
	}
	t.Errorf("no routeKey, so not an API Gateway event, and not the Input of a schedule of this function in template.yaml (%s): %s",
		strings.Join(known, "; "), bytes.TrimSpace(raw))
}

// checkJob invokes the function with a schedule input, as EventBridge
// Scheduler does (the Input is the whole payload), and checks the job's
// result has want's members with want's values. A function error fails.
func checkJob(t *testing.T, rie *lambdatest.Emulator, raw []byte, want string) {
	t.Helper()
	out, err := rie.Invoke(context.Background(), raw)
	if err != nil {
		t.Fatal(err)
	}
	var got, w map[string]any
	if err := json.Unmarshal(out, &got); err != nil {
		t.Fatalf("the job's result is not a JSON object: %v: %s", err, out)
	}
	if err := json.Unmarshal([]byte(want), &w); err != nil {
		t.Fatalf("expectation's result: %v", err)
	}
	for _, k := range slices.Sorted(maps.Keys(w)) {
		if v, ok := got[k]; !ok || !reflect.DeepEqual(v, w[k]) {
			t.Errorf("result.%s = %v, want %v; result %s", k, v, w[k], out)
		}
	}
}

func isJSONObject(s string) bool {
	var m map[string]any
	return json.Unmarshal([]byte(s), &m) == nil && m != nil
}

func decodeEvent(t testing.TB, raw []byte) events.APIGatewayV2HTTPRequest {
	t.Helper()
	var ev events.APIGatewayV2HTTPRequest
	dec := json.NewDecoder(bytes.NewReader(raw))
	// A misspelt field would otherwise just be missing from the request.
	dec.DisallowUnknownFields()
	if err := dec.Decode(&ev); err != nil {
		t.Fatalf("not an API Gateway HTTP API payload 2.0 event: %v", err)
	}
	return ev
}

func loadTemplate(t testing.TB) (*samtemplate.Template, string) {
	t.Helper()
	tpl, root, err := samtemplate.Find()
	if err != nil {
		t.Fatal(err)
	}
	if len(tpl.Functions) == 0 {
		t.Fatal("template.yaml has no AWS::Serverless::Function")
	}
	return tpl, root
}

// envOverrides sets variables the test stack cannot derive from the
// template (e.g. a !GetAtt of a resource moto does not stand in for), in
// env.json's shape: "Parameters" for all functions, or a logical id.
var envOverrides = map[string]map[string]string{
	// An Fn::If on a template condition: the stack's own account root.
	"AccountsFunction": {"DFLOW_PRINCIPAL_ARNS": "arn:aws:iam::123456789012:root"},
}

// deploy is a fresh stand-in stack of tpl with envOverrides applied.
func deploy(t testing.TB, tpl *samtemplate.Template) *lambdatest.Deployment {
	t.Helper()
	d := lambdatest.Deploy(t, tpl)
	for section, vars := range envOverrides {
		d.Overrides[section] = vars
	}
	return d
}

// startFunction builds fn for this host and runs it under RIE with the
// template's environment over a fresh table.
func startFunction(t testing.TB, tpl *samtemplate.Template, fn samtemplate.Function) *lambdatest.Emulator {
	t.Helper()
	bootstrap := lambdatest.Build(t, fn.Dir, lambdatest.AMD64)
	return lambdatest.Start(t, bootstrap, deploy(t, tpl).Env(t, fn))
}

// checkResponse compares a function's answer to an event with want.
func checkResponse(t *testing.T, ev events.APIGatewayV2HTTPRequest, resp events.APIGatewayV2HTTPResponse, want expectation) {
	t.Helper()
	if resp.StatusCode != want.status {
		t.Errorf("status %d, want %d; body %s", resp.StatusCode, want.status, resp.Body)
	}
	if got := header(resp, "X-Request-Id"); got != ev.RequestContext.RequestID {
		t.Errorf("X-Request-Id %q, want the event's requestContext.requestId %q", got, ev.RequestContext.RequestID)
	}
	for _, h := range want.headers {
		if header(resp, h) == "" {
			t.Errorf("no %s header; headers %v", h, resp.Headers)
		}
	}
	ct, _, _ := mime.ParseMediaType(header(resp, "Content-Type"))
	switch {
	case resp.StatusCode == http.StatusNoContent:
		if resp.Body != "" {
			t.Errorf("204 with a body: %s", resp.Body)
		}
	case resp.StatusCode >= 400:
		if ct != "application/problem+json" {
			t.Errorf("Content-Type %q, want application/problem+json", header(resp, "Content-Type"))
		}
		checkProblem(t, ev, resp, want.code, want.field)
	default:
		if ct != "application/json" {
			t.Errorf("Content-Type %q, want application/json", header(resp, "Content-Type"))
		}
		if !json.Valid([]byte(resp.Body)) {
			t.Errorf("body is not JSON: %s", resp.Body)
		}
	}
}

// problem is an RFC 9457 problem body as api/openapi.yaml describes it.
type problem struct {
	Type      string       `json:"type"`
	Title     string       `json:"title"`
	Status    int          `json:"status"`
	Detail    string       `json:"detail"`
	Code      string       `json:"code"`
	RequestID string       `json:"requestId"`
	Errors    []fieldError `json:"errors"`
}

type fieldError struct {
	Field   string `json:"field"`
	Message string `json:"message"`
}

// checkProblem checks a problem body: its code, the field at fault (if
// field is set) and the members every problem carries.
func checkProblem(t *testing.T, ev events.APIGatewayV2HTTPRequest, resp events.APIGatewayV2HTTPResponse, code, field string) {
	t.Helper()
	var p problem
	if err := json.Unmarshal([]byte(resp.Body), &p); err != nil {
		t.Fatalf("problem body: %v: %s", err, resp.Body)
	}
	if p.Code != code {
		t.Errorf("code %q, want %q; body %s", p.Code, code, resp.Body)
	}
	if p.Type != "urn:dflow:problem:"+p.Code {
		t.Errorf("type %q, want urn:dflow:problem:%s", p.Type, p.Code)
	}
	if p.Status != resp.StatusCode || p.Title != http.StatusText(resp.StatusCode) {
		t.Errorf("status %d and title %q, want %d and %q", p.Status, p.Title, resp.StatusCode, http.StatusText(resp.StatusCode))
	}
	if p.Detail == "" {
		t.Errorf("no detail: %s", resp.Body)
	}
	if p.RequestID != ev.RequestContext.RequestID {
		t.Errorf("requestId %q, want %q", p.RequestID, ev.RequestContext.RequestID)
	}
	if field != "" && !slices.ContainsFunc(p.Errors, func(e fieldError) bool { return e.Field == field }) {
		t.Errorf("errors[] does not name field %q: %s", field, resp.Body)
	}
}

// header looks a response header up case-insensitively, as HTTP does.
func header(resp events.APIGatewayV2HTTPResponse, name string) string {
	for k, v := range resp.Headers {
		if strings.EqualFold(k, name) {
			return v
		}
	}
	return ""
}
