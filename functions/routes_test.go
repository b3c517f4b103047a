package functions_test

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/dflow-sh/cloud-accounts/shared/lambdatest"
)

// openAPIMethods are the operation keys of an OpenAPI path item.
var openAPIMethods = map[string]bool{
	"get": true, "put": true, "post": true, "delete": true,
	"options": true, "head": true, "patch": true, "trace": true,
}

// TestRoutesMatchOpenAPI keeps the deployed routes (template.yaml) and the
// published contract (api/openapi.yaml) the same set of operations.
func TestRoutesMatchOpenAPI(t *testing.T) {
	tpl, root := loadTemplate(t)
	inTemplate := map[string]string{}
	for _, fn := range tpl.Functions {
		for _, r := range fn.Routes {
			inTemplate[r.Key()] = fmt.Sprintf("%s, event %s", fn.LogicalID, r.Event)
		}
	}
	inSpec, err := openAPIOperations(filepath.Join(root, "api", "openapi.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var missingFromSpec, missingFromTemplate []string
	for key, where := range inTemplate {
		if _, ok := inSpec[key]; !ok {
			missingFromSpec = append(missingFromSpec, fmt.Sprintf("%s (%s)", key, where))
		}
	}
	for key, opID := range inSpec {
		if _, ok := inTemplate[key]; !ok {
			missingFromTemplate = append(missingFromTemplate, fmt.Sprintf("%s (operationId %s)", key, opID))
		}
	}
	sort.Strings(missingFromSpec)
	sort.Strings(missingFromTemplate)
	if len(missingFromSpec) > 0 {
		t.Errorf("routes in template.yaml that api/openapi.yaml does not describe:\n  %s", strings.Join(missingFromSpec, "\n  "))
	}
	if len(missingFromTemplate) > 0 {
		t.Errorf("operations in api/openapi.yaml that no function in template.yaml routes:\n  %s", strings.Join(missingFromTemplate, "\n  "))
	}
}

// openAPIOperations reads an OpenAPI document's operations as route keys
// ("GET /v1/orgs/{orgId}") with their operationId. A path prefix shared by
// all servers (e.g. https://api.example.com/v1) is part of the route.
func openAPIOperations(path string) (map[string]string, error) {
	raw, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%s does not exist: the API contract must describe every route in template.yaml", path)
	}
	if err != nil {
		return nil, err
	}
	var doc struct {
		Servers []openAPIServer                 `yaml:"servers"`
		Paths   map[string]map[string]yaml.Node `yaml:"paths"`
	}
	if err := yaml.Unmarshal(raw, &doc); err != nil {
		return nil, fmt.Errorf("parse %s: %w", path, err)
	}
	prefix, err := serverPrefix(doc.Servers)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	ops := map[string]string{}
	for p, item := range doc.Paths {
		if _, ok := item["$ref"]; ok {
			return nil, fmt.Errorf("%s: path %s is a $ref; this test reads inline path items only", path, p)
		}
		for method, op := range item {
			if !openAPIMethods[method] {
				continue
			}
			var o struct {
				OperationID string `yaml:"operationId"`
			}
			_ = op.Decode(&o)
			ops[strings.ToUpper(method)+" "+prefix+p] = o.OperationID
		}
	}
	return ops, nil
}

type openAPIServer struct {
	URL string `yaml:"url"`
}

// serverPrefix is the URL path the servers share ("" for none).
func serverPrefix(servers []openAPIServer) (string, error) {
	prefix := ""
	for i, s := range servers {
		// Not url.Parse: server URLs may hold {variables}, even in the host.
		u := s.URL
		if _, rest, ok := strings.Cut(u, "://"); ok {
			u = ""
			if j := strings.Index(rest, "/"); j >= 0 {
				u = rest[j:]
			}
		}
		p := strings.TrimSuffix(u, "/")
		if i > 0 && p != prefix {
			return "", fmt.Errorf("servers have different base paths (%q, %q): cannot map paths to routes", prefix, p)
		}
		prefix = p
	}
	return prefix, nil
}

// samplePathValues are well-formed values of the path parameters; the
// pipeline checks identity before path parameters, so an unknown name gets
// a generic value.
var samplePathValues = map[string]string{
	"orgId":     "org_aaaaaaaaaaaaaaaaaaaaaaaaaa",
	"roleId":    "rol_aaaaaaaaaaaaaaaaaaaaaaaaaa",
	"userId":    "bob",
	"accountId": "acc_aaaaaaaaaaaaaaaaaaaaaaaaaa",
	"nodeId":    "wn_aaaaaaaaaaaaaaaaaaaaaaaaaa",
	"groupId":   "sg_aaaaaaaaaaaaaaaaaaaaaaaaaa",
	"keyId":     "key_aaaaaaaaaaaaaaaaaaaaaaaaaa",
	"provider":  "aws",
	"region":    "us-east-1",
}

// TestRoutesHandled runs each function as it ships and calls every one of
// its template routes without a verified token: a route the function
// handles answers 401 unauthenticated (the pipeline finds the route, then
// checks identity); one it lacks would answer 404 route_not_found. A route
// key outside the template must answer 404 route_not_found. Each of its
// schedules' Input, sent as EventBridge Scheduler sends it, must run
// without a function error (an unknown job is one). That the function
// registers no route beyond the template is each function's own test, with
// its route table.
func TestRoutesHandled(t *testing.T) {
	lambdatest.RequireRIE(t)
	tpl, _ := loadTemplate(t)
	all := tpl.Routes()
	for _, fn := range tpl.Functions {
		if len(fn.Routes) == 0 {
			continue
		}
		t.Run(fn.LogicalID, func(t *testing.T) {
			t.Parallel()
			rie := startFunction(t, tpl, fn)
			for _, r := range fn.Routes {
				t.Run(r.Event, func(t *testing.T) {
					params := map[string]string{}
					for _, name := range pathParams(r.Path) {
						v, ok := samplePathValues[name]
						if !ok {
							v = "sample1"
						}
						params[name] = v
					}
					ev := lambdatest.HTTPEvent(r.Key(), params)
					if r.Method == http.MethodPost || r.Method == http.MethodPut || r.Method == http.MethodPatch {
						ev = lambdatest.WithJSON(ev, "{}")
					}
					resp := rie.InvokeHTTP(t, ev)
					if resp.StatusCode == http.StatusNotFound {
						t.Fatalf("%s is in template.yaml (%s) but the function does not handle it: %s", r.Key(), r.Event, resp.Body)
					}
					checkResponse(t, ev, resp, expectation{status: http.StatusUnauthorized, code: "unauthenticated"})
				})
			}
			t.Run("unknown route", func(t *testing.T) {
				key := "GET /v1/no-such-route"
				if _, taken := all[key]; taken {
					t.Fatalf("%s is a template route; pick another", key)
				}
				ev := lambdatest.HTTPEvent(key, nil)
				checkResponse(t, ev, rie.InvokeHTTP(t, ev), expectation{status: http.StatusNotFound, code: "route_not_found"})
			})
			for _, s := range fn.Schedules {
				t.Run("schedule "+s.Event, func(t *testing.T) {
					if _, err := rie.Invoke(context.Background(), []byte(s.Input)); err != nil {
						t.Fatalf("schedule %s (Input %s) is in template.yaml but the function does not run it: %v", s.Event, s.Input, err)
					}
				})
			}
		})
	}
}

// pathParams lists the {placeholders} of a route path.
func pathParams(path string) []string {
	var out []string
	for _, seg := range strings.Split(path, "/") {
		if strings.HasPrefix(seg, "{") && strings.HasSuffix(seg, "}") {
			out = append(out, strings.Trim(seg, "{}"))
		}
	}
	return out
}

func TestOpenAPIOperations(t *testing.T) {
	got, err := openAPIOperations(filepath.Join("testdata", "openapi-prefixed.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		"GET /v1/orgs":            "listOrgs",
		"POST /v1/orgs":           "createOrg",
		"DELETE /v1/orgs/{orgId}": "deleteOrg",
	}
	if !maps.Equal(got, want) {
		t.Errorf("got %v, want %v", got, want)
	}
	if _, err := openAPIOperations(filepath.Join("testdata", "no-such-openapi.yaml")); err == nil || !strings.Contains(err.Error(), "does not exist") {
		t.Errorf("missing file: err = %v", err)
	}
}
