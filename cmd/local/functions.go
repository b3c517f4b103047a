package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Why an invocation produced no function result. FunctionError is the third
// case: the function ran and reported an error.
var (
	// ErrTimeout: the function did not answer before its deadline; its process
	// was killed, as Lambda resets a sandbox after a timeout.
	ErrTimeout = errors.New("function timed out")
	// ErrCrashed: the process exited (or could not start) before answering.
	ErrCrashed = errors.New("function process exited")
	// ErrPayloadTooLarge: the event exceeds Lambda's synchronous payload limit.
	ErrPayloadTooLarge = errors.New("request payload too large")
)

// functionConfig describes one function process.
type functionConfig struct {
	// Name is the logical id; it is also AWS_LAMBDA_FUNCTION_NAME.
	Name   string
	Binary string
	// Env is the process environment, without AWS_LAMBDA_RUNTIME_API.
	Env      map[string]string
	Timeout  time.Duration
	MemoryMB int
	Region   string
	// Output receives the process's stdout and stderr.
	Output io.Writer
}

// function runs one Lambda bootstrap as a child process behind its own
// Runtime API, restarting it when it exits, and serves invocations one at a
// time as a single Lambda execution environment does.
type function struct {
	cfg  functionConfig
	log  *slog.Logger
	rt   *runtimeAPI
	srv  *http.Server
	addr string
	arn  string
	// slot holds a token while an invocation runs; waiting callers queue on it.
	slot chan struct{}

	mu  sync.Mutex
	cur *instance

	stop context.CancelFunc
	done chan struct{}
}

// instance is one run of the process.
type instance struct {
	exited chan struct{}
	once   sync.Once
	err    error // why it ended; read only after exited is closed

	mu      sync.Mutex
	pid     int
	initErr *FunctionError
}

func newInstance() *instance { return &instance{exited: make(chan struct{})} }

func (in *instance) finish(err error) {
	in.once.Do(func() {
		in.mu.Lock()
		if in.initErr != nil {
			err = fmt.Errorf("%w (init error %s: %s)", err, in.initErr.Type, in.initErr.Message)
		}
		in.mu.Unlock()
		in.err = err
		close(in.exited)
	})
}

// kill ends the process and everything it started.
func (in *instance) kill() {
	in.mu.Lock()
	pid := in.pid
	in.mu.Unlock()
	if pid > 0 {
		_ = syscall.Kill(-pid, syscall.SIGKILL)
	}
}

// startFunction serves the function's Runtime API on a free loopback port and
// starts its process.
func startFunction(ctx context.Context, cfg functionConfig, log *slog.Logger) (*function, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("runtime API listener for %s: %w", cfg.Name, err)
	}
	f := &function{
		cfg:  cfg,
		log:  log.With("function", cfg.Name),
		addr: ln.Addr().String(),
		arn:  fmt.Sprintf("arn:aws:lambda:%s:%s:function:%s", cfg.Region, accountID, cfg.Name),
		slot: make(chan struct{}, 1),
		cur:  newInstance(),
		done: make(chan struct{}),
	}
	f.rt = newRuntimeAPI(f.log, f.reportInitError)
	f.srv = &http.Server{Handler: f.rt.handler(), ReadHeaderTimeout: 10 * time.Second}
	go func() {
		if err := f.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			f.log.Error("runtime API stopped", "err", err)
		}
	}()
	ctx, f.stop = context.WithCancel(ctx)
	go f.supervise(ctx)
	return f, nil
}

func (f *function) current() *instance {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.cur
}

func (f *function) reportInitError(fe *FunctionError) {
	f.log.Error("function init failed", "errorType", fe.Type, "errorMessage", fe.Message)
	in := f.current()
	in.mu.Lock()
	in.initErr = fe
	in.mu.Unlock()
}

