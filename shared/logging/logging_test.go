package logging

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"
)

func TestRedaction(t *testing.T) {
	const secret = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
	tests := []struct {
		name string
		log  func(*slog.Logger)
	}{
		{"top level", func(l *slog.Logger) { l.Info("x", "secretAccessKey", secret) }},
		{"snake case", func(l *slog.Logger) { l.Info("x", "secret_access_key", secret) }},
		{"header", func(l *slog.Logger) { l.Info("x", "Authorization", "Bearer "+secret) }},
		{"in a group", func(l *slog.Logger) { l.Info("x", slog.Group("creds", "sessionToken", secret)) }},
		{"with attrs", func(l *slog.Logger) { l.With("password", secret).Info("x") }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var buf bytes.Buffer
			tt.log(New(&buf, "INFO"))
			if strings.Contains(buf.String(), secret) {
				t.Fatalf("secret leaked: %s", buf.String())
			}
			if !strings.Contains(buf.String(), Redacted) {
				t.Fatalf("no redaction marker: %s", buf.String())
			}
		})
	}
}

func TestLevel(t *testing.T) {
	var buf bytes.Buffer
	l := New(&buf, "WARN")
	l.Info("quiet")
	l.Warn("loud")
	if strings.Contains(buf.String(), "quiet") || !strings.Contains(buf.String(), "loud") {
		t.Fatalf("level not applied: %s", buf.String())
	}
}
