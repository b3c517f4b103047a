package sshkeys_test

import (
	"crypto/md5"
	"encoding/pem"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/dflow-sh/cloud-accounts/shared/sshkeys"
)

// sshKeygen runs ssh-keygen, skipping the test where OpenSSH is not
// installed: TestFixedVectors holds values it produced once.
func sshKeygen(t *testing.T, args ...string) string {
	t.Helper()
	bin, err := exec.LookPath("ssh-keygen")
	if err != nil {
		t.Skip("ssh-keygen not installed; TestFixedVectors covers its values")
	}
	out, err := exec.Command(bin, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("ssh-keygen %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// Keys from OpenSSH itself: Parse agrees with `ssh-keygen -l` on size,
// fingerprint and comment, and with the EC2 User Guide's recipe on the EC2
// fingerprint, computed here from the DER that OpenSSH writes rather than
// from Go's encoder.
func TestAgainstSSHKeygen(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name, typ string
		args      []string
	}{
		{"ed25519", sshkeys.TypeED25519, []string{"-t", "ed25519"}},
		{"ecdsa-256", sshkeys.TypeECDSA, []string{"-t", "ecdsa", "-b", "256"}},
		{"ecdsa-384", sshkeys.TypeECDSA, []string{"-t", "ecdsa", "-b", "384"}},
		{"ecdsa-521", sshkeys.TypeECDSA, []string{"-t", "ecdsa", "-b", "521"}},
		{"rsa-2048", sshkeys.TypeRSA, []string{"-t", "rsa", "-b", "2048"}},
		{"rsa-3072", sshkeys.TypeRSA, []string{"-t", "rsa", "-b", "3072"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			path := filepath.Join(t.TempDir(), "id")
			sshKeygen(t, append(c.args, "-q", "-N", "", "-C", "dev@example.test", "-f", path)...)
			pubText := readFile(t, path+".pub")

			k, err := sshkeys.Parse(pubText)
			if err != nil {
				t.Fatal(err)
			}
			// "<bits> SHA256:<b64> <comment> (<TYPE>)"
			f := strings.Fields(sshKeygen(t, "-l", "-f", path+".pub"))
			if len(f) != 4 {
				t.Fatalf("ssh-keygen -l printed %q", f)
			}
			bits, _ := strconv.Atoi(f[0])
			if k.Type != c.typ || k.Bits != bits || k.SHA256 != f[1] || k.Comment != f[2] {
				t.Errorf("parsed %+v; ssh-keygen says %q", k, f)
			}
			if want := strings.TrimSuffix(strings.TrimSpace(pubText), " dev@example.test"); k.Authorized != want {
				t.Errorf("Authorized %q, want %q", k.Authorized, want)
			}

			var want string
			switch c.typ {
			case sshkeys.TypeED25519:
				want = strings.TrimPrefix(f[1], "SHA256:") + "="
			case sshkeys.TypeRSA:
				block, _ := pem.Decode([]byte(sshKeygen(t, "-e", "-m", "PKCS8", "-f", path+".pub")))
				if block == nil || block.Type != "PUBLIC KEY" {
					t.Fatalf("ssh-keygen -e -m PKCS8 gave no PUBLIC KEY block")
				}
				sum := md5.Sum(block.Bytes)
				want = colonHex(sum[:])
			}
			if k.EC2Fingerprint != want {
				t.Errorf("EC2Fingerprint %q, want %q", k.EC2Fingerprint, want)
			}

			// The private half, in whichever format ssh-keygen wrote it.
			priv := readFile(t, path)
			_, err = sshkeys.Parse(priv)
			checkRejected(t, err, priv, sshkeys.CodePrivateKeyRejected, "private key")
		})
	}
}

// What ssh-keygen makes that Parse must refuse: DSA keys, certificates and
// private keys in the PEM formats (-m PEM, -m PKCS8).
func TestSSHKeygenRejects(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	ca, user := filepath.Join(dir, "ca"), filepath.Join(dir, "user")
	sshKeygen(t, "-q", "-t", "ed25519", "-N", "", "-f", ca)
	sshKeygen(t, "-q", "-t", "ed25519", "-N", "", "-f", user)
	sshKeygen(t, "-q", "-s", ca, "-I", "someone", "-n", "root", user+".pub")

	rsaPEM, ecPKCS8 := filepath.Join(dir, "rsa-pem"), filepath.Join(dir, "ec-pkcs8")
	sshKeygen(t, "-q", "-t", "rsa", "-b", "2048", "-m", "PEM", "-N", "", "-f", rsaPEM)
	sshKeygen(t, "-q", "-t", "ecdsa", "-m", "PKCS8", "-N", "", "-f", ecPKCS8)
	encrypted := filepath.Join(dir, "encrypted")
	sshKeygen(t, "-q", "-t", "ed25519", "-N", "correct horse", "-f", encrypted)

	cases := []struct {
		name, input, code, want string
	}{
		{"certificate", readFile(t, user+"-cert.pub"), "validation_failed", "certificate"},
		{"PEM RSA private key", readFile(t, rsaPEM), sshkeys.CodePrivateKeyRejected, "private key"},
		{"PKCS#8 private key", readFile(t, ecPKCS8), sshkeys.CodePrivateKeyRejected, "private key"},
		{"passphrase-protected private key", readFile(t, encrypted), sshkeys.CodePrivateKeyRejected, "private key"},
	}
	// OpenSSH 10 builds drop DSA; the fixed dsaLine covers it there.
	dsa := filepath.Join(dir, "dsa")
	if out, err := exec.Command("ssh-keygen", "-q", "-t", "dsa", "-N", "", "-f", dsa).CombinedOutput(); err == nil {
		cases = append(cases, struct{ name, input, code, want string }{"DSA", readFile(t, dsa+".pub"), "validation_failed", "DSA"})
	} else {
		t.Logf("no DSA from this ssh-keygen: %s", out)
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			_, err := sshkeys.Parse(c.input)
			checkRejected(t, err, c.input, c.code, c.want)
		})
	}
}
