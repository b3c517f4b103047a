package main

import (
	"bytes"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"math/big"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"
)

// The local stand-in for the API's JWT authorizer: tokens the local API signs
// itself with an RS256 key kept in .local/jwt. Nothing of this is deployed.
const (
	tokenIssuer     = "https://local.dflow.invalid"
	tokenAudience   = "dflow-local"
	defaultTokenTTL = 12 * time.Hour
	maxTokenTTL     = 30 * 24 * time.Hour
	keyFile         = "signing-key.pem"
)

var b64 = base64.RawURLEncoding

// issuer signs and verifies the local API's tokens.
type issuer struct {
	key      *rsa.PrivateKey
	kid      string
	issuer   string
	audience string
}

func newIssuer(key *rsa.PrivateKey) *issuer {
	return &issuer{key: key, kid: thumbprint(&key.PublicKey), issuer: tokenIssuer, audience: tokenAudience}
}

// loadIssuer reuses the key pair in dir, creating it on first run (0600).
func loadIssuer(dir string) (*issuer, error) {
	path := filepath.Join(dir, keyFile)
	raw, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		raw, err = createKey(dir, path)
	}
	if err != nil {
		return nil, fmt.Errorf("jwt signing key %s: %w", path, err)
	}
	block, _ := pem.Decode(raw)
	if block == nil {
		return nil, fmt.Errorf("jwt signing key %s: no PEM block (delete the file to make a new key)", path)
	}
	parsed, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("jwt signing key %s: %w (delete the file to make a new key)", path, err)
	}
	key, ok := parsed.(*rsa.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("jwt signing key %s: not an RSA key (delete the file to make a new key)", path)
	}
	return newIssuer(key), nil
}

func createKey(dir, path string) ([]byte, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return nil, fmt.Errorf("generate key: %w", err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("encode key: %w", err)
	}
	raw := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
	// O_EXCL: two local APIs starting at once keep the first one's key.
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, fs.ErrExist) {
		return os.ReadFile(path)
	}
	if err != nil {
		return nil, err
	}
	if _, err := f.Write(raw); err != nil {
		f.Close()
		return nil, err
	}
	return raw, f.Close()
}

// thumbprint is the key's RFC 7638 JWK thumbprint, used as its kid.
func thumbprint(pub *rsa.PublicKey) string {
	e := b64.EncodeToString(big.NewInt(int64(pub.E)).Bytes())
	n := b64.EncodeToString(pub.N.Bytes())
	sum := sha256.Sum256([]byte(`{"e":"` + e + `","kty":"RSA","n":"` + n + `"}`))
	return b64.EncodeToString(sum[:])
}

// jwks is the public key set, as an IdP publishes it.
func (i *issuer) jwks() map[string]any {
	pub := &i.key.PublicKey
	return map[string]any{"keys": []map[string]string{{
		"kty": "RSA",
		"use": "sig",
		"alg": "RS256",
		"kid": i.kid,
		"n":   b64.EncodeToString(pub.N.Bytes()),
		"e":   b64.EncodeToString(big.NewInt(int64(pub.E)).Bytes()),
	}}}
}

// issue makes a token for a user.
func (i *issuer) issue(sub, email string, ttl time.Duration, now time.Time) (string, error) {
	claims := map[string]any{
		"iss": i.issuer,
		"aud": i.audience,
		"sub": sub,
		"iat": now.Unix(),
		"exp": now.Add(ttl).Unix(),
	}
	if email != "" {
		claims["email"] = email
	}
	return i.sign(claims)
}

func (i *issuer) sign(claims map[string]any) (string, error) {
	header, err := json.Marshal(map[string]string{"alg": "RS256", "typ": "JWT", "kid": i.kid})
	if err != nil {
		return "", err
	}
	payload, err := json.Marshal(claims)
	if err != nil {
		return "", fmt.Errorf("encode claims: %w", err)
	}
	input := b64.EncodeToString(header) + "." + b64.EncodeToString(payload)
	digest := sha256.Sum256([]byte(input))
	sig, err := rsa.SignPKCS1v15(nil, i.key, crypto.SHA256, digest[:])
	if err != nil {
		return "", fmt.Errorf("sign token: %w", err)
	}
	return input + "." + b64.EncodeToString(sig), nil
}

