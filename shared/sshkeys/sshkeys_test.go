package sshkeys_test

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"log/slog"
	"math/big"
	"strings"
	"testing"

	"github.com/dflow-sh/cloud-accounts/shared/fault"
	"github.com/dflow-sh/cloud-accounts/shared/sshkeys"
)

const (
	validation = "validation_failed"
	private    = sshkeys.CodePrivateKeyRejected
)

// Keys made once with OpenSSH 9.2p1's ssh-keygen. sha256 is `ssh-keygen -lf`;
// the RSA ec2 value is the EC2 User Guide's command, `ssh-keygen -e -m PKCS8
// -f key.pub | openssl pkey -pubin -outform DER | openssl md5 -c`; the ed25519
// one is the sha256 value as AWS writes it (padded, no prefix).
var vectors = []struct {
	name, line, typ string
	bits            int
	sha256, ec2     string
}{
	{
		name:   "ed25519",
		line:   "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIMI4q2HQVbVJ4Q6QOvSLeegZq0IclYECDAjFfkmmSlUB vector@dflow",
		typ:    sshkeys.TypeED25519,
		bits:   256,
		sha256: "SHA256:LN2PIszc1m12LnySugy//vopthIzo6uE+S0gExi6I/Q",
		ec2:    "LN2PIszc1m12LnySugy//vopthIzo6uE+S0gExi6I/Q=",
	},
	{
		name:   "ecdsa-p256",
		line:   "ecdsa-sha2-nistp256 AAAAE2VjZHNhLXNoYTItbmlzdHAyNTYAAAAIbmlzdHAyNTYAAABBBD1otd2ZVzUlrj3iKA3decH0njbVzc82MxK5sqjkxdLhHPSXAwyQ2NxXcBMD0psf1hIxmeu+kqK8tNQGBEJjUdw= vector@dflow",
		typ:    sshkeys.TypeECDSA,
		bits:   256,
		sha256: "SHA256:kmkTE4STTiFFZ2Uk4n184k0oiZI72d09q7HrA2Uwgd0",
		ec2:    "",
	},
	{
		name:   "rsa-2048",
		line:   "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQC0aDD9DeuaD4g5DbJ+J1DTDlUGvEZvozm80DJ0JRmPvrAZvHqnT2MQl7BZBPVGo0mlXYWNcI7Yel3mZP8hNPqKcjI27e1qcxNAEIWc1HqzcN6dDolxAqBBC2VU8IFlIxrloWZKSWkssDhckIWAWJ4Brlcvxfd4sKwfJSSC1J3LL6jdVLf5TxFZsOPRMcjtGacW3ImirxFDeLk9cDhWjuRSsnWXFs2gvgaSwIA22KWZkEgb/8+G0a/bk72rVDoJpnd75CKsjOE95D0O+t7Xvrkln69QupnhN2uR6r4LDamsPDfofoKL0cu5Ztz6BQ9SBArfX39M3y+6o31XhSkmKRoL vector@dflow",
		typ:    sshkeys.TypeRSA,
		bits:   2048,
		sha256: "SHA256:MNtxHEnqoX24tgVxo7GV5E2rlX20+6QKHqxA63EtZm4",
		ec2:    "97:36:ee:17:3b:ef:e2:ef:36:bc:ce:39:3e:b0:e7:d0",
	},
}

