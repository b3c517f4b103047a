package main

import (
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

func testIssuer(t *testing.T) *issuer {
	t.Helper()
	iss, err := loadIssuer(filepath.Join(t.TempDir(), "jwt"))
	if err != nil {
		t.Fatal(err)
	}
	return iss
}

func TestIssueAndVerify(t *testing.T) {
	iss := testIssuer(t)
	now := time.Unix(1_700_000_000, 0)
	token, err := iss.issue("alice", "alice@example.com", time.Hour, now)
	if err != nil {
		t.Fatal(err)
	}
	claims, err := iss.verify(token, now.Add(time.Minute))
	if err != nil {
		t.Fatalf("verify: %v", err)
	}
	got, scopes := authorizerClaims(claims)
	want := map[string]string{
		"iss": tokenIssuer, "aud": tokenAudience, "sub": "alice", "email": "alice@example.com",
		"iat": "1700000000", "exp": "1700003600",
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("claims = %v, want %v", got, want)
	}
	if scopes != nil {
		t.Errorf("scopes = %v, want none", scopes)
	}
}

func TestVerifyRejects(t *testing.T) {
	iss := testIssuer(t)
	other := newIssuer(mustKey(t))
	now := time.Unix(1_700_000_000, 0)
	good := func(claims map[string]any) map[string]any {
		c := map[string]any{"iss": tokenIssuer, "aud": tokenAudience, "sub": "alice", "iat": now.Unix(), "exp": now.Add(time.Hour).Unix()}
		for k, v := range claims {
			if v == nil {
				delete(c, k)
			} else {
				c[k] = v
			}
		}
		return c
	}
	sign := func(i *issuer, claims map[string]any) string {
		tok, err := i.sign(claims)
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	valid := sign(iss, good(nil))
	parts := strings.Split(valid, ".")
	unsigned := func(header string, claims map[string]any) string {
		payload, _ := json.Marshal(claims)
		return b64.EncodeToString([]byte(header)) + "." + b64.EncodeToString(payload) + "."
	}
	tampered := func() string {
		payload, _ := json.Marshal(good(map[string]any{"sub": "mallory"}))
		return parts[0] + "." + b64.EncodeToString(payload) + "." + parts[2]
	}

	tests := map[string]string{
		"expired":             sign(iss, good(map[string]any{"exp": now.Add(-time.Second).Unix()})),
		"expires now":         sign(iss, good(map[string]any{"exp": now.Unix()})),
		"no exp":              sign(iss, good(map[string]any{"exp": nil})),
		"wrong key":           sign(other, good(nil)),
		"wrong key, our kid":  strings.Join(append([]string{parts[0]}, strings.Split(sign(other, good(nil)), ".")[1:]...), "."),
		"alg none":            unsigned(`{"alg":"none","typ":"JWT"}`, good(nil)),
		"alg HS256":           unsigned(`{"alg":"HS256","typ":"JWT"}`, good(nil)) + "c2ln",
		"tampered payload":    tampered(),
		"wrong issuer":        sign(iss, good(map[string]any{"iss": "https://evil.example"})),
		"wrong audience":      sign(iss, good(map[string]any{"aud": "someone-else"})),
		"audience list w/o":   sign(iss, good(map[string]any{"aud": []string{"a", "b"}})),
		"not yet valid (nbf)": sign(iss, good(map[string]any{"nbf": now.Add(time.Minute).Unix()})),
		"issued in future":    sign(iss, good(map[string]any{"iat": now.Add(time.Minute).Unix()})),
		"two parts":           parts[0] + "." + parts[1],
		"garbage":             "not-a-token",
		"empty signature":     parts[0] + "." + parts[1] + ".",
	}
	for name, token := range tests {
		t.Run(name, func(t *testing.T) {
			if _, err := iss.verify(token, now); err == nil {
				t.Fatal("verified, want rejected")
			}
		})
	}
	// Control: the untouched token and an audience list that holds ours pass.
	for _, tok := range []string{valid, sign(iss, good(map[string]any{"aud": []string{"x", tokenAudience}}))} {
		if _, err := iss.verify(tok, now); err != nil {
			t.Errorf("valid token rejected: %v", err)
		}
	}
}

func TestKeyIsPersistedPrivately(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "jwt")
	first, err := loadIssuer(dir)
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(filepath.Join(dir, keyFile))
	if err != nil {
		t.Fatal(err)
	}
	if perm := fi.Mode().Perm(); perm != 0o600 {
		t.Errorf("key file mode = %o, want 600", perm)
	}
	second, err := loadIssuer(dir)
	if err != nil {
		t.Fatal(err)
	}
	if second.kid != first.kid {
		t.Error("key not reused on second load")
	}
	token, _ := first.issue("bob", "", time.Hour, time.Now())
	if _, err := second.verify(token, time.Now()); err != nil {
		t.Errorf("token of the first run rejected by the second: %v", err)
	}
}

func TestJWKSVerifiesTokens(t *testing.T) {
	iss := testIssuer(t)
	raw, _ := json.Marshal(iss.jwks())
	var set struct {
		Keys []struct{ Kty, Alg, Kid, N, E string }
	}
	if err := json.Unmarshal(raw, &set); err != nil || len(set.Keys) != 1 {
		t.Fatalf("jwks = %s", raw)
	}
	k := set.Keys[0]
	if k.Kty != "RSA" || k.Alg != "RS256" || k.Kid != iss.kid {
		t.Errorf("jwk = %+v", k)
	}
	n, _ := b64.DecodeString(k.N)
	if string(n) != string(iss.key.PublicKey.N.Bytes()) {
		t.Error("jwk n does not match the key")
	}
}

func TestAuthorizerClaims(t *testing.T) {
	var claims map[string]any
	dec := json.NewDecoder(strings.NewReader(`{"sub":"a","exp":1700000000,"ratio":1.5,"admin":true,"groups":["x","y"],"scope":"read write","nested":{"b":1,"a":"z"}}`))
	dec.UseNumber()
	if err := dec.Decode(&claims); err != nil {
		t.Fatal(err)
	}
	got, scopes := authorizerClaims(claims)
	want := map[string]string{
		"sub": "a", "exp": "1700000000", "ratio": "1.5", "admin": "true",
		"groups": "[x y]", "scope": "read write", "nested": "{a=z, b=1}",
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("claims = %v, want %v", got, want)
	}
	if !reflect.DeepEqual(scopes, []string{"read", "write"}) {
		t.Errorf("scopes = %v", scopes)
	}
}

func TestBearerToken(t *testing.T) {
	for in, want := range map[string]string{"Bearer abc": "abc", "bearer  abc ": "abc", "abc": "abc", "": ""} {
		if got := bearerToken(in); got != want {
			t.Errorf("bearerToken(%q) = %q, want %q", in, got, want)
		}
	}
}

func mustKey(t *testing.T) *rsa.PrivateKey {
	t.Helper()
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	return k
}
