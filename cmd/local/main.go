// Command local runs the API on this machine as it runs on AWS: every
// function of template.yaml is built and run as a real Lambda bootstrap
// behind a local Lambda Runtime API, requests reach them as API Gateway
// payload 2.0 events after a local JWT authorizer, and AWS calls go to moto
// (started here) or to AWS_ENDPOINT_URL.
//
//	go run ./cmd/local [-template template.yaml] [-env env.json]
//
// PORT (default 3000) sets the port on 127.0.0.1.
package main

import (
	"cmp"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/dflow-sh/cloud-accounts/shared/motoserver"
	"github.com/dflow-sh/cloud-accounts/shared/samtemplate"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	// After the first signal, a second one kills at once.
	go func() { <-ctx.Done(); stop() }()
	if err := run(ctx, os.Args[1:], os.Environ(), os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "local API:", err)
		os.Exit(1)
	}
}

// run serves until ctx ends (a signal), then stops everything it started.
func run(ctx context.Context, args, environ []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("local", flag.ContinueOnError)
	fs.SetOutput(stderr)
	templateFlag := fs.String("template", "", "SAM template (default: template.yaml at the module root)")
	envFlag := fs.String("env", "", "environment overrides in sam local's env.json format (default: env.json at the module root)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	env := envMap(environ)
	out := &syncWriter{w: stderr}
	log := slog.New(slog.NewJSONHandler(out, nil))

	root, err := motoserver.ModuleRoot()
	if err != nil {
		return fmt.Errorf("find the module root: %w", err)
	}
	templatePath, err := pathFlag(*templateFlag, filepath.Join(root, "template.yaml"))
	if err != nil {
		return err
	}
	envPath, err := pathFlag(*envFlag, filepath.Join(root, "env.json"))
	if err != nil {
		return err
	}
	tpl, err := samtemplate.Load(templatePath)
	if err != nil {
		return err
	}
	// Listen first: a busy port fails before minutes of building.
	addr := "127.0.0.1:" + cmp.Or(env["PORT"], "3000")
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("listen on %s (set PORT for another port): %w", addr, err)
	}
	defer ln.Close()

	api, err := newLocalAPI(ctx, options{
		Root:        root,
		Template:    tpl,
		EnvPath:     envPath,
		EnvRequired: *envFlag != "",
		Endpoint:    env["AWS_ENDPOINT_URL"],
		ParentEnv:   env,
		StateDir:    filepath.Join(root, ".local"),
		Output:      out,
		Log:         log,
	})
	if err != nil {
		if ctx.Err() != nil {
			log.Info("interrupted during startup")
			return nil
		}
		return err
	}
	defer api.Close()

	srv := &http.Server{Handler: api.Handler, ReadHeaderTimeout: 10 * time.Second}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	if err := api.printQuickStart(stdout, "http://"+ln.Addr().String()); err != nil {
		return err
	}

	select {
	case <-ctx.Done():
		log.Info("stopping")
	case err := <-served:
		return fmt.Errorf("serve: %w", err)
	}
	shutdownCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil && !errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("shutdown: %w", err)
	}
	return nil
}

// pathFlag makes an explicit flag path absolute against the working
// directory; an unset flag takes the default under the module root.
func pathFlag(value, def string) (string, error) {
	if value == "" {
		return def, nil
	}
	abs, err := filepath.Abs(value)
	if err != nil {
		return "", fmt.Errorf("path %s: %w", value, err)
	}
	return abs, nil
}
