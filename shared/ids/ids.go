// Package ids makes and checks the identifiers of the service's resources.
// Ids are a short type prefix and 26 lower-case base32 characters (130 bits
// of randomness), so they are unguessable and their kind is visible.
package ids

import (
	"crypto/rand"
	"encoding/base32"
	"regexp"
	"strings"
)

// Prefixes of the resource kinds.
const (
	Org       = "org"
	Role      = "rol"
	Account   = "acc"
	Node      = "wn"
	Group     = "sg"
	SSHKey    = "key"
	Rotation  = "rot"
	Event     = "evt"
	Operation = "op"
)

var enc = base32.StdEncoding.WithPadding(base32.NoPadding)

// New returns a fresh id of the given kind, e.g. "org_k3x...".
func New(prefix string) string {
	var b [17]byte
	if _, err := rand.Read(b[:]); err != nil {
		// crypto/rand never fails on supported platforms; a failure is fatal.
		panic("ids: crypto/rand: " + err.Error())
	}
	return prefix + "_" + strings.ToLower(enc.EncodeToString(b[:]))[:26]
}

// Secret returns n bytes of randomness, base32 encoded (for external ids).
func Secret(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic("ids: crypto/rand: " + err.Error())
	}
	return strings.ToLower(enc.EncodeToString(b))
}

var (
	generated = regexp.MustCompile(`^[a-z]{2,3}_[a-z2-7]{26}$`)
	// User ids are the IdP's "sub": opaque, but bounded and printable.
	user = regexp.MustCompile(`^[A-Za-z0-9._@|:+=-]{1,128}$`)
	// Built-in role ids are readable words.
	builtinRole = regexp.MustCompile(`^(admin|developer|viewer)$`)
)

// Valid reports whether s is a well-formed id of the given prefix.
func Valid(prefix, s string) bool {
	return generated.MatchString(s) && strings.HasPrefix(s, prefix+"_")
}

// ValidUser reports whether s can be a user id (a token's sub).
func ValidUser(s string) bool { return user.MatchString(s) }

// ValidRole accepts built-in role ids and generated ones.
func ValidRole(s string) bool { return builtinRole.MatchString(s) || Valid(Role, s) }