// A DSA key from the same ssh-keygen.
const dsaLine = "ssh-dss AAAAB3NzaC1kc3MAAACBAKg7UnQkhLq1tUuzm6lzJD1Qv4cdkEEkT0+sHWaFR1CQ83VTtyBF1FaWGzns3+ylCP7Xf/66TYqNoXRCFNMMBkCNOoyperdiEVGv4N1e8YBsG4vUeyiiaptxCGqt6QxNSaTliqvGjHnfhbwCbqonNS1tqyN73HV2W6YBf2TLhrv3AAAAFQC0cRiaWCVzhukD1GXlFoE+7yQigwAAAIEAi2ugaiEC7o3tAKJZTHV1EZoJ6Iu4nkaGOWJM0DPWVWeDbMxE+oScUaVt/+M0g97NHfGn1LlVkBZhjtbRsOMMaMN29J1rSiUidWFlzLkWtzT39w6KIcJsL9JsRbyukWYlTcuxVHJRULt+qhf6lp4u0/dJEsWmRIsyi0xCs67F2BMAAACAC3DtBT+bwF3Ic6Enh8s7x0LVmQWUNhHUNYXBSG4dek0vRZxoNaY8DXS3iJYYrtA6vI9p/sH5tSqRkKx1cR1A4HK6Ezb9Bx5jm/feuC2q4KlxxuKU5RkpTmb35aU8uFZIqrDrpmfD3G3KxMgxfzXGR3367cD0DAbm6zXnje0MGDc= root@vm"

func TestFixedVectors(t *testing.T) {
	t.Parallel()
	for _, v := range vectors {
		t.Run(v.name, func(t *testing.T) {
			t.Parallel()
			k, err := sshkeys.Parse(v.line)
			if err != nil {
				t.Fatal(err)
			}
			want := sshkeys.Key{
				Type:           v.typ,
				Bits:           v.bits,
				Comment:        "vector@dflow",
				Authorized:     strings.TrimSuffix(v.line, " vector@dflow"),
				SHA256:         v.sha256,
				EC2Fingerprint: v.ec2,
			}
			if k != want {
				t.Errorf("got  %+v\nwant %+v", k, want)
			}
			if k.EC2Importable() != (v.ec2 != "") {
				t.Errorf("EC2Importable %v", k.EC2Importable())
			}
		})
	}
}

func TestParseValid(t *testing.T) {
	t.Parallel()
	ed := newED25519(t)
	edBlob := ed25519Blob(ed)
	priv, err := rsa2048()
	if err != nil {
		t.Fatal(err)
	}
	rsaKey := rsaBlob(big.NewInt(int64(priv.E)), priv.N)
	big16384 := oddModulus(t, 16384)
	rsaMax := rsaBlob(big.NewInt(65537), big16384)

	edWant := sshkeys.Key{
		Type: sshkeys.TypeED25519, Bits: 256,
		Authorized:     line("ssh-ed25519", edBlob, ""),
		SHA256:         opensshSHA256(edBlob),
		EC2Fingerprint: base64.StdEncoding.EncodeToString(sha256sum(edBlob)),
	}
	withComment := func(k sshkeys.Key, c string) sshkeys.Key { k.Comment = c; return k }

	type tc struct {
		name  string
		input string
		want  sshkeys.Key
	}
	cases := []tc{
		{"ed25519 without comment", line("ssh-ed25519", edBlob, ""), edWant},
		{"ed25519 with comment", line("ssh-ed25519", edBlob, "alice@laptop"), withComment(edWant, "alice@laptop")},
		{"comment with spaces", line("ssh-ed25519", edBlob, "Alice's laptop  (work)"), withComment(edWant, "Alice's laptop  (work)")},
		{"unicode comment", line("ssh-ed25519", edBlob, "zoë@café"), withComment(edWant, "zoë@café")},
		{"trailing newline", line("ssh-ed25519", edBlob, "a@b") + "\n", withComment(edWant, "a@b")},
		{"CRLF and indentation", "  \t" + line("ssh-ed25519", edBlob, "a@b") + "\r\n", withComment(edWant, "a@b")},
		{"tabs between fields", "ssh-ed25519\t" + base64.StdEncoding.EncodeToString(edBlob) + "\t\ta@b", withComment(edWant, "a@b")},
		{"rsa 2048", line("ssh-rsa", rsaKey, "ops"), sshkeys.Key{
			Type: sshkeys.TypeRSA, Bits: 2048, Comment: "ops",
			Authorized:     line("ssh-rsa", rsaKey, ""),
			SHA256:         opensshSHA256(rsaKey),
			EC2Fingerprint: md5SPKI(t, &priv.PublicKey),
		}},
		{"rsa 16384", line("ssh-rsa", rsaMax, ""), sshkeys.Key{
			Type: sshkeys.TypeRSA, Bits: 16384,
			Authorized:     line("ssh-rsa", rsaMax, ""),
			SHA256:         opensshSHA256(rsaMax),
			EC2Fingerprint: md5SPKI(t, &rsa.PublicKey{N: big16384, E: 65537}),
		}},
	}
	for _, c := range curves {
		blob := ecdsaBlob(t, c)
		cases = append(cases, tc{c.algo, line(c.algo, blob, "ci"), sshkeys.Key{
			Type: sshkeys.TypeECDSA, Bits: c.bits, Comment: "ci",
			Authorized: line(c.algo, blob, ""),
			SHA256:     opensshSHA256(blob),
		}})
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			k, err := sshkeys.Parse(c.input)
			if err != nil {
				t.Fatal(err)
			}
			if k != c.want {
				t.Errorf("got  %+v\nwant %+v", k, c.want)
			}
			// The stored form parses to the same key.
			again, err := sshkeys.Parse(k.Authorized)
			if err != nil {
				t.Fatal(err)
			}
			if again != withComment(k, "") {
				t.Errorf("reparse %+v", again)
			}
		})
	}
}