// supervise runs the process until ctx ends, restarting it whenever it exits,
// with a growing pause when it keeps dying young (a broken init).
func (f *function) supervise(ctx context.Context) {
	defer close(f.done)
	var backoff time.Duration
	for {
		in := f.current()
		started := time.Now()
		err := f.runProcess(ctx, in)
		if ctx.Err() != nil {
			in.finish(fmt.Errorf("%s: %w: stopped", f.cfg.Name, ErrCrashed))
			return
		}
		// Swap in the next instance before failing waiters of this one, so
		// that queued invocations wait for the restarted process.
		next := newInstance()
		f.mu.Lock()
		f.cur = next
		f.mu.Unlock()
		in.finish(fmt.Errorf("%s: %w: %v", f.cfg.Name, ErrCrashed, err))
		if time.Since(started) < 5*time.Second {
			backoff = min(max(2*backoff, 100*time.Millisecond), 5*time.Second)
		} else {
			backoff = 0
		}
		f.log.Warn("function process exited; restarting", "err", err, "restartIn", backoff.String())
		select {
		case <-ctx.Done():
			next.finish(fmt.Errorf("%s: %w: stopped", f.cfg.Name, ErrCrashed))
			return
		case <-time.After(backoff):
		}
	}
}

func (f *function) runProcess(ctx context.Context, in *instance) error {
	cmd := exec.CommandContext(ctx, f.cfg.Binary)
	cmd.Env = envList(f.cfg.Env, map[string]string{"AWS_LAMBDA_RUNTIME_API": f.addr})
	// One writer for both streams: exec then uses a single pipe, so lines of
	// stdout and stderr never interleave mid-line.
	cmd.Stdout = f.cfg.Output
	cmd.Stderr = f.cfg.Output
	// Its own process group: a terminal's Ctrl-C reaches only the local API,
	// which then stops the functions in order.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM) }
	cmd.WaitDelay = 2 * time.Second
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start %s: %w", f.cfg.Binary, err)
	}
	in.mu.Lock()
	in.pid = cmd.Process.Pid
	in.mu.Unlock()
	return cmd.Wait()
}

// waitReady waits until the process has finished its init and polls for
// work, or fails if it exits first.
func (f *function) waitReady(ctx context.Context) error {
	in := f.current()
	select {
	case <-f.rt.polled:
		return nil
	case <-in.exited:
		return fmt.Errorf("%s did not start: %w", f.cfg.Name, in.err)
	case <-ctx.Done():
		return fmt.Errorf("%s did not poll the runtime API: %w", f.cfg.Name, ctx.Err())
	}
}