// verify checks a token as API Gateway's JWT authorizer does: RS256 with our
// key only, issuer, audience, exp, nbf and iat. It returns the claims.
func (i *issuer) verify(token string, now time.Time) (map[string]any, error) {
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return nil, errors.New("malformed token")
	}
	rawHeader, err := b64.DecodeString(parts[0])
	if err != nil {
		return nil, fmt.Errorf("malformed token header: %w", err)
	}
	var header struct {
		Alg string `json:"alg"`
		Kid string `json:"kid"`
	}
	if err := json.Unmarshal(rawHeader, &header); err != nil {
		return nil, fmt.Errorf("malformed token header: %w", err)
	}
	// Never trust the header's choice of algorithm beyond this check.
	if header.Alg != "RS256" {
		return nil, fmt.Errorf("unsupported signing algorithm %q", header.Alg)
	}
	if header.Kid != "" && header.Kid != i.kid {
		return nil, fmt.Errorf("unknown signing key %q", header.Kid)
	}
	sig, err := b64.DecodeString(parts[2])
	if err != nil {
		return nil, fmt.Errorf("malformed token signature: %w", err)
	}
	digest := sha256.Sum256([]byte(parts[0] + "." + parts[1]))
	if err := rsa.VerifyPKCS1v15(&i.key.PublicKey, crypto.SHA256, digest[:], sig); err != nil {
		return nil, errors.New("signature verification failed")
	}
	rawClaims, err := b64.DecodeString(parts[1])
	if err != nil {
		return nil, fmt.Errorf("malformed token claims: %w", err)
	}
	var claims map[string]any
	dec := json.NewDecoder(bytes.NewReader(rawClaims))
	dec.UseNumber() // keep exp as 1700000000, not 1.7e+09
	if err := dec.Decode(&claims); err != nil || claims == nil {
		return nil, errors.New("malformed token claims")
	}
	if iss, _ := claims["iss"].(string); iss != i.issuer {
		return nil, fmt.Errorf("issuer %q is not %q", iss, i.issuer)
	}
	if !hasAudience(claims["aud"], i.audience) {
		return nil, fmt.Errorf("audience is not %q", i.audience)
	}
	exp, ok := numericClaim(claims["exp"])
	if !ok {
		return nil, errors.New("token has no exp")
	}
	if now.Unix() >= exp {
		return nil, errors.New("token expired")
	}
	if nbf, ok := numericClaim(claims["nbf"]); ok && now.Unix() < nbf {
		return nil, errors.New("token not valid yet (nbf)")
	}
	if iat, ok := numericClaim(claims["iat"]); ok && now.Unix() < iat {
		return nil, errors.New("token issued in the future (iat)")
	}
	return claims, nil
}

func hasAudience(aud any, want string) bool {
	switch a := aud.(type) {
	case string:
		return a == want
	case []any:
		for _, v := range a {
			if v == want {
				return true
			}
		}
	}
	return false
}

func numericClaim(v any) (int64, bool) {
	n, ok := v.(json.Number)
	if !ok {
		return 0, false
	}
	if i, err := n.Int64(); err == nil {
		return i, true
	}
	f, err := n.Float64()
	return int64(f), err == nil
}

// authorizerClaims turns claims into what API Gateway passes to the function:
// every value a string (numbers in decimal, arrays as "[a b]"), plus the
// scopes of the scope or scp claim.
func authorizerClaims(claims map[string]any) (map[string]string, []string) {
	out := make(map[string]string, len(claims))
	for k, v := range claims {
		out[k] = claimString(v)
	}
	var scopes []string
	switch s := claims["scope"].(type) {
	case string:
		scopes = strings.Fields(s)
	}
	if scopes == nil {
		switch s := claims["scp"].(type) {
		case string:
			scopes = strings.Fields(s)
		case []any:
			for _, v := range s {
				scopes = append(scopes, claimString(v))
			}
		}
	}
	return out, scopes
}

func claimString(v any) string {
	switch x := v.(type) {
	case string:
		return x
	case json.Number:
		return x.String()
	case bool:
		return strconv.FormatBool(x)
	case nil:
		return ""
	case []any:
		parts := make([]string, len(x))
		for i, e := range x {
			parts[i] = claimString(e)
		}
		return "[" + strings.Join(parts, " ") + "]"
	case map[string]any:
		keys := make([]string, 0, len(x))
		for k := range x {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		parts := make([]string, len(keys))
		for i, k := range keys {
			parts[i] = k + "=" + claimString(x[k])
		}
		return "{" + strings.Join(parts, ", ") + "}"
	}
	return fmt.Sprint(v)
}

// bearerToken takes the token from an Authorization header; like API Gateway
// it accepts it with or without the "Bearer " prefix.
func bearerToken(header string) string {
	header = strings.TrimSpace(header)
	if len(header) > 7 && strings.EqualFold(header[:7], "bearer ") {
		return strings.TrimSpace(header[7:])
	}
	return header
}
