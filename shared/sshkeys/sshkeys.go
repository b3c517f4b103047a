// Package sshkeys validates the OpenSSH public keys users register, and
// computes the fingerprints dFlow matches them by: OpenSSH's own, and the one
// EC2 reports for a key pair imported from the key. It only ever holds public
// material; a pasted private key is refused with its own error code.
//
// It uses the standard library only: the SSH wire format of the three key
// types accepted is small, and parsing it here keeps every rule (no options,
// no certificates, no trailing bytes, canonical integers) explicit.
package sshkeys

import (
	"bytes"
	"crypto/ecdh"
	"crypto/md5"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"log/slog"
	"math/big"
	"regexp"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/dflow-sh/cloud-accounts/shared/fault"
)

// Key types, as Key.Type names them.
const (
	TypeED25519 = "ed25519"
	TypeECDSA   = "ecdsa"
	TypeRSA     = "rsa"
)

const (
	// FieldName is the request field every error from Parse names.
	FieldName = "publicKey"
	// CodePrivateKeyRejected is the code of the error for a pasted private key,
	// so a client can tell the user to treat that key as exposed.
	CodePrivateKeyRejected = "private_key_rejected"
	// MaxLen bounds the input in bytes; the largest accepted key (16384-bit
	// RSA) takes under 3 KiB.
	MaxLen = 16 << 10
	// MinRSABits and MaxRSABits bound RSA moduli.
	MinRSABits = 2048
	MaxRSABits = 16384
)

// Key is a validated OpenSSH public key. It holds public material only, so it
// is safe to log and store.
type Key struct {
	// Type is TypeED25519, TypeECDSA or TypeRSA.
	Type string
	// Bits is the key size: 256 for ed25519, the curve size for ECDSA, the
	// modulus length for RSA.
	Bits int
	// Comment is the free text after the key data, trimmed; may be empty.
	Comment string
	// Authorized is the canonical "<algorithm> <base64>" line without the
	// comment: what dFlow stores and sends as ImportKeyPair's PublicKeyMaterial.
	Authorized string
	// SHA256 is the OpenSSH fingerprint, as `ssh-keygen -l` prints it
	// ("SHA256:" and unpadded base64 of the SHA-256 of the key blob).
	SHA256 string
	// EC2Fingerprint is the KeyFingerprint EC2 reports for a key pair imported
	// from this key: MD5 of the DER SubjectPublicKeyInfo in colon hex for RSA,
	// padded base64 of the blob's SHA-256 for ed25519 (sources: the note
	// above ec2FingerprintED25519). Empty for ECDSA keys, which ImportKeyPair
	// refuses.
	EC2Fingerprint string
}

// String names the key by type and OpenSSH fingerprint.
func (k Key) String() string { return k.Type + " " + k.SHA256 }

// LogValue keeps the comment (often user@host) out of structured logs.
func (k Key) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("type", k.Type),
		slog.Int("bits", k.Bits),
		slog.String("sha256", k.SHA256),
	)
}

// EC2Importable reports whether EC2's ImportKeyPair accepts the key: it
// takes RSA and ED25519 keys only.
func (k Key) EC2Importable() bool { return k.EC2Fingerprint != "" }

// Accepted algorithm names, and what each one is.
var algorithms = map[string]struct {
	typ   string
	curve string // ECDSA only: the curve name inside the blob
	bits  int
}{
	"ssh-ed25519":         {typ: TypeED25519, bits: 256},
	"ecdsa-sha2-nistp256": {typ: TypeECDSA, curve: "nistp256", bits: 256},
	"ecdsa-sha2-nistp384": {typ: TypeECDSA, curve: "nistp384", bits: 384},
	"ecdsa-sha2-nistp521": {typ: TypeECDSA, curve: "nistp521", bits: 521},
	"ssh-rsa":             {typ: TypeRSA},
}

