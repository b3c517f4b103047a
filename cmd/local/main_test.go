package main

import (
	"io"
	"log/slog"
	"testing"

	"github.com/dflow-sh/cloud-accounts/shared/motoserver"
)

// TestMain stops the shared moto server (started by the first test that
// needs one) when the package's tests end.
func TestMain(m *testing.M) { motoserver.Main(m) }

func discardLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// testOutput sends function and build output to the test log.
func testOutput(t *testing.T) *syncWriter {
	t.Helper()
	return &syncWriter{w: testWriter{t}}
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Helper()
	w.t.Logf("%s", p)
	return len(p), nil
}