func sha256sum(b []byte) []byte {
	s := sha256.Sum256(b)
	return s[:]
}

func TestParseRejects(t *testing.T) {
	t.Parallel()
	ed := newED25519(t)
	edBlob := ed25519Blob(ed)
	edLine := line("ssh-ed25519", edBlob, "alice@laptop")
	edB64 := base64.StdEncoding.EncodeToString(edBlob)
	p256, p384 := ecdsaBlob(t, curves[0]), ecdsaBlob(t, curves[1])
	e := big.NewInt(65537)
	n2048 := oddModulus(t, 2048)

	type tc struct {
		name, input, code, want string
	}
	cases := []tc{
		{"empty", "", validation, "is required"},
		{"blank", " \n\t ", validation, "is required"},
		{"longer than 16 KiB", edLine + " " + strings.Repeat("x", sshkeys.MaxLen), validation, "16 KiB"},
		{"two lines", edLine + "\n" + line("ssh-ed25519", ed25519Blob(newED25519(t)), ""), validation, "single line"},
		{"two lines CR", edLine + "\r" + edLine, validation, "single line"},
		{"RFC 4716 block", "---- BEGIN SSH2 PUBLIC KEY ----\nComment: \"zz\"\n" + edB64 + "\n---- END SSH2 PUBLIC KEY ----", validation, "single line"},
		{"garbage", "hello world, garbage", validation, "is not an OpenSSH public key"},
		{"base64 only", edB64, validation, "is not an OpenSSH public key"},
		{"unknown algorithm", "ssh-foo " + edB64, validation, "is not an OpenSSH public key"},
		{"uppercase algorithm", "SSH-ED25519 " + edB64, validation, "is not an OpenSSH public key"},
		{"options: restrict", "restrict " + edLine, validation, "authorized_keys options"},
		{"options: command with spaces", `command="echo hi there",no-pty ` + edLine, validation, "authorized_keys options"},
		{"options: from", `from="10.0.0.0/8" ` + line("ssh-rsa", rsaBlob(e, n2048), ""), validation, "authorized_keys options"},
		{"options before a certificate", "cert-authority ssh-ed25519-cert-v01@openssh.com " + edB64, validation, "authorized_keys options"},
		{"DSA", dsaLine, validation, "DSA"},
		{"certificate ed25519", line("ssh-ed25519-cert-v01@openssh.com",
			cat(str("ssh-ed25519-cert-v01@openssh.com"), str("nonce-nonce-nonce-nonce-nonce-no"), str([]byte(ed))), "c"), validation, "certificate"},
		{"certificate rsa", line("ssh-rsa-cert-v01@openssh.com", cat(str("ssh-rsa-cert-v01@openssh.com"), mpint(e), mpint(n2048)), ""), validation, "certificate"},
		{"security key ed25519", line("sk-ssh-ed25519@openssh.com",
			cat(str("sk-ssh-ed25519@openssh.com"), str([]byte(ed)), str("ssh:")), "yubi"), validation, "security-key"},
		{"security key ecdsa", line("sk-ecdsa-sha2-nistp256@openssh.com",
			cat(str("sk-ecdsa-sha2-nistp256@openssh.com"), str("nistp256"), str(bytes.Repeat([]byte{4}, 65)), str("ssh:")), ""), validation, "security-key"},
		{"no key data", "ssh-ed25519", validation, "missing its base64"},
		{"bad base64 characters", "ssh-ed25519 AAAAC3Nz!!!!aC1lZDI1NTE5", validation, "malformed base64"},
		{"unpadded base64", "ecdsa-sha2-nistp256 " + strings.TrimRight(base64.StdEncoding.EncodeToString(p256), "="), validation, "malformed base64"},
		{"truncated base64", "ssh-ed25519 " + edB64[:len(edB64)-5], validation, "malformed base64"},
		{"type mismatch rsa/ed25519", "ssh-rsa " + edB64, validation, "does not match"},
		{"type mismatch ed25519/rsa", line("ssh-ed25519", rsaBlob(e, n2048), ""), validation, "does not match"},
		{"type mismatch between curves", line("ecdsa-sha2-nistp256", p384, ""), validation, "does not match"},
		{"ed25519 key too short", line("ssh-ed25519", cat(str("ssh-ed25519"), str(ed[:31])), ""), validation, "malformed key data"},
		{"trailing bytes", line("ssh-ed25519", append(bytes.Clone(edBlob), 0), ""), validation, "malformed key data"},
		{"length past the end", line("ssh-ed25519", cat(str("ssh-ed25519"), []byte{0, 0, 1, 0}, ed), ""), validation, "malformed key data"},
		{"empty blob name", line("ssh-ed25519", []byte{0, 0, 0}, ""), validation, "malformed key data"},
		{"ecdsa curve name mismatch", line("ecdsa-sha2-nistp256", cat(str("ecdsa-sha2-nistp256"), str("nistp384"), str(p256[len(p256)-65:])), ""), validation, "malformed key data"},
		{"ecdsa point off the curve", line("ecdsa-sha2-nistp256", cat(str("ecdsa-sha2-nistp256"), str("nistp256"), str(append([]byte{4}, bytes.Repeat([]byte{7}, 64)...))), ""), validation, "invalid ECDSA"},
		{"ecdsa compressed point", line("ecdsa-sha2-nistp256", cat(str("ecdsa-sha2-nistp256"), str("nistp256"), str(append([]byte{2}, p256[len(p256)-64:len(p256)-32]...))), ""), validation, "invalid ECDSA"},
		{"rsa 1024", line("ssh-rsa", rsaBlob(e, oddModulus(t, 1024)), "old"), validation, "shorter than 2048"},
		{"rsa 2047", line("ssh-rsa", rsaBlob(e, oddModulus(t, 2047)), ""), validation, "shorter than 2048"},
		{"rsa 16385", line("ssh-rsa", rsaBlob(e, oddModulus(t, 16385)), ""), validation, "longer than 16384"},
		{"rsa even modulus", line("ssh-rsa", rsaBlob(e, new(big.Int).Sub(n2048, big.NewInt(1))), ""), validation, "malformed key data"},
		{"rsa exponent 1", line("ssh-rsa", rsaBlob(big.NewInt(1), n2048), ""), validation, "exponent"},
		{"rsa even exponent", line("ssh-rsa", rsaBlob(big.NewInt(65536), n2048), ""), validation, "exponent"},
		{"rsa huge exponent", line("ssh-rsa", rsaBlob(new(big.Int).Lsh(big.NewInt(1), 40), n2048), ""), validation, "exponent"},
		{"rsa non-minimal mpint", line("ssh-rsa", cat(str("ssh-rsa"), str([]byte{0, 1, 0, 1}), mpint(n2048)), ""), validation, "malformed key data"},
		{"rsa negative mpint", line("ssh-rsa", cat(str("ssh-rsa"), mpint(e), str(append([]byte{0x80}, n2048.Bytes()...))), ""), validation, "malformed key data"},
		{"rsa zero mpint", line("ssh-rsa", cat(str("ssh-rsa"), mpint(e), str("")), ""), validation, "malformed key data"},
		{"NUL in comment", edLine + "\x00x", validation, "printable"},
		{"escape sequence in comment", edLine + " \x1b[31mred", validation, "printable"},
		{"bidi override in comment", edLine + " \u202eevil", validation, "printable"},
		{"invalid UTF-8", edLine + " \xff\xfe", validation, "printable"},
		{"line separator", edLine + "\u2028" + edLine, validation, "single line"},
	}

	// Private keys, real where the standard library can write them.
	rsaPriv, err := rsa2048()
	if err != nil {
		t.Fatal(err)
	}
	_, edPriv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	ecPriv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	pkcs8, err := x509.MarshalPKCS8PrivateKey(edPriv)
	if err != nil {
		t.Fatal(err)
	}
	sec1, err := x509.MarshalECPrivateKey(ecPriv)
	if err != nil {
		t.Fatal(err)
	}
	pemOf := func(typ string, der []byte) string {
		return string(pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}))
	}
	// An OpenSSH private key: PEM-style armour around "openssh-key-v1\0" and
	// the key (the layout, not a usable key; nothing here can write one).
	opensshBody := base64.StdEncoding.EncodeToString(cat([]byte("openssh-key-v1\x00"), str("none"), str("none"), str(""),
		[]byte{0, 0, 0, 1}, str(edBlob), str(cat(randomBytes(t, 8), str("ssh-ed25519"), str([]byte(ed)), str([]byte(edPriv)), str("alice@laptop")))))
	openssh := "-----BEGIN OPENSSH PRIVATE KEY-----\n" + wrap(opensshBody, 70) + "-----END OPENSSH PRIVATE KEY-----\n"
	putty := "PuTTY-User-Key-File-3: ssh-ed25519\nEncryption: none\nComment: alice@laptop\nPublic-Lines: 2\n" +
		wrap(edB64, 64) + "Private-Lines: 1\n" + base64.StdEncoding.EncodeToString(str([]byte(edPriv.Seed()))) + "\nPrivate-MAC: " +
		fmt.Sprintf("%x", randomBytes(t, 32)) + "\n"

	privates := []tc{
		{"PEM PKCS#1 RSA", pemOf("RSA PRIVATE KEY", x509.MarshalPKCS1PrivateKey(rsaPriv)), private, "private key"},
		{"PEM PKCS#8", pemOf("PRIVATE KEY", pkcs8), private, "private key"},
		{"PEM SEC 1 EC", pemOf("EC PRIVATE KEY", sec1), private, "private key"},
		{"PEM encrypted PKCS#8", pemOf("ENCRYPTED PRIVATE KEY", randomBytes(t, 300)), private, "private key"},
		{"OpenSSH", openssh, private, "private key"},
		{"OpenSSH, one line", strings.ReplaceAll(openssh, "\n", " "), private, "private key"},
		{"OpenSSH body without armour", strings.ReplaceAll(wrap(opensshBody, 70), "\n", ""), private, "private key"},
		{"OpenSSH after a public key", edLine + "\n" + openssh, private, "private key"},
		{"OpenSSH longer than 16 KiB", openssh + strings.Repeat("A", sshkeys.MaxLen), private, "private key"},
		{"PuTTY", putty, private, "private key"},
		{"PuTTY v2", strings.Replace(putty, "File-3", "File-2", 1), private, "private key"},
		{"ssh.com", "---- BEGIN SSH2 ENCRYPTED PRIVATE KEY ----\n" + wrap(base64.StdEncoding.EncodeToString(randomBytes(t, 200)), 70) + "---- END SSH2 ENCRYPTED PRIVATE KEY ----\n", private, "private key"},
	}
	cases = append(cases, privates...)

	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			k, err := sshkeys.Parse(c.input)
			if err == nil {
				t.Fatalf("accepted as %v", k)
			}
			if k != (sshkeys.Key{}) {
				t.Errorf("returned a key with the error: %v", k)
			}
			checkRejected(t, err, c.input, c.code, c.want)
		})
	}
}

