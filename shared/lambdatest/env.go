package lambdatest

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"gopkg.in/yaml.v3"

	"github.com/dflow-sh/cloud-accounts/shared/dynamo"
	"github.com/dflow-sh/cloud-accounts/shared/motoserver"
	"github.com/dflow-sh/cloud-accounts/shared/samtemplate"
)

// Stack is what CloudFormation would resolve the template's intrinsic
// functions to in one deployed stack.
type Stack struct {
	Name      string // AWS::StackName
	Region    string // AWS::Region
	AccountID string // AWS::AccountId
	// Refs are the values of !Ref: template parameters and the physical ids
	// of resources.
	Refs map[string]string
}

// Vars resolves the variables the template declares for fn: Globals, then
// the function's own. Scalars are used as they are; Ref, Fn::Sub and
// Fn::Join are resolved against s; anything else is an error naming every
// unresolved variable.
func (s Stack) Vars(tpl *samtemplate.Template, fn samtemplate.Function, given ...map[string]string) (map[string]string, error) {
	declared := map[string]any{}
	for k, v := range tpl.GlobalEnv() {
		declared[k] = v
	}
	for k, v := range fn.Env {
		declared[k] = v
	}
	out := make(map[string]string, len(declared))
	var unresolved []string
	for name, v := range declared {
		if isGiven(name, given) {
			// Set from outside (env.json's role): no need to resolve it.
			continue
		}
		val, err := s.resolve(v)
		if err != nil {
			raw, _ := json.Marshal(v)
			unresolved = append(unresolved, fmt.Sprintf("%s (template value %s: %v)", name, raw, err))
			continue
		}
		out[name] = val
	}
	if len(unresolved) > 0 {
		sort.Strings(unresolved)
		return nil, fmt.Errorf("%s: unresolved environment variables: %s", fn.LogicalID, strings.Join(unresolved, "; "))
	}
	return out, nil
}

func isGiven(name string, given []map[string]string) bool {
	for _, g := range given {
		if _, ok := g[name]; ok {
			return true
		}
	}
	return false
}

var subVar = regexp.MustCompile(`\$\{([^}]+)\}`)

func (s Stack) resolve(v any) (string, error) {
	if str, ok := scalar(v); ok {
		return str, nil
	}
	m, ok := v.(map[string]any)
	if !ok || len(m) != 1 {
		return "", fmt.Errorf("not a scalar or an intrinsic function")
	}
	for fn, arg := range m {
		switch fn {
		case "Ref":
			name, _ := arg.(string)
			return s.ref(name)
		case "Fn::Sub":
			return s.sub(arg)
		case "Fn::Join":
			parts, _ := arg.([]any)
			if len(parts) != 2 {
				return "", fmt.Errorf("Fn::Join wants [delimiter, [values]]")
			}
			delim, _ := parts[0].(string)
			items, _ := parts[1].([]any)
			vals := make([]string, 0, len(items))
			for _, it := range items {
				val, err := s.resolve(it)
				if err != nil {
					return "", err
				}
				vals = append(vals, val)
			}
			return strings.Join(vals, delim), nil
		}
		return "", fmt.Errorf("%s cannot be resolved outside CloudFormation", fn)
	}
	return "", nil
}

func (s Stack) ref(name string) (string, error) {
	switch name {
	case "AWS::StackName":
		return s.Name, nil
	case "AWS::Region":
		return s.Region, nil
	case "AWS::AccountId":
		return s.AccountID, nil
	case "AWS::Partition":
		return "aws", nil
	case "AWS::URLSuffix":
		return "amazonaws.com", nil
	}
	if v, ok := s.Refs[name]; ok {
		return v, nil
	}
	return "", fmt.Errorf("no value for Ref %s (a parameter without Default, or a resource the test stack does not create)", name)
}

// sub resolves Fn::Sub in its string and [string, {vars}] forms.
func (s Stack) sub(arg any) (string, error) {
	var tmpl string
	vars := map[string]string{}
	switch a := arg.(type) {
	case string:
		tmpl = a
	case []any:
		if len(a) != 2 {
			return "", fmt.Errorf("Fn::Sub wants a string or [string, {variables}]")
		}
		tmpl, _ = a[0].(string)
		m, _ := a[1].(map[string]any)
		for k, v := range m {
			val, err := s.resolve(v)
			if err != nil {
				return "", err
			}
			vars[k] = val
		}
	default:
		return "", fmt.Errorf("Fn::Sub wants a string or [string, {variables}]")
	}
	var firstErr error
	out := subVar.ReplaceAllStringFunc(tmpl, func(expr string) string {
		name := subVar.FindStringSubmatch(expr)[1]
		if strings.HasPrefix(name, "!") {
			return "${" + name[1:] + "}"
		}
		if v, ok := vars[name]; ok {
			return v
		}
		v, err := s.ref(name)
		if err != nil && firstErr == nil {
			firstErr = err
		}
		return v
	})
	return out, firstErr
}

func scalar(v any) (string, bool) {
	switch x := v.(type) {
	case string:
		return x, true
	case bool:
		return strconv.FormatBool(x), true
	case int:
		return strconv.Itoa(x), true
	case int64:
		return strconv.FormatInt(x, 10), true
	case float64:
		return strconv.FormatFloat(x, 'f', -1, 64), true
	}
	return "", false
}

// Deployment is a test stand-in for one deployed stack: its resources live
// in the test process's moto server.
type Deployment struct {
	Stack
	// Endpoint is the moto server's URL, the functions' AWS_ENDPOINT_URL.
	Endpoint string
	// Overrides set variables by name, as sam local's env.json does:
	// "Parameters" for every function, a logical id for one function. Use
	// them for values the template takes from resources the test stack
	// cannot stand in for.
	Overrides map[string]map[string]string

	tpl *samtemplate.Template
}

