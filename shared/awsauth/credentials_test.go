package awsauth

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"
)

// Secret values the tests use; no output may contain them (the package's
// check greps `go test -v` output for the "s3cr3t" marker).
const (
	testSecret       = "awsauth-s3cr3t-access-key-0000000000000"
	testSessionToken = "awsauth-s3cr3t-session-token"
)

func TestCredentialsRedactThemselves(t *testing.T) {
	key := AccessKey{ID: "AKIAIOSFODNN7EXAMPLE", Secret: testSecret}
	session := SessionCredentials{AccessKeyID: "ASIAIOSFODNN7EXAMPLE", SecretAccessKey: testSecret, SessionToken: testSessionToken, Expires: time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)}
	type holder struct {
		Key     AccessKey
		Session *SessionCredentials
	}
	values := []any{key, &key, session, &session, holder{key, &session}, []AccessKey{key}, map[string]SessionCredentials{"s": session}}

	var out bytes.Buffer
	for _, v := range values {
		for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q", "%x", "%X", "%d", "%T"} {
			fmt.Fprintf(&out, verb+"\n", v)
		}
		fmt.Fprintln(&out, v)
	}
	for _, h := range []slog.Handler{slog.NewJSONHandler(&out, nil), slog.NewTextHandler(&out, nil)} {
		l := slog.New(h)
		l.Info("check", "key", key, "session", session, "ptr", &key)
		l.Info("group", slog.Group("g", "key", key), slog.Any("holder", holder{key, &session}))
	}
	for _, secret := range []string{testSecret, testSessionToken, "AKIAIOSFODNN7EXAMPLE", "ASIAIOSFODNN7EXAMPLE"} {
		if strings.Contains(out.String(), secret) {
			t.Fatalf("formatted output carries a credential (%d bytes of output)", out.Len())
		}
	}
	if !strings.Contains(out.String(), redacted) {
		t.Error("no redaction marker in the output")
	}
	if got := fmt.Sprintf("%#v", session); got != "awsauth.SessionCredentials{[redacted], Expires: 2030-01-02T03:04:05Z}" {
		t.Errorf("GoString %q", got)
	}

	for _, v := range []any{key, session, holder{key, &session}} {
		if b, err := json.Marshal(v); err == nil || bytes.Contains(b, []byte("s3cr3t")) {
			t.Errorf("json.Marshal(%T) did not refuse", v)
		}
	}
}

func TestMasked(t *testing.T) {
	cases := map[string]string{
		"AKIAIOSFODNN7EXAMPLE": "AKIA…MPLE",
		"AKIA12345678":         "AKIA…5678",
		"AKIA1234567":          "…",
		"":                     "…",
	}
	for id, want := range cases {
		if got := (AccessKey{ID: id}).Masked(); got != want {
			t.Errorf("Masked(%q) = %q, want %q", id, got, want)
		}
	}
}

func TestSessionProvider(t *testing.T) {
	expires := time.Now().Add(time.Hour).Truncate(time.Second)
	c := SessionCredentials{AccessKeyID: "ASIAIOSFODNN7EXAMPLE", SecretAccessKey: testSecret, SessionToken: testSessionToken, Expires: expires}
	got, err := c.Provider().Retrieve(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if got.AccessKeyID != c.AccessKeyID || got.SecretAccessKey != c.SecretAccessKey || got.SessionToken != c.SessionToken {
		t.Error("provider does not serve the session's credentials")
	}
	if !got.CanExpire || !got.Expires.Equal(expires) {
		t.Errorf("expiry: can expire %v, at %v", got.CanExpire, got.Expires)
	}
}
