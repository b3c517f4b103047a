package main

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"sync"
	"time"
)

// Lambda Runtime API, the half the service implements: a bootstrap built with
// aws-lambda-go (-tags lambda.norpc) polls it for events and posts results back.
// https://docs.aws.amazon.com/lambda/latest/dg/runtimes-api.html
const (
	runtimePrefix = "/2018-06-01/runtime"

	headerRequestID   = "Lambda-Runtime-Aws-Request-Id"
	headerDeadline    = "Lambda-Runtime-Deadline-Ms"
	headerFunctionARN = "Lambda-Runtime-Invoked-Function-Arn"
	headerTraceID     = "Lambda-Runtime-Trace-Id"
	headerErrorType   = "Lambda-Runtime-Function-Error-Type"
	// aws-lambda-go reports a failure while streaming a response in trailers.
	trailerErrorBody = "Lambda-Runtime-Function-Error-Body"

	// maxPayload is Lambda's limit for synchronous request and response payloads.
	maxPayload = 6 << 20
)

// invocation is one event handed to a function process.
type invocation struct {
	id       string
	payload  []byte
	deadline time.Time
	arn      string
	traceID  string
	// done receives exactly one outcome; buffered so the runtime API never blocks.
	done chan outcome
}

// outcome is what the process posted for an invocation.
type outcome struct {
	body []byte
	err  *FunctionError
}

// FunctionError is an error the function reported (its handler returned an
// error or panicked), in the shape Lambda returns to callers.
type FunctionError struct {
	Type    string `json:"errorType"`
	Message string `json:"errorMessage"`
}

func (e *FunctionError) Error() string {
	if e.Type == "" {
		return "function error: " + e.Message
	}
	return fmt.Sprintf("function error %s: %s", e.Type, e.Message)
}

func newInvocation(payload []byte, deadline time.Time, arn string) *invocation {
	return &invocation{
		id:       newUUID(),
		payload:  payload,
		deadline: deadline,
		arn:      arn,
		traceID:  newTraceID(deadline),
		done:     make(chan outcome, 1),
	}
}

// runtimeAPI serves the Runtime API of one function. Invocations are handed
// over on queue to whichever GET /next is waiting.
type runtimeAPI struct {
	log   *slog.Logger
	queue chan *invocation

	mu       sync.Mutex
	inflight map[string]*invocation

	polledOnce sync.Once
	// polled is closed at the first GET /next: the process finished its init.
	polled chan struct{}
	// initError receives errors a process reports through /init/error.
	initError func(*FunctionError)
}

func newRuntimeAPI(log *slog.Logger, initError func(*FunctionError)) *runtimeAPI {
	return &runtimeAPI{
		log:       log,
		queue:     make(chan *invocation),
		inflight:  map[string]*invocation{},
		polled:    make(chan struct{}),
		initError: initError,
	}
}

func (rt *runtimeAPI) handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET "+runtimePrefix+"/invocation/next", rt.next)
	mux.HandleFunc("POST "+runtimePrefix+"/invocation/{id}/response", rt.response)
	mux.HandleFunc("POST "+runtimePrefix+"/invocation/{id}/error", rt.error)
	mux.HandleFunc("POST "+runtimePrefix+"/init/error", rt.initErr)
	return mux
}

// next blocks until an invocation is queued or the process goes away.
func (rt *runtimeAPI) next(w http.ResponseWriter, r *http.Request) {
	rt.polledOnce.Do(func() { close(rt.polled) })
	select {
	case inv := <-rt.queue:
		rt.mu.Lock()
		rt.inflight[inv.id] = inv
		rt.mu.Unlock()
		h := w.Header()
		h.Set("Content-Type", "application/json")
		h.Set(headerRequestID, inv.id)
		h.Set(headerDeadline, strconv.FormatInt(inv.deadline.UnixMilli(), 10))
		h.Set(headerFunctionARN, inv.arn)
		h.Set(headerTraceID, inv.traceID)
		w.WriteHeader(http.StatusOK)
		if _, err := w.Write(inv.payload); err != nil {
			// The process is gone; its supervisor fails the invocation.
			rt.log.Warn("deliver invocation", "requestId", inv.id, "err", err)
		}
	case <-r.Context().Done():
	}
}