// Field messages. None of them may quote the input.
const (
	msgRequired     = "is required"
	msgTooLong      = "must be at most 16 KiB"
	msgOneLine      = "must be a single line holding one OpenSSH public key"
	msgText         = "must contain only printable UTF-8 text"
	msgOptions      = "must not start with authorized_keys options; give only the key line (type, key data, optional comment)"
	msgNotSSH       = "is not an OpenSSH public key: expected ssh-ed25519, ecdsa-sha2-nistp256/384/521 or ssh-rsa, then base64 key data"
	msgDSA          = "is a DSA (ssh-dss) key, which is not accepted; use an ed25519 key or an RSA key of at least 2048 bits"
	msgCert         = "is an SSH certificate, which is not accepted; give the plain public key"
	msgSK           = "is a security-key (sk-) key, which is not accepted because EC2 cannot import it; use an ed25519 or RSA key"
	msgNoData       = "is missing its base64 key data"
	msgBase64       = "has malformed base64 key data"
	msgMismatch     = "names a key type that does not match its key data"
	msgMalformed    = "has malformed key data"
	msgRSATooSmall  = "is an RSA key shorter than 2048 bits, which is not accepted"
	msgRSATooLarge  = "is an RSA key longer than 16384 bits, which is not accepted"
	msgRSAExponent  = "has an unsupported RSA public exponent"
	msgECDSAPoint   = "has an invalid ECDSA public point"
	msgPrivateKey   = "must be a public key, but this is a private key; dFlow never accepts private keys: give the contents of the .pub file instead"
	certSuffix      = "-cert-v01@openssh.com"
	securityKeyPref = "sk-"
)

func invalid(msg string) error { return fault.Field(FieldName, "%s", msg) }

// privateKeyMarkers finds private keys in every format a user is likely to
// paste: PEM (PKCS#1 "RSA PRIVATE KEY", "EC PRIVATE KEY", PKCS#8 "PRIVATE
// KEY", "ENCRYPTED PRIVATE KEY"), OpenSSH's "OPENSSH PRIVATE KEY", the
// ssh.com "SSH2 ENCRYPTED PRIVATE KEY" and PuTTY's .ppk header, plus the
// base64 of OpenSSH's "openssh-key-v1" magic, for a body pasted without its
// armour lines.
var privateKeyMarkers = regexp.MustCompile(`(?i)(?:BEGIN|END)[A-Z0-9 ]*PRIVATE KEY|PuTTY-User-Key-File-|b3BlbnNzaC1rZXktdjE`)

// Parse validates one OpenSSH public key line ("<algorithm> <base64>
// [comment]") and returns it with its fingerprints. Every error is a
// *fault.Error of Kind fault.Invalid naming FieldName: Code
// CodePrivateKeyRejected for a private key, "validation_failed" otherwise.
// No error quotes any part of s.
func Parse(s string) (Key, error) {
	// First, so a private key always gets its own code, however it is framed.
	if privateKeyMarkers.MatchString(s) {
		return Key{}, &fault.Error{
			Kind:   fault.Invalid,
			Code:   CodePrivateKeyRejected,
			Detail: FieldName + ": " + msgPrivateKey,
			Fields: []fault.FieldError{{Field: FieldName, Message: msgPrivateKey}},
		}
	}
	if len(s) > MaxLen {
		return Key{}, invalid(msgTooLong)
	}
	line := strings.TrimSpace(s)
	if line == "" {
		return Key{}, invalid(msgRequired)
	}
	if strings.ContainsAny(line, "\r\n\u2028\u2029") {
		return Key{}, invalid(msgOneLine)
	}
	if !printable(line) {
		return Key{}, invalid(msgText)
	}

	algo, rest := cutField(line)
	data, comment := cutField(rest)
	if err := checkAlgorithm(algo, line); err != nil {
		return Key{}, err
	}
	if data == "" {
		return Key{}, invalid(msgNoData)
	}
	blob, err := base64.StdEncoding.Strict().DecodeString(data)
	if err != nil || len(blob) == 0 {
		return Key{}, invalid(msgBase64)
	}
	k, err := parseBlob(algo, blob)
	if err != nil {
		return Key{}, err
	}
	sum := sha256.Sum256(blob)
	k.Comment = comment
	k.Authorized = algo + " " + base64.StdEncoding.EncodeToString(blob)
	k.SHA256 = "SHA256:" + base64.RawStdEncoding.EncodeToString(sum[:])
	return k, nil
}

