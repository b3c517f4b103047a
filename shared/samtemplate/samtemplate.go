// Package samtemplate reads the SAM template, so that the local API, the
// packaging tests and the route coverage tests all use the routes, schedules
// and environment the deployed stack gets, and cannot drift from it.
package samtemplate

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"gopkg.in/yaml.v3"
)

// Template is the part of a SAM template this project cares about.
type Template struct {
	// Resources in CloudFormation long form: short-form tags such as !Ref are
	// turned into {"Ref": ...} maps.
	Resources map[string]map[string]any
	Globals   map[string]any
	Functions []Function
}

// Function is an AWS::Serverless::Function.
type Function struct {
	LogicalID string
	// Dir is the package that builds it: XxxFunction lives in functions/xxx.
	Dir       string
	Env       map[string]any
	Routes    []Route
	Schedules []Schedule
}

// Route is an HttpApi event.
type Route struct {
	Event  string
	Method string
	Path   string
}

// Key is the API Gateway route key, e.g. "GET /v1/orgs/{orgId}".
func (r Route) Key() string { return strings.ToUpper(r.Method) + " " + r.Path }

// Schedule is a ScheduleV2 (EventBridge Scheduler) or Schedule event.
type Schedule struct {
	Event      string
	Expression string
	// Input is the JSON the scheduler passes as-is to the function.
	Input string
}

// Load parses the template at path.
func Load(path string) (*Template, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read template: %w", err)
	}
	return Parse(raw)
}

// Find walks up from the working directory to the module root and loads its
// template.yaml; tests use it from any package directory.
func Find() (*Template, string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return nil, "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			t, err := Load(filepath.Join(dir, "template.yaml"))
			return t, dir, err
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return nil, "", fmt.Errorf("template.yaml: no go.mod above the working directory")
		}
		dir = parent
	}
}

// Parse parses template YAML.
func Parse(raw []byte) (*Template, error) {
	var root yaml.Node
	if err := yaml.Unmarshal(raw, &root); err != nil {
		return nil, fmt.Errorf("parse template: %w", err)
	}
	doc, ok := convert(&root).(map[string]any)
	if !ok {
		return nil, fmt.Errorf("parse template: top level is not a map")
	}
	t := &Template{Resources: map[string]map[string]any{}}
	t.Globals, _ = doc["Globals"].(map[string]any)
	resources, _ := doc["Resources"].(map[string]any)
	for id, r := range resources {
		m, ok := r.(map[string]any)
		if !ok {
			return nil, fmt.Errorf("resource %s is not a map", id)
		}
		t.Resources[id] = m
		if m["Type"] == "AWS::Serverless::Function" {
			f, err := function(id, m)
			if err != nil {
				return nil, err
			}
			t.Functions = append(t.Functions, f)
		}
	}
	sort.Slice(t.Functions, func(i, j int) bool { return t.Functions[i].LogicalID < t.Functions[j].LogicalID })
	return t, nil
}

// Dir maps a function's logical id to its package directory.
func Dir(logicalID string) string {
	return filepath.Join("functions", strings.ToLower(strings.TrimSuffix(logicalID, "Function")))
}

// Function returns the function with the given logical id.
func (t *Template) Function(logicalID string) (Function, bool) {
	for _, f := range t.Functions {
		if f.LogicalID == logicalID {
			return f, true
		}
	}
	return Function{}, false
}

// GlobalEnv is Globals.Function.Environment.Variables.
func (t *Template) GlobalEnv() map[string]any {
	return dig(t.Globals, "Function", "Environment", "Variables")
}

// Routes lists every route of every function, sorted by key.
func (t *Template) Routes() map[string]string {
	out := map[string]string{}
	for _, f := range t.Functions {
		for _, r := range f.Routes {
			out[r.Key()] = f.LogicalID
		}
	}
	return out
}

func function(id string, m map[string]any) (Function, error) {
	f := Function{LogicalID: id, Dir: Dir(id)}
	props, _ := m["Properties"].(map[string]any)
	f.Env = dig(props, "Environment", "Variables")
	events, _ := props["Events"].(map[string]any)
	names := make([]string, 0, len(events))
	for name := range events {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		ev, _ := events[name].(map[string]any)
		p, _ := ev["Properties"].(map[string]any)
		switch ev["Type"] {
		case "HttpApi":
			method, _ := p["Method"].(string)
			path, _ := p["Path"].(string)
			if method == "" || path == "" {
				return f, fmt.Errorf("%s event %s: HttpApi needs Method and Path", id, name)
			}
			f.Routes = append(f.Routes, Route{Event: name, Method: strings.ToUpper(method), Path: path})
		case "ScheduleV2", "Schedule":
			expr, _ := p["ScheduleExpression"].(string)
			if expr == "" {
				expr, _ = p["Schedule"].(string)
			}
			input, _ := p["Input"].(string)
			f.Schedules = append(f.Schedules, Schedule{Event: name, Expression: expr, Input: input})
		}
	}
	return f, nil
}

func dig(m map[string]any, keys ...string) map[string]any {
	for _, k := range keys {
		next, ok := m[k].(map[string]any)
		if !ok {
			return nil
		}
		m = next
	}
	return m
}

// convert turns a YAML node into plain Go values, rewriting CloudFormation
// short-form tags into their long form.
func convert(n *yaml.Node) any {
	custom := strings.HasPrefix(n.Tag, "!") && !strings.HasPrefix(n.Tag, "!!")
	var v any
	switch n.Kind {
	case yaml.DocumentNode:
		if len(n.Content) == 0 {
			return nil
		}
		return convert(n.Content[0])
	case yaml.AliasNode:
		return convert(n.Alias)
	case yaml.MappingNode:
		m := make(map[string]any, len(n.Content)/2)
		for i := 0; i+1 < len(n.Content); i += 2 {
			m[n.Content[i].Value] = convert(n.Content[i+1])
		}
		v = m
	case yaml.SequenceNode:
		s := make([]any, 0, len(n.Content))
		for _, c := range n.Content {
			s = append(s, convert(c))
		}
		v = s
	case yaml.ScalarNode:
		var x any
		if err := n.Decode(&x); err != nil || custom {
			x = n.Value
		}
		v = x
	}
	if custom {
		name := strings.TrimPrefix(n.Tag, "!")
		switch name {
		case "Ref", "Condition":
			return map[string]any{name: v}
		case "GetAtt":
			if s, ok := v.(string); ok {
				parts := strings.SplitN(s, ".", 2)
				return map[string]any{"Fn::GetAtt": []any{parts[0], parts[len(parts)-1]}}
			}
		}
		return map[string]any{"Fn::" + name: v}
	}
	return v
}