func (rt *runtimeAPI) response(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(io.LimitReader(r.Body, maxPayload+1))
	if err != nil {
		writeRuntimeError(w, http.StatusBadRequest, "InvalidRequest", "read response: "+err.Error())
		return
	}
	out := outcome{body: body}
	switch {
	case len(body) > maxPayload:
		out = outcome{err: &FunctionError{Type: "Function.ResponseSizeTooLarge", Message: fmt.Sprintf("response payload exceeds %d bytes", maxPayload)}}
	case r.Trailer.Get(headerErrorType) != "":
		// The handler's io.Reader failed mid-stream.
		out = outcome{err: trailerError(r.Trailer)}
	}
	if !rt.deliver(r.PathValue("id"), out) {
		writeRuntimeError(w, http.StatusBadRequest, "InvalidRequestID", "unknown or finished request id")
		return
	}
	if len(body) > maxPayload {
		writeRuntimeError(w, http.StatusRequestEntityTooLarge, "RequestEntityTooLarge", out.err.Message)
		return
	}
	writeAccepted(w)
}

func (rt *runtimeAPI) error(w http.ResponseWriter, r *http.Request) {
	fe := readFunctionError(r)
	if !rt.deliver(r.PathValue("id"), outcome{err: fe}) {
		writeRuntimeError(w, http.StatusBadRequest, "InvalidRequestID", "unknown or finished request id")
		return
	}
	writeAccepted(w)
}

func (rt *runtimeAPI) initErr(w http.ResponseWriter, r *http.Request) {
	rt.initError(readFunctionError(r))
	writeAccepted(w)
}

// deliver hands an outcome to the invocation waiting for it, once.
func (rt *runtimeAPI) deliver(id string, out outcome) bool {
	rt.mu.Lock()
	inv, ok := rt.inflight[id]
	delete(rt.inflight, id)
	rt.mu.Unlock()
	if !ok {
		return false
	}
	inv.done <- out
	return true
}

// forget drops an invocation that ended without an outcome (timeout, crash).
func (rt *runtimeAPI) forget(id string) {
	rt.mu.Lock()
	delete(rt.inflight, id)
	rt.mu.Unlock()
}

func readFunctionError(r *http.Request) *FunctionError {
	body, _ := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	fe := &FunctionError{}
	if err := json.Unmarshal(body, fe); err != nil || (fe.Message == "" && fe.Type == "") {
		fe = &FunctionError{Message: string(body)}
	}
	if fe.Type == "" {
		fe.Type = r.Header.Get(headerErrorType)
	}
	if fe.Type == "" {
		fe.Type = "Unhandled"
	}
	return fe
}

func trailerError(t http.Header) *FunctionError {
	fe := &FunctionError{Type: t.Get(headerErrorType)}
	if raw, err := base64.StdEncoding.DecodeString(t.Get(trailerErrorBody)); err == nil {
		var body FunctionError
		if json.Unmarshal(raw, &body) == nil {
			fe.Message = body.Message
		}
	}
	return fe
}

func writeAccepted(w http.ResponseWriter) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusAccepted)
	_, _ = io.WriteString(w, `{"status":"OK"}`)
}

func writeRuntimeError(w http.ResponseWriter, status int, typ, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(FunctionError{Type: typ, Message: msg})
}

// newUUID returns a random (version 4) UUID, the form of Lambda request ids.
func newUUID() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand never fails on supported platforms
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

// newTraceID returns an X-Ray trace header like the one Lambda passes.
func newTraceID(t time.Time) string {
	var b [12]byte
	_, _ = rand.Read(b[:])
	var p [8]byte
	_, _ = rand.Read(p[:])
	return fmt.Sprintf("Root=1-%08x-%x;Parent=%x;Sampled=0", t.Unix(), b, p)
}
