package api

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"strings"

	"github.com/dflow-sh/cloud-accounts/shared/fault"
)

// cursorKey binds cursors to this service. It is not a secret: a cursor only
// names a position and grants nothing. What keeps tenants apart is the scope
// (organisation and list) sealed into every cursor, and the store checking
// the position lies inside the caller's partition.
var cursorKey = []byte("dflow-cloud-accounts/cursor/v1")

func cursorMAC(scope, token string) []byte {
	m := hmac.New(sha256.New, cursorKey)
	m.Write([]byte(scope))
	m.Write([]byte{0})
	m.Write([]byte(token))
	return m.Sum(nil)[:16]
}

// sealCursor wraps a store position for the client.
func sealCursor(scope, token string) string {
	enc := base64.RawURLEncoding
	return enc.EncodeToString([]byte(token)) + "." + enc.EncodeToString(cursorMAC(scope, token))
}

var errBadCursor = fault.Field("cursor", "is not a cursor this list gave out")

// openCursor checks a client's cursor belongs to scope and returns the position.
func openCursor(scope, cursor string) (string, error) {
	body, sig, ok := strings.Cut(cursor, ".")
	if !ok || len(cursor) > 2048 {
		return "", errBadCursor
	}
	enc := base64.RawURLEncoding
	token, err1 := enc.DecodeString(body)
	mac, err2 := enc.DecodeString(sig)
	if err1 != nil || err2 != nil || !hmac.Equal(mac, cursorMAC(scope, string(token))) {
		return "", errBadCursor
	}
	return string(token), nil
}
