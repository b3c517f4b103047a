package lambdatest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
)

// invokePath is the Lambda Invoke API path RIE serves.
const invokePath = "/2015-03-31/functions/function/invocations"

// Emulator is one aws-lambda-rie process running one bootstrap: one Lambda
// execution environment. RIE initialises the function on the first invoke,
// so every Emulator sees exactly one cold start.
type Emulator struct {
	// URL is the emulator's base URL, e.g. http://127.0.0.1:40123.
	URL string

	cmd     *exec.Cmd
	out     *syncBuffer
	exited  chan struct{}
	timeout time.Duration
	client  *http.Client

	stopOnce sync.Once
}

// Start runs bootstrap under aws-lambda-rie on a free loopback port with env
// as the whole environment of both (RIE hands its environment to the
// function; nothing of the test process's own leaks in, AWS credentials
// included). It waits until RIE listens and stops it in tb.Cleanup.
func Start(tb testing.TB, bootstrap string, env map[string]string) *Emulator {
	tb.Helper()
	rie := RequireRIE(tb)
	abs, err := filepath.Abs(bootstrap)
	if err != nil {
		tb.Fatal(err)
	}
	// A port picked by closing a listener can be taken before RIE binds it;
	// RIE then exits, and another port is tried.
	var lastErr error
	for attempt := 0; attempt < 3; attempt++ {
		e, err := start(rie, abs, env)
		if err == nil {
			tb.Cleanup(e.Stop)
			return e
		}
		lastErr = err
	}
	tb.Fatalf("start aws-lambda-rie for %s: %v", bootstrap, lastErr)
	return nil
}

func start(rie, bootstrap string, env map[string]string) (*Emulator, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	apiPort, err := freePort()
	if err != nil {
		return nil, err
	}
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	// --log-level info: RIE also reads LOG_LEVEL, which is the function's
	// variable; its INIT REPORT line is logged at info. The Runtime API
	// RIE serves the bootstrap defaults to 127.0.0.1:9001: a port of its
	// own lets several emulators run at once.
	cmd := exec.Command(rie, "--log-level", "info", "--runtime-interface-emulator-address", addr,
		"--runtime-api-address", net.JoinHostPort("127.0.0.1", strconv.Itoa(apiPort)), bootstrap)
	cmd.Dir = filepath.Dir(bootstrap)
	cmd.Env = envList(env)
	out := &syncBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	// If the test binary dies (e.g. -timeout), RIE goes with it; the
	// bootstrap then loses its Runtime API and exits on its own.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	// The function writes to RIE's output pipe too; once RIE has exited,
	// do not wait long for a straggler to close it.
	cmd.WaitDelay = time.Second
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", rie, err)
	}
	timeout := 30 * time.Second
	if s, err := strconv.Atoi(env["AWS_LAMBDA_FUNCTION_TIMEOUT"]); err == nil && s > 0 {
		timeout = time.Duration(s) * time.Second
	}
	e := &Emulator{
		URL:     "http://" + addr,
		cmd:     cmd,
		out:     out,
		exited:  make(chan struct{}),
		timeout: timeout,
		// Room for the cold start on top of the function's own timeout.
		client: &http.Client{Timeout: timeout + 10*time.Second},
	}
	go func() { _ = cmd.Wait(); close(e.exited) }()
	if err := e.waitListening(addr, 10*time.Second); err != nil {
		e.Stop()
		return nil, err
	}
	return e, nil
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("find a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func envList(env map[string]string) []string {
	out := make([]string, 0, len(env))
	for k, v := range env {
		out = append(out, k+"="+v)
	}
	sort.Strings(out)
	return out
}

