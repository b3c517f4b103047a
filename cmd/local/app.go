package main

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/dflow-sh/cloud-accounts/shared/samtemplate"
)

// options is everything the local API is built from.
type options struct {
	// Root is the module root: functions are built there.
	Root     string
	Template *samtemplate.Template
	EnvPath  string
	// EnvRequired makes a missing env file an error (it was named explicitly).
	EnvRequired bool
	// Endpoint is the AWS endpoint; empty starts moto.
	Endpoint string
	// ParentEnv is the local API's environment, which functions inherit.
	ParentEnv map[string]string
	// StateDir holds built binaries (bin/) and the JWT key (jwt/).
	StateDir string
	// Output receives function, build and emulator output, line-prefixed.
	Output *syncWriter
	Log    *slog.Logger
}

// localAPI is a running local API: function processes, AWS backend, handler.
type localAPI struct {
	Handler   http.Handler
	issuer    *issuer
	aws       *awsBackend
	functions []*function
	routes    []route
	schedules []schedule
}

// newLocalAPI resolves configuration, builds and starts every function and
// readies AWS. It fails fast: a config error is reported before anything is
// built or started.
func newLocalAPI(ctx context.Context, cfg options) (_ *localAPI, err error) {
	region := cmp.Or(cfg.ParentEnv["AWS_REGION"], cfg.ParentEnv["AWS_DEFAULT_REGION"], "us-east-1")
	ef, err := loadEnvFile(cfg.EnvPath, cfg.EnvRequired)
	if err != nil {
		return nil, err
	}
	envs, err := resolveEnv(cfg.Template, ef, region)
	if err != nil {
		return nil, err
	}
	routes, err := compileRoutes(cfg.Template)
	if err != nil {
		return nil, err
	}
	if err := prepareStateDir(cfg.StateDir); err != nil {
		return nil, err
	}
	iss, err := loadIssuer(filepath.Join(cfg.StateDir, "jwt"))
	if err != nil {
		return nil, err
	}

	binDir := filepath.Join(cfg.StateDir, "bin")
	for _, fn := range cfg.Template.Functions {
		cfg.Log.Info("building function", "function", fn.LogicalID, "package", "./"+fn.Dir)
		bin := filepath.Join(binDir, fn.LogicalID)
		if err := buildFunction(ctx, cfg.Root, fn.Dir, bin, &lineWriter{out: cfg.Output, prefix: "[build " + fn.LogicalID + "] "}); err != nil {
			return nil, fmt.Errorf("build %s: %w", fn.LogicalID, err)
		}
	}

	api := &localAPI{issuer: iss, routes: routes}
	defer func() {
		if err != nil {
			api.Close()
		}
	}()
	api.aws, err = setupAWS(ctx, cfg.Root, cfg.Endpoint, region, cfg.ParentEnv, cfg.Output, cfg.Log)
	if err != nil {
		return nil, err
	}
	if err := ensureTables(ctx, api.aws.Config, envs, cfg.Log); err != nil {
		return nil, err
	}

	invokers := map[string]invoker{}
	for _, fn := range cfg.Template.Functions {
		mem, timeout := functionSettings(cfg.Template, fn.LogicalID)
		fc := functionConfig{
			Name:     fn.LogicalID,
			Binary:   filepath.Join(binDir, fn.LogicalID),
			Timeout:  timeout,
			MemoryMB: mem,
			Region:   region,
			Output:   &lineWriter{out: cfg.Output, prefix: "[" + fn.LogicalID + "] "},
		}
		fc.Env = mergeEnv(cfg.ParentEnv, api.aws.Env, envs[fn.LogicalID], lambdaEnv(fc))
		// Processes live until Close, not until ctx ends: in-flight requests finish first.
		f, err := startFunction(context.WithoutCancel(ctx), fc, cfg.Log)
		if err != nil {
			return nil, err
		}
		api.functions = append(api.functions, f)
		invokers[fn.LogicalID] = f
	}
	readyCtx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	for _, f := range api.functions {
		if err := f.waitReady(readyCtx); err != nil {
			return nil, fmt.Errorf("%w (its output is above, prefixed [%s])", err, f.cfg.Name)
		}
	}

	gw := &gateway{routes: routes, functions: invokers, auth: iss, log: cfg.Log, now: time.Now}
	sch := newScheduler(cfg.Template, invokers, cfg.Log)
	api.schedules = sch.schedules
	api.Handler = newMux(gw, sch)
	return api, nil
}

