// Package logging builds the JSON logger every function uses. A redaction
// layer replaces the values of sensitive keys wherever they appear, so a
// careless log line cannot leak a credential.
package logging

import (
	"io"
	"log/slog"
	"strings"
)

// Redacted replaces sensitive values.
const Redacted = "[redacted]"

// sensitive keys, compared lower-case with '-' and '_' removed.
var sensitive = map[string]bool{
	"secretaccesskey": true,
	"sessiontoken":    true,
	"authorization":   true,
	"password":        true,
	"secret":          true,
	"secretstring":    true,
	"privatekey":      true,
	"credentials":     true,
	"token":           true,
	"accesstoken":     true,
	"idtoken":         true,
	"cookie":          true,
	"externalid":      true,
}

// Sensitive reports whether a key's value must never be logged.
func Sensitive(key string) bool {
	k := strings.ToLower(strings.NewReplacer("-", "", "_", "").Replace(key))
	return sensitive[k]
}

// New returns a JSON logger at level ("DEBUG", "INFO", "WARN", "ERROR").
func New(w io.Writer, level string) *slog.Logger {
	var l slog.Level
	if err := l.UnmarshalText([]byte(level)); err != nil {
		l = slog.LevelInfo
	}
	return slog.New(slog.NewJSONHandler(w, &slog.HandlerOptions{Level: l, ReplaceAttr: redact}))
}

func redact(_ []string, a slog.Attr) slog.Attr {
	if Sensitive(a.Key) {
		return slog.String(a.Key, Redacted)
	}
	return a
}
