package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/dflow-sh/cloud-accounts/shared/samtemplate"
)

// accountID is the account the local API pretends to run in (moto's default).
const accountID = "123456789012"

// envFile is env.json in `sam local`'s format: "Parameters" applies to every
// function, an entry named after a function's logical id to that function
// only. Like sam local, it only sets variables the template declares.
type envFile struct {
	Parameters map[string]string
	Functions  map[string]map[string]string
}

// loadEnvFile reads env.json; a missing file is an empty one unless required.
func loadEnvFile(path string, required bool) (envFile, error) {
	ef := envFile{Parameters: map[string]string{}, Functions: map[string]map[string]string{}}
	raw, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) && !required {
		return ef, nil
	}
	if err != nil {
		return ef, fmt.Errorf("read env file: %w", err)
	}
	var doc map[string]map[string]any
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	if err := dec.Decode(&doc); err != nil {
		return ef, fmt.Errorf("parse env file %s: want {\"Parameters\": {\"VAR\": \"value\"}, \"<LogicalId>\": {...}}: %w", path, err)
	}
	for section, vars := range doc {
		out := make(map[string]string, len(vars))
		for name, v := range vars {
			s, ok := scalarString(v)
			if !ok {
				return ef, fmt.Errorf("env file %s: %s.%s: want a string, number or boolean, got %T", path, section, name, v)
			}
			out[name] = s
		}
		if section == "Parameters" {
			ef.Parameters = out
		} else {
			ef.Functions[section] = out
		}
	}
	return ef, nil
}

func scalarString(v any) (string, bool) {
	switch x := v.(type) {
	case string:
		return x, true
	case json.Number:
		return x.String(), true
	case bool:
		return strconv.FormatBool(x), true
	case int:
		return strconv.Itoa(x), true
	case float64:
		return strconv.FormatFloat(x, 'f', -1, 64), true
	}
	return "", false
}

// resolveEnv gives every function the environment its template declares:
// Globals, then the function's own variables; a value from env.json wins
// (the function's entry over "Parameters"); plain template values are used
// as they are; intrinsic functions must be resolved by env.json, except
// pseudo parameters such as AWS::Region. All unresolved variables are
// reported in one error.
func resolveEnv(tpl *samtemplate.Template, ef envFile, region string) (map[string]map[string]string, error) {
	out := map[string]map[string]string{}
	var missing []string
	for _, fn := range tpl.Functions {
		declared := map[string]any{}
		for k, v := range tpl.GlobalEnv() {
			declared[k] = v
		}
		for k, v := range fn.Env {
			declared[k] = v
		}
		env := map[string]string{}
		for name, v := range declared {
			if s, ok := ef.Functions[fn.LogicalID][name]; ok {
				env[name] = s
				continue
			}
			if s, ok := ef.Parameters[name]; ok {
				env[name] = s
				continue
			}
			if s, ok := templateValue(v, region); ok {
				env[name] = s
				continue
			}
			raw, _ := json.Marshal(v)
			missing = append(missing, fmt.Sprintf("%s of %s (template value %s)", name, fn.LogicalID, raw))
		}
		out[fn.LogicalID] = env
	}
	if len(missing) > 0 {
		sort.Strings(missing)
		return nil, fmt.Errorf("unresolved environment variables: %s; set them in env.json, e.g. {\"Parameters\": {\"VAR\": \"value\"}} or per function {\"<LogicalId>\": {\"VAR\": \"value\"}}",
			strings.Join(missing, "; "))
	}
	return out, nil
}

var subVar = regexp.MustCompile(`\$\{([^}!]+)\}`)

// templateValue is a template value the local API can resolve on its own: a
// scalar, a pseudo parameter, or a Fn::Sub string made of pseudo parameters.
func templateValue(v any, region string) (string, bool) {
	if s, ok := scalarString(v); ok {
		return s, true
	}
	m, ok := v.(map[string]any)
	if !ok || len(m) != 1 {
		return "", false
	}
	pseudo := map[string]string{
		"AWS::Region":    region,
		"AWS::AccountId": accountID,
		"AWS::Partition": "aws",
		"AWS::URLSuffix": "amazonaws.com",
	}
	if ref, ok := m["Ref"].(string); ok {
		s, ok := pseudo[ref]
		return s, ok
	}
	if sub, ok := m["Fn::Sub"].(string); ok {
		resolved := true
		s := subVar.ReplaceAllStringFunc(sub, func(expr string) string {
			val, ok := pseudo[subVar.FindStringSubmatch(expr)[1]]
			if !ok {
				resolved = false
			}
			return val
		})
		return s, resolved
	}
	return "", false
}

// functionSettings reads MemorySize and Timeout from the function, then
// Globals, then Lambda's defaults (128 MB, 3 s).
func functionSettings(tpl *samtemplate.Template, logicalID string) (memoryMB int, timeout time.Duration) {
	props, _ := tpl.Resources[logicalID]["Properties"].(map[string]any)
	globals, _ := tpl.Globals["Function"].(map[string]any)
	pick := func(key string, def int) int {
		for _, m := range []map[string]any{props, globals} {
			if s, ok := scalarString(m[key]); ok {
				if n, err := strconv.ParseFloat(s, 64); err == nil && n > 0 {
					return int(n)
				}
			}
		}
		return def
	}
	return pick("MemorySize", 128), time.Duration(pick("Timeout", 3)) * time.Second
}

// routeAuth reports whether an HttpApi event uses the API's JWT authorizer:
// every route does, unless its event says Auth: {Authorizer: NONE}.
func routeAuth(tpl *samtemplate.Template, logicalID, event string) bool {
	props, _ := tpl.Resources[logicalID]["Properties"].(map[string]any)
	events, _ := props["Events"].(map[string]any)
	ev, _ := events[event].(map[string]any)
	evProps, _ := ev["Properties"].(map[string]any)
	auth, _ := evProps["Auth"].(map[string]any)
	return auth["Authorizer"] != "NONE"
}
