package sshkeys_test

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/md5"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"math/big"
	"strings"
	"sync"
	"testing"

	"github.com/dflow-sh/cloud-accounts/shared/fault"
	"github.com/dflow-sh/cloud-accounts/shared/sshkeys"
)

// str is an SSH wire-format string: a uint32 length, then the bytes.
func str[T ~string | ~[]byte](v T) []byte {
	b := binary.BigEndian.AppendUint32(nil, uint32(len(v)))
	return append(b, v...)
}

// mpint is a positive SSH wire-format mpint in its minimal encoding.
func mpint(n *big.Int) []byte {
	b := n.Bytes()
	if len(b) > 0 && b[0]&0x80 != 0 {
		b = append([]byte{0}, b...)
	}
	return str(b)
}

func cat(parts ...[]byte) []byte {
	var b []byte
	for _, p := range parts {
		b = append(b, p...)
	}
	return b
}

// line is an authorized_keys line for a blob; comment may be empty.
func line(algo string, blob []byte, comment string) string {
	l := algo + " " + base64.StdEncoding.EncodeToString(blob)
	if comment != "" {
		l += " " + comment
	}
	return l
}

func ed25519Blob(pub ed25519.PublicKey) []byte {
	return cat(str("ssh-ed25519"), str([]byte(pub)))
}

func newED25519(t testing.TB) ed25519.PublicKey {
	t.Helper()
	pub, _, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return pub
}

type curve struct {
	algo, name string
	c          elliptic.Curve
	bits       int
}

var curves = []curve{
	{"ecdsa-sha2-nistp256", "nistp256", elliptic.P256(), 256},
	{"ecdsa-sha2-nistp384", "nistp384", elliptic.P384(), 384},
	{"ecdsa-sha2-nistp521", "nistp521", elliptic.P521(), 521},
}

func ecdsaBlob(t testing.TB, c curve) []byte {
	t.Helper()
	priv, err := ecdsa.GenerateKey(c.c, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	pub, err := priv.PublicKey.ECDH()
	if err != nil {
		t.Fatal(err)
	}
	return cat(str(c.algo), str(c.name), str(pub.Bytes()))
}

func rsaBlob(e *big.Int, n *big.Int) []byte {
	return cat(str("ssh-rsa"), mpint(e), mpint(n))
}

// oddModulus is a random odd number of exactly bits bits: the parser checks
// sizes, not primality, so sizes no one would generate cost nothing.
func oddModulus(t testing.TB, bits int) *big.Int {
	t.Helper()
	b := make([]byte, (bits+7)/8)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	n := new(big.Int).SetBytes(b)
	for i := n.BitLen(); i >= bits; i-- {
		n.SetBit(n, i, 0)
	}
	n.SetBit(n, bits-1, 1)
	n.SetBit(n, 0, 1)
	return n
}

// Independent renderings of the fingerprints, for the generated keys.
func opensshSHA256(blob []byte) string {
	sum := sha256.Sum256(blob)
	return "SHA256:" + base64.RawStdEncoding.EncodeToString(sum[:])
}

func colonHex(b []byte) string {
	h := hex.EncodeToString(b)
	parts := make([]string, 0, len(b))
	for i := 0; i < len(h); i += 2 {
		parts = append(parts, h[i:i+2])
	}
	return strings.Join(parts, ":")
}

func md5SPKI(t testing.TB, pub any) string {
	t.Helper()
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	sum := md5.Sum(der)
	return colonHex(sum[:])
}

// rsa2048 is generated once for all tests: RSA generation is slow under -race.
var rsa2048 = sync.OnceValues(func() (*rsa.PrivateKey, error) { return rsa.GenerateKey(rand.Reader, 2048) })

// checkRejected asserts err is the expected domain error and echoes no part
// of input.
func checkRejected(t *testing.T, err error, input, code, want string) {
	t.Helper()
	if err == nil {
		t.Fatal("accepted")
	}
	fe, ok := fault.As(err)
	if !ok {
		t.Fatalf("not a *fault.Error: %T", err)
	}
	if fe.Kind != fault.Invalid || fe.Code != code {
		t.Errorf("kind %v code %q, want Invalid %q", fe.Kind, fe.Code, code)
	}
	if len(fe.Fields) != 1 || fe.Fields[0].Field != sshkeys.FieldName {
		t.Fatalf("fields %+v", fe.Fields)
	}
	if !strings.Contains(fe.Fields[0].Message, want) {
		t.Errorf("message %q does not contain %q", fe.Fields[0].Message, want)
	}
	if fe.Err != nil {
		t.Errorf("wraps a cause: %v", fe.Err)
	}
	if errors.Unwrap(err) != nil {
		t.Errorf("unwraps to %v", errors.Unwrap(err))
	}
	assertNoEcho(t, fe, input)
}

// vocabulary is text the messages name on their own; input that contains it
// is not echoed by a message that does.
var vocabulary = []string{
	"ssh-ed25519", "ecdsa-sha2-nistp256", "ecdsa-sha2-nistp384", "ecdsa-sha2-nistp521", "ssh-rsa", "ssh-dss",
}

// assertNoEcho fails if any 8-byte run of the input appears in what the
// error shows: its text, detail and field messages.
func assertNoEcho(t *testing.T, fe *fault.Error, input string) {
	t.Helper()
	shown := fe.Error() + "\n" + fe.Detail
	for _, f := range fe.Fields {
		shown += "\n" + f.Field + ": " + f.Message
	}
	const window = 8
	for i := 0; i+window <= len(input); i++ {
		w := input[i : i+window]
		if strings.TrimSpace(w) != w || !strings.Contains(shown, w) {
			continue
		}
		known := false
		for _, v := range vocabulary {
			known = known || strings.Contains(v, w)
		}
		if !known {
			t.Fatalf("error echoes input %q: %s", w, shown)
		}
	}
}