func randomBytes(t testing.TB, n int) []byte {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b
}

func wrap(s string, width int) string {
	var b strings.Builder
	for len(s) > width {
		b.WriteString(s[:width] + "\n")
		s = s[width:]
	}
	b.WriteString(s + "\n")
	return b.String()
}

// The private-key error carries the distinct code and nothing of the key,
// as an API client and a log line would see it.
func TestPrivateKeyError(t *testing.T) {
	t.Parallel()
	_, err := sshkeys.Parse("-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAA\n-----END OPENSSH PRIVATE KEY-----\n")
	if !fault.Is(err, sshkeys.CodePrivateKeyRejected) || fault.KindOf(err) != fault.Invalid {
		t.Fatalf("err %v", err)
	}
	fe, _ := fault.As(err)
	body, _ := json.Marshal(fe.Fields)
	if want := `[{"field":"publicKey","message":"must be a public key, but this is a private key; dFlow never accepts private keys: give the contents of the .pub file instead"}]`; string(body) != want {
		t.Errorf("fields %s", body)
	}
	if strings.Contains(err.Error(), "b3Bl") || strings.Contains(err.Error(), "OPENSSH") {
		t.Errorf("error text %q", err)
	}
}

func TestKeyLogging(t *testing.T) {
	t.Parallel()
	k, err := sshkeys.Parse(vectors[0].line)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := k.String(), "ed25519 SHA256:LN2PIszc1m12LnySugy//vopthIzo6uE+S0gExi6I/Q"; got != want {
		t.Errorf("String %q, want %q", got, want)
	}
	if got := fmt.Sprintf("%v", k); got != k.String() {
		t.Errorf("%%v %q", got)
	}
	var buf bytes.Buffer
	slog.New(slog.NewJSONHandler(&buf, nil)).Info("key", "key", k)
	var rec struct {
		Key map[string]any `json:"key"`
	}
	if err := json.Unmarshal(buf.Bytes(), &rec); err != nil {
		t.Fatal(err)
	}
	if rec.Key["type"] != "ed25519" || rec.Key["sha256"] != k.SHA256 || rec.Key["bits"] != float64(256) || len(rec.Key) != 3 {
		t.Errorf("logged %s", buf.Bytes())
	}
	if strings.Contains(buf.String(), "vector@dflow") {
		t.Errorf("the comment reached the log: %s", buf.Bytes())
	}
}

func FuzzParse(f *testing.F) {
	for _, v := range vectors {
		f.Add(v.line)
	}
	f.Add(dsaLine)
	f.Add("restrict " + vectors[0].line)
	f.Add("ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAAAAQ==")
	f.Add("-----BEGIN RSA PRIVATE KEY-----")
	f.Fuzz(func(t *testing.T, s string) {
		k, err := sshkeys.Parse(s)
		if err != nil {
			fe, ok := fault.As(err)
			if !ok || fe.Kind != fault.Invalid || len(fe.Fields) != 1 || fe.Fields[0].Field != sshkeys.FieldName {
				t.Fatalf("error %#v", err)
			}
			return
		}
		again, err := sshkeys.Parse(k.Authorized)
		if err != nil {
			t.Fatalf("stored form rejected: %v", err)
		}
		if again.SHA256 != k.SHA256 || again.EC2Fingerprint != k.EC2Fingerprint || again.Authorized != k.Authorized {
			t.Fatalf("reparse %+v != %+v", again, k)
		}
		if strings.ContainsAny(k.Authorized+k.Comment, "\r\n\x00") {
			t.Fatalf("line breaks kept: %q", k)
		}
	})
}
