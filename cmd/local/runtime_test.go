package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

// buildEcho builds the test bootstrap in testdata/echo.
func buildEcho(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "echo")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	if err := buildFunction(ctx, ".", "testdata/echo", bin, testOutput(t)); err != nil {
		t.Fatal(err)
	}
	return bin
}

// startEcho runs the echo bootstrap behind a Runtime API.
func startEcho(t *testing.T, bin string, timeout time.Duration, env map[string]string) *function {
	t.Helper()
	cfg := functionConfig{Name: "EchoFunction", Binary: bin, Timeout: timeout, MemoryMB: 128, Region: "us-east-1", Output: &lineWriter{out: testOutput(t), prefix: "[EchoFunction] "}}
	cfg.Env = mergeEnv(envMap(os.Environ()), env, lambdaEnv(cfg))
	f, err := startFunction(context.Background(), cfg, discardLogger())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(f.Stop)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := f.waitReady(ctx); err != nil {
		t.Fatal(err)
	}
	return f
}

func invokeCtx(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	return ctx
}

func TestRuntimeAPIRoundTrip(t *testing.T) {
	f := startEcho(t, buildEcho(t), 30*time.Second, nil)
	ctx := invokeCtx(t)

	// Several callers at once: the function serves them one at a time.
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			in := fmt.Sprintf(`{"n":%d}`, i)
			out, err := f.Invoke(ctx, []byte(in))
			if err != nil {
				errs <- err
				return
			}
			if want := `{"ran":` + in + `}`; string(out) != want {
				errs <- fmt.Errorf("result = %s, want %s", out, want)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}

	// An HTTP event: the bootstrap sees the Lambda context the API passes.
	out, err := f.Invoke(ctx, []byte(`{"version":"2.0","routeKey":"GET /x","rawPath":"/x","pathParameters":{"thingId":"t1"}}`))
	if err != nil {
		t.Fatal(err)
	}
	var resp struct{ Body string }
	if err := json.Unmarshal(out, &resp); err != nil {
		t.Fatal(err)
	}
	var body struct {
		RequestID   string `json:"requestId"`
		FunctionARN string `json:"functionArn"`
		HasDeadline bool   `json:"hasDeadline"`
		Env         map[string]string
	}
	if err := json.Unmarshal([]byte(resp.Body), &body); err != nil {
		t.Fatal(err)
	}
	if body.RequestID == "" || !body.HasDeadline || body.FunctionARN != "arn:aws:lambda:us-east-1:123456789012:function:EchoFunction" {
		t.Errorf("lambda context = %+v", body)
	}
	if body.Env["AWS_LAMBDA_FUNCTION_NAME"] != "EchoFunction" || body.Env["AWS_LAMBDA_LOG_FORMAT"] != "JSON" ||
		body.Env["AWS_LAMBDA_FUNCTION_VERSION"] != "$LATEST" || body.Env["AWS_LAMBDA_FUNCTION_MEMORY_SIZE"] != "128" {
		t.Errorf("lambda env = %v", body.Env)
	}
}

func TestRuntimeAPIFunctionErrorAndCrash(t *testing.T) {
	f := startEcho(t, buildEcho(t), 30*time.Second, nil)
	ctx := invokeCtx(t)
	event := func(thing string) []byte {
		return []byte(`{"version":"2.0","routeKey":"GET /v1/things/{thingId}","pathParameters":{"thingId":"` + thing + `"}}`)
	}

	_, err := f.Invoke(ctx, event("fail"))
	var fe *FunctionError
	if !errors.As(err, &fe) || fe.Message != "boom" || fe.Type != "errorString" {
		t.Fatalf("err = %#v, want the function's error", err)
	}

	_, err = f.Invoke(ctx, event("crash"))
	if !errors.Is(err, ErrCrashed) {
		t.Fatalf("err = %v, want ErrCrashed", err)
	}
	// The process was restarted: the next invocation works.
	if _, err := f.Invoke(ctx, event("ok")); err != nil {
		t.Fatalf("after crash: %v", err)
	}
}

func TestRuntimeAPITimeoutRestartsTheProcess(t *testing.T) {
	f := startEcho(t, buildEcho(t), time.Second, map[string]string{"ECHO_MODE": "slow"})
	ctx := invokeCtx(t)
	_, err := f.Invoke(ctx, []byte(`{"version":"2.0","routeKey":"GET /v1/slow"}`))
	if !errors.Is(err, ErrTimeout) {
		t.Fatalf("err = %v, want ErrTimeout", err)
	}
	if _, err := f.Invoke(ctx, []byte(`{"version":"2.0","routeKey":"GET /v1/slow","queryStringParameters":{"fast":"1"}}`)); err != nil {
		t.Fatalf("after timeout: %v", err)
	}
}

func TestInvokeRejectsOversizedPayload(t *testing.T) {
	f := &function{cfg: functionConfig{Name: "X"}}
	if _, err := f.Invoke(context.Background(), make([]byte, maxPayload+1)); !errors.Is(err, ErrPayloadTooLarge) {
		t.Fatalf("err = %v", err)
	}
}

func TestWaitReadyFailsWhenTheProcessCannotStart(t *testing.T) {
	cfg := functionConfig{Name: "Broken", Binary: filepath.Join(t.TempDir(), "missing"), Timeout: time.Second, Region: "us-east-1", Output: &lineWriter{out: testOutput(t)}}
	f, err := startFunction(context.Background(), cfg, discardLogger())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(f.Stop)
	if err := f.waitReady(invokeCtx(t)); !errors.Is(err, ErrCrashed) {
		t.Fatalf("err = %v, want ErrCrashed", err)
	}
}
