// Package motoserver starts and talks to a moto_server process: the AWS
// emulator the tests and the local API run against. Tests get one server per
// test process and isolate themselves by table name or moto account.
package motoserver

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/feature/ec2/imds"
)

// Server is a running moto_server.
type Server struct {
	URL  string
	cmd  *exec.Cmd
	done chan struct{}
}

// Options tune the server.
type Options struct {
	// Env is added to the server's environment (e.g. MOTO_ENABLE_AMI_VALIDATION=true).
	Env []string
	// Log receives the server's output; nil discards it.
	Log io.Writer
}

// DefaultEnv turns on the validation moto leaves off by default, so tests see
// AWS's answers for unknown AMIs, instance types and key pairs.
var DefaultEnv = []string{
	"MOTO_ENABLE_AMI_VALIDATION=true",
	"MOTO_EC2_ENABLE_INSTANCE_TYPE_VALIDATION=true",
	"MOTO_ENABLE_KEYPAIR_VALIDATION=true",
}

// ErrNotInstalled is returned when no moto_server binary can be found.
var ErrNotInstalled = errors.New("moto_server not found: run `make tools` (installs it into .venv) or set MOTO_SERVER to its path")

// Binary finds moto_server: $MOTO_SERVER, the project's .venv, then PATH.
func Binary() (string, error) {
	if p := os.Getenv("MOTO_SERVER"); p != "" {
		return p, nil
	}
	if root, err := ModuleRoot(); err == nil {
		p := filepath.Join(root, ".venv", "bin", "moto_server")
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
	}
	if p, err := exec.LookPath("moto_server"); err == nil {
		return p, nil
	}
	return "", ErrNotInstalled
}

// ModuleRoot walks up from the working directory to the directory of go.mod.
func ModuleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("no go.mod above the working directory")
		}
		dir = parent
	}
}

var listening = regexp.MustCompile(`Running on (http://127\.0\.0\.1:\d+)`)

// Start runs moto_server on a free loopback port and waits until it answers.
func Start(ctx context.Context, opts Options) (*Server, error) {
	bin, err := Binary()
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, "-H", "127.0.0.1", "-p", "0")
	cmd.Env = append(os.Environ(), opts.Env...)
	// Its own process group, so stopping it takes any workers with it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return nil, err
	}
	out := opts.Log
	if out == nil {
		out = io.Discard
	}
	cmd.Stdout = out
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", bin, err)
	}
	s := &Server{cmd: cmd, done: make(chan struct{})}
	found := make(chan string, 1)
	go func() {
		// Keep draining stderr for the server's whole life, or it blocks.
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			line := sc.Text()
			if m := listening.FindStringSubmatch(line); m != nil {
				select {
				case found <- m[1]:
				default:
				}
			}
			fmt.Fprintln(out, line)
		}
	}()
	go func() { _ = cmd.Wait(); close(s.done) }()

	select {
	case s.URL = <-found:
	case <-s.done:
		return nil, fmt.Errorf("moto_server exited before listening")
	case <-time.After(30 * time.Second):
		s.Stop()
		return nil, fmt.Errorf("moto_server did not start within 30s")
	case <-ctx.Done():
		s.Stop()
		return nil, ctx.Err()
	}
	if err := s.waitReady(ctx); err != nil {
		s.Stop()
		return nil, err
	}
	return s, nil
}

func (s *Server) waitReady(ctx context.Context) error {
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, s.URL+"/moto-api/data.json", nil)
		if resp, err := http.DefaultClient.Do(req); err == nil {
			resp.Body.Close()
			return nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("moto_server at %s did not answer", s.URL)
}

// Stop ends the server and waits for it.
func (s *Server) Stop() {
	if s == nil || s.cmd.Process == nil {
		return
	}
	_ = syscall.Kill(-s.cmd.Process.Pid, syscall.SIGTERM)
	select {
	case <-s.done:
	case <-time.After(5 * time.Second):
		_ = syscall.Kill(-s.cmd.Process.Pid, syscall.SIGKILL)
		<-s.done
	}
}

// post sends a control request to the moto API.
func (s *Server) post(ctx context.Context, path, body string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.URL+path, strings.NewReader(body))
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode >= 300 {
		b, _ := io.ReadAll(resp.Body)
		return fmt.Errorf("moto %s: %s: %s", path, resp.Status, b)
	}
	return nil
}

// Config is an SDK configuration that talks to the server with dummy keys,
// ignoring the machine's own AWS configuration.
func (s *Server) Config(ctx context.Context, region string) (aws.Config, error) {
	return config.LoadDefaultConfig(ctx,
		config.WithRegion(region),
		config.WithBaseEndpoint(s.URL),
		config.WithCredentialsProvider(credentials.NewStaticCredentialsProvider("AKIAIOSFODNN7EXAMPLE", "motoserver-dummy-secret-not-a-real-key0", "")),
		config.WithSharedConfigFiles([]string{}),
		config.WithSharedCredentialsFiles([]string{}),
		config.WithEC2IMDSClientEnableState(imds.ClientDisabled),
		config.WithAccountIDEndpointMode(aws.AccountIDEndpointModeDisabled),
		// The standard retryer stays on: moto's server drops idle keep-alive
		// connections, which the SDK retries as AWS clients would. (An
		// unimplemented call's HTML 500 is retried too, only slower.)
		config.WithRetryMaxAttempts(3),
	)
}

var (
	sharedOnce sync.Once
	shared     *Server
	sharedErr  error
)

// Shared returns the test process's server, starting it on first use. A
// missing moto fails the test with a clear message; it never skips.
func Shared(t testing.TB) *Server {
	t.Helper()
	sharedOnce.Do(func() {
		shared, sharedErr = Start(context.Background(), Options{Env: DefaultEnv})
	})
	if sharedErr != nil {
		t.Fatalf("AWS emulator: %v", sharedErr)
	}
	return shared
}

// TestConfig is Shared(t).Config for the default test region.
func TestConfig(t testing.TB) aws.Config {
	t.Helper()
	cfg, err := Shared(t).Config(context.Background(), "us-east-1")
	if err != nil {
		t.Fatalf("aws config: %v", err)
	}
	return cfg
}

// Main runs a package's tests and stops the shared server afterwards; call it
// from TestMain.
func Main(m *testing.M) {
	code := m.Run()
	if shared != nil {
		shared.Stop()
	}
	os.Exit(code)
}