// Invoke runs one synchronous invocation and returns the function's result.
// Callers queue until the function is free. Once the event is handed over,
// the invocation runs to its end even if ctx is cancelled, as on Lambda.
func (f *function) Invoke(ctx context.Context, payload []byte) ([]byte, error) {
	if len(payload) > maxPayload {
		return nil, fmt.Errorf("%s: %w: %d bytes", f.cfg.Name, ErrPayloadTooLarge, len(payload))
	}
	select {
	case f.slot <- struct{}{}:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	defer func() { <-f.slot }()

	in := f.current()
	inv := newInvocation(payload, time.Now().Add(f.cfg.Timeout), f.arn)
	timer := time.NewTimer(time.Until(inv.deadline))
	defer timer.Stop()
	select {
	case f.rt.queue <- inv:
	case <-in.exited:
		return nil, in.err
	case <-timer.C:
		return nil, f.timedOut(in, inv)
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	defer f.rt.forget(inv.id)
	select {
	case out := <-inv.done:
		if out.err != nil {
			return nil, out.err
		}
		return out.body, nil
	case <-in.exited:
		return nil, in.err
	case <-timer.C:
		return nil, f.timedOut(in, inv)
	}
}

// timedOut kills the process, as Lambda does, and waits until the supervisor
// has swapped in the next one, so the next caller does not meet the dead one.
func (f *function) timedOut(in *instance, inv *invocation) error {
	f.log.Warn("function timed out; restarting it", "requestId", inv.id, "timeout", f.cfg.Timeout.String())
	in.kill()
	<-in.exited
	return fmt.Errorf("%s: %w after %s", f.cfg.Name, ErrTimeout, f.cfg.Timeout)
}

// Stop ends the process and the Runtime API.
func (f *function) Stop() {
	f.stop()
	<-f.done
	_ = f.srv.Close()
}

// buildFunction compiles a function package into a native bootstrap, as the
// Makefile does for Lambda but for this machine's OS and architecture.
func buildFunction(ctx context.Context, root, pkgDir, out string, output io.Writer) error {
	cmd := exec.CommandContext(ctx, "go", "build", "-tags", "lambda.norpc", "-o", out, "./"+filepath.ToSlash(filepath.Clean(pkgDir)))
	cmd.Dir = root
	cmd.Env = envList(envMap(os.Environ()), map[string]string{"GOOS": runtime.GOOS, "GOARCH": runtime.GOARCH})
	var stderr bytes.Buffer
	cmd.Stdout = output
	cmd.Stderr = io.MultiWriter(output, &stderr)
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("go build ./%s: %w\n%s", pkgDir, err, bytes.TrimSpace(stderr.Bytes()))
	}
	return nil
}

// lineWriter writes each complete line to out behind prefix. Partial lines
// wait for their end, so output of several processes never mixes mid-line.
type lineWriter struct {
	out    *syncWriter
	prefix string
	// skip drops lines (e.g. an emulator's access log); may be nil.
	skip func([]byte) bool

	mu  sync.Mutex
	buf []byte
}

const maxLine = 256 << 10

func (w *lineWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf = append(w.buf, p...)
	for {
		i := bytes.IndexByte(w.buf, '\n')
		if i < 0 {
			break
		}
		w.emit(w.buf[:i])
		w.buf = append(w.buf[:0], w.buf[i+1:]...)
	}
	if len(w.buf) > maxLine {
		w.emit(w.buf)
		w.buf = w.buf[:0]
	}
	return len(p), nil
}

func (w *lineWriter) emit(line []byte) {
	line = bytes.TrimSuffix(line, []byte("\r"))
	if w.skip != nil && w.skip(line) {
		return
	}
	w.out.write(w.prefix, line)
}

// syncWriter serialises whole lines from many writers onto one stream.
type syncWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (s *syncWriter) write(prefix string, line []byte) {
	b := make([]byte, 0, len(prefix)+len(line)+1)
	b = append(append(append(b, prefix...), line...), '\n')
	s.mu.Lock()
	defer s.mu.Unlock()
	_, _ = s.w.Write(b)
}

// Write lets the local API's own logger share the stream.
func (s *syncWriter) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.Write(p)
}

// envMap parses KEY=VALUE pairs; later pairs win.
func envMap(environ []string) map[string]string {
	m := make(map[string]string, len(environ))
	for _, kv := range environ {
		k, v, ok := strings.Cut(kv, "=")
		if ok && k != "" {
			m[k] = v
		}
	}
	return m
}

// envList merges maps (later ones win) into a sorted KEY=VALUE list.
func envList(maps ...map[string]string) []string {
	merged := map[string]string{}
	for _, m := range maps {
		for k, v := range m {
			merged[k] = v
		}
	}
	out := make([]string, 0, len(merged))
	for k, v := range merged {
		out = append(out, k+"="+v)
	}
	sort.Strings(out)
	return out
}

// lambdaEnv is what the Lambda service sets in every execution environment.
func lambdaEnv(cfg functionConfig) map[string]string {
	return map[string]string{
		"AWS_LAMBDA_FUNCTION_NAME":        cfg.Name,
		"AWS_LAMBDA_FUNCTION_MEMORY_SIZE": strconv.Itoa(cfg.MemoryMB),
		"AWS_LAMBDA_FUNCTION_VERSION":     "$LATEST",
		"AWS_LAMBDA_LOG_FORMAT":           "JSON",
		"AWS_LAMBDA_LOG_GROUP_NAME":       "/aws/lambda/" + cfg.Name,
		"AWS_REGION":                      cfg.Region,
		"AWS_DEFAULT_REGION":              cfg.Region,
		"_HANDLER":                        "bootstrap",
	}
}