// cutField splits s at its first run of spaces or tabs, as sshd does.
func cutField(s string) (field, rest string) {
	i := strings.IndexAny(s, " \t")
	if i < 0 {
		return s, ""
	}
	return s[:i], strings.TrimLeft(s[i:], " \t")
}

// printable refuses invalid UTF-8, control characters (the line is logged
// and shown in the console) and bidirectional overrides, which can make a
// comment display as something it is not.
func printable(s string) bool {
	if !utf8.ValidString(s) {
		return false
	}
	for _, r := range s {
		if r == '\t' {
			continue
		}
		if unicode.IsControl(r) || unicode.Is(unicode.Bidi_Control, r) {
			return false
		}
	}
	return true
}

// checkAlgorithm accepts the three supported algorithm names and explains
// why anything else is refused.
func checkAlgorithm(algo, line string) error {
	if _, ok := algorithms[algo]; ok {
		return nil
	}
	switch {
	case strings.HasSuffix(algo, certSuffix):
		return invalid(msgCert)
	case strings.HasPrefix(algo, securityKeyPref):
		// sk-ssh-ed25519@openssh.com and sk-ecdsa-sha2-nistp256@openssh.com
		// (FIDO/U2F keys): EC2's ImportKeyPair accepts RSA and ED25519 keys
		// only, so a node could never be launched with one.
		return invalid(msgSK)
	case algo == "ssh-dss":
		return invalid(msgDSA)
	}
	// authorized_keys options (`restrict`, `from="…"`, `command="…"`) come
	// before the algorithm name; an option value may contain spaces, so look
	// for an algorithm name anywhere further on.
	_, rest := cutField(line)
	for _, f := range strings.Fields(rest) {
		if looksLikeAlgorithm(f) {
			return invalid(msgOptions)
		}
	}
	return invalid(msgNotSSH)
}

func looksLikeAlgorithm(f string) bool {
	if _, ok := algorithms[f]; ok {
		return true
	}
	return f == "ssh-dss" || strings.HasSuffix(f, certSuffix) ||
		(strings.HasPrefix(f, securityKeyPref) && strings.HasSuffix(f, "@openssh.com"))
}

// parseBlob decodes the SSH wire encoding (RFC 4253 section 6.6, RFC 5656
// section 3.1, RFC 8709 section 4) of a key whose algorithm name is algo.
func parseBlob(algo string, blob []byte) (Key, error) {
	r := reader{b: blob}
	name := r.bytes()
	if r.failed {
		return Key{}, invalid(msgMalformed)
	}
	if string(name) != algo {
		return Key{}, invalid(msgMismatch)
	}
	a := algorithms[algo]
	k := Key{Type: a.typ, Bits: a.bits}
	switch a.typ {
	case TypeED25519:
		pub := r.bytes()
		if !r.done() || len(pub) != 32 {
			return Key{}, invalid(msgMalformed)
		}
		k.EC2Fingerprint = ec2FingerprintED25519(blob)
	case TypeECDSA:
		curve, point := r.bytes(), r.bytes()
		if !r.done() || string(curve) != a.curve {
			return Key{}, invalid(msgMalformed)
		}
		if !validPoint(a.curve, point) {
			return Key{}, invalid(msgECDSAPoint)
		}
	case TypeRSA:
		e, n := r.mpint(), r.mpint()
		if !r.done() || e == nil || n == nil {
			return Key{}, invalid(msgMalformed)
		}
		// Go's crypto/rsa, x/crypto/ssh and OpenSSH all want a small odd
		// exponent; anything else is a crafted key.
		if !e.IsInt64() || e.Int64() < 3 || e.Int64() > 1<<31-1 || e.Bit(0) == 0 {
			return Key{}, invalid(msgRSAExponent)
		}
		k.Bits = n.BitLen()
		switch {
		case k.Bits < MinRSABits:
			return Key{}, invalid(msgRSATooSmall)
		case k.Bits > MaxRSABits:
			return Key{}, invalid(msgRSATooLarge)
		case n.Bit(0) == 0:
			return Key{}, invalid(msgMalformed)
		}
		k.EC2Fingerprint = ec2FingerprintRSA(&rsa.PublicKey{N: n, E: int(e.Int64())})
	}
	return k, nil
}

