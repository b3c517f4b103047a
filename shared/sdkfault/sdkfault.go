// Package sdkfault injects failures into AWS SDK calls for tests: the code
// under test keeps its real clients, and a chosen call fails.
package sdkfault

import (
	"context"
	"fmt"
	"sync"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsmiddleware "github.com/aws/aws-sdk-go-v2/aws/middleware"
	"github.com/aws/smithy-go/middleware"
	smithyhttp "github.com/aws/smithy-go/transport/http"
)

// Faults injects errors into AWS calls by service and operation, through
// SDK middleware: the code under test keeps its real clients and only the
// chosen call fails. It also records every call, so a test can make each
// call of a flow fail in turn.
type Faults struct {
	mu    sync.Mutex
	calls []string
	// plan: a call name ("SecretsManager.CreateSecret") → the occurrence
	// (1-based) to fail and the error to return.
	plan map[string]fault
	seen map[string]int
	// attempts: a call name → how many of its next attempts fail, inside
	// the SDK's retry loop (so the retryer sees and retries them).
	attempts map[string]fault
}

type fault struct {
	nth int
	err error
}

// ErrInjected is the default injected failure.
var ErrInjected = fmt.Errorf("injected fault")

// Attach returns a copy of cfg whose clients pass through the injector.
func (f *Faults) Attach(cfg aws.Config) aws.Config {
	c := cfg.Copy()
	c.APIOptions = append(c.APIOptions, func(stack *middleware.Stack) error {
		err := stack.Initialize.Add(middleware.InitializeMiddlewareFunc("faultInjection",
			func(ctx context.Context, in middleware.InitializeInput, next middleware.InitializeHandler) (middleware.InitializeOutput, middleware.Metadata, error) {
				if err := f.record(callName(ctx)); err != nil {
					return middleware.InitializeOutput{}, middleware.Metadata{}, err
				}
				return next.HandleInitialize(ctx, in)
			}), middleware.Before)
		if err != nil {
			return err
		}
		// After the retry middleware: each attempt passes here.
		return stack.Finalize.Add(middleware.FinalizeMiddlewareFunc("attemptFaultInjection",
			func(ctx context.Context, in middleware.FinalizeInput, next middleware.FinalizeHandler) (middleware.FinalizeOutput, middleware.Metadata, error) {
				if err := f.attempt(callName(ctx)); err != nil {
					return middleware.FinalizeOutput{}, middleware.Metadata{}, err
				}
				return next.HandleFinalize(ctx, in)
			}), middleware.After)
	})
	return c
}

func callName(ctx context.Context) string {
	return awsmiddleware.GetServiceID(ctx) + "." + awsmiddleware.GetOperationName(ctx)
}

func (f *Faults) attempt(name string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	a, ok := f.attempts[name]
	if !ok || a.nth <= 0 {
		return nil
	}
	a.nth--
	f.attempts[name] = a
	f.calls = append(f.calls, name+"(attempt failed)")
	return a.err
}

// FailAttempts makes the next n attempts of call fail with err inside the
// SDK's retry loop: a retryable err is retried by the SDK itself.
func (f *Faults) FailAttempts(call string, n int, err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.attempts == nil {
		f.attempts = map[string]fault{}
	}
	f.attempts[call] = fault{nth: n, err: err}
}

func (f *Faults) record(name string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, name)
	if f.seen == nil {
		f.seen = map[string]int{}
	}
	f.seen[name]++
	if p, ok := f.plan[name]; ok && p.nth == f.seen[name] {
		return p.err
	}
	return nil
}

// FailNth makes the nth (1-based) call named call from now on fail with
// err (ErrInjected when nil).
func (f *Faults) FailNth(call string, nth int, err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err == nil {
		err = ErrInjected
	}
	if f.plan == nil {
		f.plan = map[string]fault{}
	}
	f.plan[call] = fault{nth: f.seen[call] + nth, err: err}
}

// Reset forgets the plan and the recorded calls.
func (f *Faults) Reset() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.plan, f.seen, f.calls, f.attempts = nil, nil, nil, nil
}

// Calls returns the calls recorded since the last Reset.
func (f *Faults) Calls() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.calls...)
}

// Occurrences turns a call list into (name, nth) pairs: each call once.
func Occurrences(calls []string) []Occurrence {
	count := map[string]int{}
	out := make([]Occurrence, 0, len(calls))
	for _, c := range calls {
		count[c]++
		out = append(out, Occurrence{Call: c, Nth: count[c]})
	}
	return out
}

// Occurrence is the nth call of a name.
type Occurrence struct {
	Call string
	Nth  int
}

func (o Occurrence) String() string { return fmt.Sprintf("%s#%d", o.Call, o.Nth) }

// MotoAccount makes a client's requests act in a moto account (moto's
// x-moto-account-id header), as the customer's own tools would.
func MotoAccount(account string) func(*middleware.Stack) error {
	return func(stack *middleware.Stack) error {
		return stack.Build.Add(middleware.BuildMiddlewareFunc("motoAccount",
			func(ctx context.Context, in middleware.BuildInput, next middleware.BuildHandler) (middleware.BuildOutput, middleware.Metadata, error) {
				if req, ok := in.Request.(*smithyhttp.Request); ok {
					req.Header.Set("x-moto-account-id", account)
				}
				return next.HandleBuild(ctx, in)
			}), middleware.After)
	}
}