// Test stack identity: moto's default account, the SDK test region.
const (
	testRegion    = "us-east-1"
	testAccountID = "123456789012"
)

// Deploy makes a fresh stand-in stack of tpl in the shared moto server: a
// new table for each AWS::DynamoDB::Table (with the app's schema, which a
// dynamo test keeps equal to the template's), and the template's parameter
// defaults.
func Deploy(tb testing.TB, tpl *samtemplate.Template) *Deployment {
	tb.Helper()
	srv := motoserver.Shared(tb)
	refs, err := parameterDefaults()
	if err != nil {
		tb.Fatal(err)
	}
	suffix := randomSuffix()
	db := dynamodb.NewFromConfig(motoserver.TestConfig(tb))
	for id, r := range tpl.Resources {
		if r["Type"] != "AWS::DynamoDB::Table" {
			continue
		}
		name := "test-" + strings.ToLower(id) + "-" + suffix
		if err := dynamo.EnsureTable(context.Background(), db, name); err != nil {
			tb.Fatalf("create table %s for %s: %v", name, id, err)
		}
		refs[id] = name
	}
	return &Deployment{
		Stack:     Stack{Name: "dflow-test-" + suffix, Region: testRegion, AccountID: testAccountID, Refs: refs},
		Endpoint:  srv.URL,
		Overrides: map[string]map[string]string{},
		tpl:       tpl,
	}
}

// Env is fn's whole process environment in d: what Lambda sets (RuntimeEnv)
// and the template's variables, overrides applied.
func (d *Deployment) Env(tb testing.TB, fn samtemplate.Function) map[string]string {
	tb.Helper()
	vars, err := d.Vars(d.tpl, fn, d.Overrides["Parameters"], d.Overrides[fn.LogicalID])
	if err != nil {
		tb.Fatal(err)
	}
	memoryMB, timeout := settings(d.tpl, fn.LogicalID)
	env := d.RuntimeEnv(fn.LogicalID, memoryMB, timeout)
	for k, v := range vars {
		env[k] = v
	}
	for _, section := range []string{"Parameters", fn.LogicalID} {
		for k, v := range d.Overrides[section] {
			env[k] = v
		}
	}
	return env
}

// RuntimeEnv is what every function process gets besides its template
// variables: the variables Lambda sets that RIE reads (name, memory,
// timeout), the region, and SDK settings that point every client at moto
// with dummy credentials and keep the machine's AWS configuration out.
func (d *Deployment) RuntimeEnv(name string, memoryMB, timeoutSeconds int) map[string]string {
	return map[string]string{
		"AWS_LAMBDA_FUNCTION_NAME":        name,
		"AWS_LAMBDA_FUNCTION_MEMORY_SIZE": strconv.Itoa(memoryMB),
		"AWS_LAMBDA_FUNCTION_TIMEOUT":     strconv.Itoa(timeoutSeconds),
		"AWS_REGION":                      d.Region,
		"AWS_DEFAULT_REGION":              d.Region,
		"AWS_ENDPOINT_URL":                d.Endpoint,
		"AWS_ACCESS_KEY_ID":               "AKIAIOSFODNN7EXAMPLE",
		"AWS_SECRET_ACCESS_KEY":           "motoserver-dummy-secret-not-a-real-key0",
		"AWS_EC2_METADATA_DISABLED":       "true",
		"AWS_CONFIG_FILE":                 "/dev/null",
		"AWS_SHARED_CREDENTIALS_FILE":     "/dev/null",
		// moto answers unimplemented calls with a 500 the SDK would retry.
		"AWS_MAX_ATTEMPTS":             "1",
		"AWS_ACCOUNT_ID_ENDPOINT_MODE": "disabled",
	}
}

// settings reads MemorySize and Timeout from the function, then Globals,
// then Lambda's defaults (128 MB, 3 s).
func settings(tpl *samtemplate.Template, logicalID string) (memoryMB, timeoutSeconds int) {
	props, _ := tpl.Resources[logicalID]["Properties"].(map[string]any)
	globals, _ := tpl.Globals["Function"].(map[string]any)
	pick := func(key string, def int) int {
		for _, m := range []map[string]any{props, globals} {
			if s, ok := scalar(m[key]); ok {
				if n, err := strconv.Atoi(s); err == nil && n > 0 {
					return n
				}
			}
		}
		return def
	}
	return pick("MemorySize", 128), pick("Timeout", 3)
}

// parameterDefaults reads the Default of each parameter of template.yaml
// (samtemplate does not parse Parameters).
func parameterDefaults() (map[string]string, error) {
	root, err := motoserver.ModuleRoot()
	if err != nil {
		return nil, err
	}
	raw, err := os.ReadFile(filepath.Join(root, "template.yaml"))
	if err != nil {
		return nil, fmt.Errorf("read template: %w", err)
	}
	var doc struct {
		Parameters map[string]struct {
			Default any `yaml:"Default"`
		} `yaml:"Parameters"`
	}
	if err := yaml.Unmarshal(raw, &doc); err != nil {
		return nil, fmt.Errorf("parse template parameters: %w", err)
	}
	out := map[string]string{}
	for name, p := range doc.Parameters {
		if s, ok := scalar(p.Default); ok {
			out[name] = s
		}
	}
	return out, nil
}

func randomSuffix() string {
	const alphabet = "abcdefghijklmnopqrstuvwxyz0123456789"
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	for i := range b {
		b[i] = alphabet[int(b[i])%len(alphabet)]
	}
	return string(b)
}