// waitListening polls until RIE accepts connections (it logs nothing when
// it starts listening).
func (e *Emulator) waitListening(addr string, within time.Duration) error {
	deadline := time.Now().Add(within)
	for {
		select {
		case <-e.exited:
			return fmt.Errorf("aws-lambda-rie exited before listening on %s:\n%s", addr, e.out.String())
		default:
		}
		c, err := net.DialTimeout("tcp", addr, 100*time.Millisecond)
		if err == nil {
			c.Close()
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("aws-lambda-rie did not listen on %s within %s:\n%s", addr, within, e.out.String())
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// Invoke sends payload as a synchronous invocation and returns the
// function's result. A function error (Lambda's {"errorType",
// "errorMessage"} answer) and a failed init are errors, with RIE's log.
func (e *Emulator) Invoke(ctx context.Context, payload []byte) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, e.URL+invokePath, bytes.NewReader(payload))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := e.client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("invoke: %w\n%s", err, e.Output())
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("invoke: read result: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("invoke: RIE answered %s %s\n%s", resp.Status, body, e.Output())
	}
	var fnErr struct {
		Type    string `json:"errorType"`
		Message string `json:"errorMessage"`
	}
	if json.Unmarshal(body, &fnErr) == nil && fnErr.Type != "" {
		return nil, fmt.Errorf("invoke: function error %s: %s\n%s", fnErr.Type, fnErr.Message, e.Output())
	}
	return body, nil
}

// InvokeHTTP invokes the function with an API Gateway HTTP API event (a
// value to marshal, or raw JSON as []byte or json.RawMessage) and decodes
// its payload 2.0 response; any failure fails tb.
func (e *Emulator) InvokeHTTP(tb testing.TB, event any) events.APIGatewayV2HTTPResponse {
	tb.Helper()
	var payload []byte
	switch v := event.(type) {
	case []byte:
		payload = v
	case json.RawMessage:
		payload = v
	default:
		b, err := json.Marshal(v)
		if err != nil {
			tb.Fatalf("marshal event: %v", err)
		}
		payload = b
	}
	ctx, cancel := context.WithTimeout(context.Background(), e.timeout+10*time.Second)
	defer cancel()
	body, err := e.Invoke(ctx, payload)
	if err != nil {
		tb.Fatal(err)
	}
	var resp events.APIGatewayV2HTTPResponse
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&resp); err != nil {
		tb.Fatalf("result is not an APIGatewayV2HTTPResponse: %v: %s", err, body)
	}
	if resp.StatusCode == 0 {
		tb.Fatalf("result has no statusCode: %s", body)
	}
	return resp
}

var (
	initReport = regexp.MustCompile(`INIT REPORT\(durationMs: ([0-9.]+)\)`)
	initFailed = regexp.MustCompile(`INIT RTDONE\(status: (?:error|failure|timeout)`)
)

// ParseInitDuration reads the first cold start RIE reported in its log, the
// `INIT REPORT(durationMs: …)` line: from the bootstrap's exec to its first
// poll for an event (RIE's "Init Duration" in the REPORT line is not it: RIE
// starts init asynchronously and times only the call). A failed init is an
// error.
func ParseInitDuration(log string) (time.Duration, error) {
	if initFailed.MatchString(log) {
		return 0, errors.New("the function's init failed")
	}
	m := initReport.FindStringSubmatch(log)
	if m == nil {
		return 0, errors.New("no INIT REPORT in the emulator's log")
	}
	ms, err := strconv.ParseFloat(m[1], 64)
	if err != nil {
		return 0, fmt.Errorf("INIT REPORT duration %q: %w", m[1], err)
	}
	return time.Duration(ms * float64(time.Millisecond)), nil
}

// InitDuration returns the cold start of the function, waiting briefly for
// RIE's log to show it; call it after the first Invoke.
func (e *Emulator) InitDuration() (time.Duration, error) {
	deadline := time.Now().Add(5 * time.Second)
	for {
		log := e.out.String()
		d, err := ParseInitDuration(log)
		switch {
		case err == nil:
			return d, nil
		case initFailed.MatchString(log), time.Now().After(deadline):
			return 0, fmt.Errorf("%w:\n%s", err, log)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// Output is everything RIE and the function wrote so far.
func (e *Emulator) Output() string { return e.out.String() }

// Stop kills RIE and the function process and waits for RIE to exit. It is
// safe to call more than once. RIE takes about 2 s to shut down on SIGTERM,
// which adds up over many cold starts, so both are killed outright: RIE
// starts the function in a process group of its own, so that group is
// killed too.
func (e *Emulator) Stop() {
	e.stopOnce.Do(func() {
		if e.cmd.Process == nil {
			return
		}
		children := childPIDs(e.cmd.Process.Pid)
		_ = e.cmd.Process.Kill()
		for _, pid := range children {
			_ = syscall.Kill(-pid, syscall.SIGKILL)
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
		select {
		case <-e.exited:
		case <-time.After(10 * time.Second):
		}
	})
}

// childPIDs lists pid's children (Linux /proc); an empty list when unknown.
func childPIDs(pid int) []int {
	tasks, _ := filepath.Glob(filepath.Join("/proc", strconv.Itoa(pid), "task", "*", "children"))
	var out []int
	for _, t := range tasks {
		b, err := os.ReadFile(t)
		if err != nil {
			continue
		}
		for _, f := range strings.Fields(string(b)) {
			if n, err := strconv.Atoi(f); err == nil {
				out = append(out, n)
			}
		}
	}
	return out
}

// syncBuffer collects a process's output while tests read it.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