// Close stops every function process and moto if it was started here.
func (a *localAPI) Close() {
	var wg sync.WaitGroup
	for _, f := range a.functions {
		wg.Add(1)
		go func() { defer wg.Done(); f.Stop() }()
	}
	wg.Wait()
	a.aws.Stop()
}

// prepareStateDir makes .local and keeps it out of git whatever the
// repository's .gitignore says: it holds a private key.
func prepareStateDir(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("state dir: %w", err)
	}
	ignore := filepath.Join(dir, ".gitignore")
	if _, err := os.Stat(ignore); errors.Is(err, os.ErrNotExist) {
		if err := os.WriteFile(ignore, []byte("# Local API state (built functions, JWT signing key): never commit.\n*\n"), 0o644); err != nil {
			return fmt.Errorf("state dir: %w", err)
		}
	}
	return nil
}

func mergeEnv(maps ...map[string]string) map[string]string {
	out := map[string]string{}
	for _, m := range maps {
		for k, v := range m {
			out[k] = v
		}
	}
	return out
}

// printQuickStart tells a newcomer what to do next.
func (a *localAPI) printQuickStart(w io.Writer, baseURL string) error {
	token, err := a.issuer.issue("alice", "alice@example.com", defaultTokenTTL, time.Now())
	if err != nil {
		return err
	}
	var b strings.Builder
	p := func(format string, args ...any) { fmt.Fprintf(&b, format+"\n", args...) }
	p("")
	p("Local API ready at %s", baseURL)
	p("AWS: %s", a.aws.describe())
	p("")
	p("A token for user \"alice\" (valid %d hours):", int(defaultTokenTTL.Hours()))
	p("")
	p("  export TOKEN=%s", token)
	p("")
	p("Try it:")
	p("")
	p(`  curl -s -X POST %s/v1/orgs -H "Authorization: Bearer $TOKEN" -H 'Content-Type: application/json' -d '{"name":"Acme"}'`, baseURL)
	p(`  curl -s %s/v1/orgs -H "Authorization: Bearer $TOKEN"`, baseURL)
	p(`  curl -s %s/v1/orgs/ORG_ID/roles -H "Authorization: Bearer $TOKEN"    # ORG_ID: the "id" the first call returned`, baseURL)
	p("")
	p("A token for another user (ttlSeconds optional, default 12h):")
	p("")
	p(`  curl -s -X POST %s/_local/token -d '{"sub":"bob","email":"bob@example.com"}'`, baseURL)
	p("")
	p("Routes (from template.yaml):")
	sorted := append([]route(nil), a.routes...)
	sort.Slice(sorted, func(i, j int) bool { return sorted[i].key < sorted[j].key })
	for _, r := range sorted {
		auth := ""
		if !r.auth {
			auth = "  (no auth)"
		}
		p("  %-45s %s%s", r.key, r.function, auth)
	}
	if len(a.schedules) > 0 {
		p("")
		p("Schedules (run one now with: curl -s -X POST %s/_local/schedules/NAME):", baseURL)
		for _, s := range a.schedules {
			p("  %-30s %s  %s", kebab(s.Name), s.Function, s.Expression)
		}
	}
	p("")
	p("Function logs go to stderr, prefixed with the function's name. Ctrl-C stops everything.")
	_, err = io.WriteString(w, b.String())
	return err
}