// validPoint checks an uncompressed ECDSA point lies on the curve (and is
// not the point at infinity).
func validPoint(curve string, point []byte) bool {
	var c ecdh.Curve
	switch curve {
	case "nistp256":
		c = ecdh.P256()
	case "nistp384":
		c = ecdh.P384()
	case "nistp521":
		c = ecdh.P521()
	default:
		return false
	}
	_, err := c.NewPublicKey(point)
	return err == nil
}

// How EC2 fingerprints an imported key pair. AWS documents it in two places
// that disagree for RSA:
//
//   - The API reference (ImportKeyPair, KeyPairInfo.keyFingerprint) says an
//     imported RSA key's fingerprint is "the MD5 public key fingerprint as
//     specified in section 4 of RFC 4716", which would be MD5 over the SSH
//     wire blob, i.e. `ssh-keygen -l -E md5`.
//   - The EC2 User Guide, "Verify the fingerprint of your key pair", gives
//     `openssl rsa -in key -pubout -outform DER | openssl md5 -c` (or, from
//     the public key alone, `ssh-keygen -e -m PKCS8 -f key.pub | openssl pkey
//     -pubin -outform DER | openssl md5 -c`): MD5 over the DER
//     SubjectPublicKeyInfo, as colon-separated lowercase hex.
//
// Answers from live AWS match the User Guide (serverfault.com question
// 603982, the ec2_key integration tests of ansible-collections/amazon.aws,
// mulgadc/spinifex PR 570), and so does moto: RSA uses MD5(SPKI DER).
//
// For ED25519 both say "the base64-encoded SHA-256 digest, which is the
// default for OpenSSH": the SHA-256 of the SSH wire blob, as in Key.SHA256,
// but written as padded standard base64 without the "SHA256:" prefix
// (eksctl-io/eksctl PR 5151, amazon.aws PR 2406, spinifex PR 571). moto
// 5.2.1 computes something else; see moto_test.go.
//
// ECDSA has no EC2 fingerprint: ImportKeyPair imports "an RSA or ED25519 key
// pair" only (KeyPairInfo.keyType is rsa | ed25519) and answers
// InvalidKey.Format for an ECDSA key.

func ec2FingerprintED25519(blob []byte) string {
	sum := sha256.Sum256(blob)
	return base64.StdEncoding.EncodeToString(sum[:])
}

func ec2FingerprintRSA(pub *rsa.PublicKey) string {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		// Unreachable: any positive modulus and int exponent marshal.
		return ""
	}
	sum := md5.Sum(der)
	return colonHex(sum[:])
}

func colonHex(b []byte) string {
	h := hex.EncodeToString(b)
	var sb strings.Builder
	for i := 0; i < len(h); i += 2 {
		if i > 0 {
			sb.WriteByte(':')
		}
		sb.WriteString(h[i : i+2])
	}
	return sb.String()
}

// reader reads SSH wire-format fields; the first failure sticks.
type reader struct {
	b      []byte
	failed bool
}

// bytes reads a length-prefixed string.
func (r *reader) bytes() []byte {
	if r.failed || len(r.b) < 4 {
		r.failed = true
		return nil
	}
	n := binary.BigEndian.Uint32(r.b)
	if uint64(n) > uint64(len(r.b)-4) {
		r.failed = true
		return nil
	}
	v := r.b[4 : 4+n]
	r.b = r.b[4+n:]
	return v
}

// mpint reads a positive multiple-precision integer in its minimal encoding
// (RFC 4251 section 5); nil for anything else, including zero.
func (r *reader) mpint() *big.Int {
	v := r.bytes()
	if r.failed || len(v) == 0 || v[0]&0x80 != 0 {
		r.failed = true
		return nil
	}
	if len(v) > 1 && v[0] == 0 && v[1]&0x80 == 0 {
		r.failed = true
		return nil
	}
	v = bytes.TrimLeft(v, "\x00")
	if len(v) == 0 {
		r.failed = true
		return nil
	}
	return new(big.Int).SetBytes(v)
}

// done reports whether every read succeeded and nothing is left over.
func (r *reader) done() bool { return !r.failed && len(r.b) == 0 }
