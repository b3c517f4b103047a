// Package lambdatest runs the functions of template.yaml the way Lambda does,
// for tests and benchmarks on a machine without Docker: it builds a function
// into a `bootstrap` with the flags `make build` (and so `sam build`) uses,
// runs it under the Lambda Runtime Interface Emulator (aws-lambda-rie, our
// stand-in for `sam local invoke`) with the environment the template gives
// it, invokes it and reads the cold start RIE reports.
package lambdatest

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/dflow-sh/cloud-accounts/shared/motoserver"
)

// BuildFlags are the `go build` flags of the Makefile's build-%Function rule.
var BuildFlags = []string{"-tags", "lambda.norpc", "-trimpath", "-buildvcs=false", "-ldflags=-s -w"}

// Architectures: Lambda runs arm64 (template Globals); this x86 host runs
// amd64 bootstraps under RIE.
const (
	ARM64 = "arm64"
	AMD64 = "amd64"
)

// ErrNoRIE is returned when aws-lambda-rie cannot be found.
var ErrNoRIE = errors.New("aws-lambda-rie not found: run `make tools` (installs it into .tools/bin), or set AWS_LAMBDA_RIE to its path")

// RIEBinary finds aws-lambda-rie: $AWS_LAMBDA_RIE, the project's .tools/bin
// (where `make tools` puts it), then PATH.
func RIEBinary() (string, error) {
	if p := os.Getenv("AWS_LAMBDA_RIE"); p != "" {
		if _, err := os.Stat(p); err != nil {
			return "", fmt.Errorf("AWS_LAMBDA_RIE=%s: %w; unset it or run `make tools`", p, err)
		}
		return p, nil
	}
	if root, err := motoserver.ModuleRoot(); err == nil {
		p := filepath.Join(root, ".tools", "bin", "aws-lambda-rie")
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
	}
	if p, err := exec.LookPath("aws-lambda-rie"); err == nil {
		return p, nil
	}
	return "", ErrNoRIE
}

// RequireRIE returns the aws-lambda-rie path or fails tb; a missing emulator
// is a broken setup, never a reason to skip.
func RequireRIE(tb testing.TB) string {
	tb.Helper()
	p, err := RIEBinary()
	if err != nil {
		tb.Fatal(err)
	}
	return p
}

// Build compiles the package in dir (relative to the module root, e.g.
// "functions/tenants") for linux/goarch with BuildFlags and CGO_ENABLED=0,
// into a fresh temporary directory, and returns the bootstrap's path. Go's
// build cache makes a repeated build a link step only.
func Build(tb testing.TB, dir, goarch string) string {
	tb.Helper()
	root, err := motoserver.ModuleRoot()
	if err != nil {
		tb.Fatalf("build %s: %v", dir, err)
	}
	out := filepath.Join(tb.TempDir(), "bootstrap")
	args := append([]string{"build"}, BuildFlags...)
	args = append(args, "-o", out, "./"+filepath.ToSlash(filepath.Clean(dir)))
	cmd := exec.Command("go", args...)
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "GOOS=linux", "GOARCH="+goarch, "CGO_ENABLED=0")
	var output bytes.Buffer
	cmd.Stdout, cmd.Stderr = &output, &output
	if err := cmd.Run(); err != nil {
		tb.Fatalf("GOOS=linux GOARCH=%s CGO_ENABLED=0 go %v: %v\n%s", goarch, args, err, output.String())
	}
	return out
}
