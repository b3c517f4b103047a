package keypairs_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/binary"
	"encoding/pem"
	"fmt"
	"math/big"
	mrand "math/rand/v2"
	"strings"
	"sync"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/ec2"

	"github.com/dflow-sh/cloud-accounts/shared/dynamo"
	"github.com/dflow-sh/cloud-accounts/shared/fault"
	"github.com/dflow-sh/cloud-accounts/shared/ids"
	"github.com/dflow-sh/cloud-accounts/shared/keypairs"
	"github.com/dflow-sh/cloud-accounts/shared/links"
	"github.com/dflow-sh/cloud-accounts/shared/motoserver"
	"github.com/dflow-sh/cloud-accounts/shared/sdkfault"
	"github.com/dflow-sh/cloud-accounts/shared/tenancy"
)

func TestMain(m *testing.M) { motoserver.Main(m) }

// env is a key service over a fresh table, acting in a moto account of the
// test's own through a link of a fresh organisation. Every AWS call (EC2 and
// DynamoDB) passes through faults.
type env struct {
	t      *testing.T
	org    string
	link   links.Link
	store  *dynamo.Store
	svc    *keypairs.Service
	faults *sdkfault.Faults
	accts  *accounts
	caller tenancy.Caller
}

type accounts struct {
	t      *testing.T
	faults *sdkfault.Faults
	// moto is the moto account behind each link id.
	links map[string]links.Link
	moto  map[string]string

	mu      sync.Mutex
	clients map[string]*ec2.Client
}

func (a *accounts) Link(_ context.Context, orgID, id string) (links.Link, error) {
	l, ok := a.links[id]
	if !ok || l.OrgID != orgID {
		return links.Link{}, fault.NotFoundf("account_not_found", "no such linked account")
	}
	return l, nil
}

func (a *accounts) EC2(_ context.Context, l links.Link, region string) (keypairs.EC2API, error) {
	return a.client(l.ID, region), nil
}

// client is an EC2 client acting as the link's moto account, with faults.
func (a *accounts) client(linkID, region string) *ec2.Client {
	a.mu.Lock()
	defer a.mu.Unlock()
	k := linkID + "/" + region
	if c, ok := a.clients[k]; ok {
		return c
	}
	cfg, err := motoserver.Shared(a.t).Config(context.Background(), region)
	if err != nil {
		a.t.Fatal(err)
	}
	cfg.APIOptions = append(cfg.APIOptions, sdkfault.MotoAccount(a.moto[linkID]))
	c := ec2.NewFromConfig(a.faults.Attach(cfg))
	a.clients[k] = c
	return c
}

func motoAccount() string { return fmt.Sprintf("%012d", 100000000000+mrand.Int64N(800000000000)) }

func newEnv(t *testing.T) *env {
	t.Helper()
	faults := &sdkfault.Faults{}
	cfg := motoserver.TestConfig(t)
	table := "test-" + strings.ReplaceAll(ids.New("t"), "_", "-")
	if err := dynamo.EnsureTable(context.Background(), dynamodb.NewFromConfig(cfg), table); err != nil {
		t.Fatal(err)
	}
	store := dynamo.New(dynamodb.NewFromConfig(faults.Attach(cfg)), table)
	org := ids.New(ids.Org)
	link := links.Link{OrgID: org, ID: ids.New(ids.Account), Name: "prod", Partition: "aws", AWSAccountID: motoAccount()}
	accts := &accounts{t: t, faults: faults, links: map[string]links.Link{link.ID: link},
		moto: map[string]string{link.ID: link.AWSAccountID}, clients: map[string]*ec2.Client{}}
	return &env{
		t: t, org: org, link: link, store: store, faults: faults, accts: accts,
		svc:    keypairs.NewService(store, accts, nil, nil),
		caller: tenancy.Caller{UserID: "user-1"},
	}
}

func (e *env) ec2(region string) *ec2.Client { return e.accts.client(e.link.ID, region) }

func (e *env) register(name, publicKey string) keypairs.Key {
	e.t.Helper()
	k, err := e.svc.Register(context.Background(), e.caller, e.org, keypairs.Input{Name: &name, PublicKey: &publicKey})
	if err != nil {
		e.t.Fatalf("register %s: %v", name, err)
	}
	return k
}

// count is how many times call was made since the faults were last reset.
func (e *env) count(call string) int {
	n := 0
	for _, c := range e.faults.Calls() {
		if c == call {
			n++
		}
	}
	return n
}

// pairs returns the key pairs of a region by name.
func (e *env) pairs(region string) map[string]string {
	e.t.Helper()
	out, err := e.ec2(region).DescribeKeyPairs(context.Background(), &ec2.DescribeKeyPairsInput{IncludePublicKey: aws.Bool(true)})
	if err != nil {
		e.t.Fatal(err)
	}
	m := map[string]string{}
	for _, p := range out.KeyPairs {
		m[aws.ToString(p.KeyName)] = aws.ToString(p.KeyPairId)
	}
	return m
}

// ---- keys ----

func sshString(b []byte) []byte {
	return append(binary.BigEndian.AppendUint32(nil, uint32(len(b))), b...)
}

func mpint(n *big.Int) []byte {
	b := n.Bytes()
	if len(b) > 0 && b[0]&0x80 != 0 {
		b = append([]byte{0}, b...)
	}
	return sshString(b)
}

func authorized(algo string, blob []byte, comment string) string {
	l := algo + " " + base64.StdEncoding.EncodeToString(blob)
	if comment != "" {
		l += " " + comment
	}
	return l
}

func ed25519Line(t testing.TB, comment string) string {
	t.Helper()
	pub, _, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return authorized("ssh-ed25519", append(sshString([]byte("ssh-ed25519")), sshString(pub)...), comment)
}

var rsaKeys = sync.OnceValues(func() ([]*rsa.PrivateKey, error) {
	var ks []*rsa.PrivateKey
	for range 2 {
		k, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			return nil, err
		}
		ks = append(ks, k)
	}
	return ks, nil
})

// rsaLine is the n-th (0 or 1) RSA test key: generated once, RSA is slow
// under -race.
func rsaLine(t testing.TB, n int, comment string) string {
	t.Helper()
	ks, err := rsaKeys()
	if err != nil {
		t.Fatal(err)
	}
	pub := ks[n].PublicKey
	blob := append(sshString([]byte("ssh-rsa")), mpint(big.NewInt(int64(pub.E)))...)
	return authorized("ssh-rsa", append(blob, mpint(pub.N)...), comment)
}

func ecdsaLine(t testing.TB) string {
	t.Helper()
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	pub, err := priv.PublicKey.ECDH()
	if err != nil {
		t.Fatal(err)
	}
	blob := append(sshString([]byte("ecdsa-sha2-nistp256")), sshString([]byte("nistp256"))...)
	return authorized("ecdsa-sha2-nistp256", append(blob, sshString(pub.Bytes())...), "ec")
}

func privatePEM(t testing.TB) string {
	t.Helper()
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}))
}

// openSSHPrivate is the shape of an OpenSSH private key file: armour and
// the base64 of "openssh-key-v1" followed by random bytes.
func openSSHPrivate(t testing.TB) string {
	t.Helper()
	body := make([]byte, 200)
	if _, err := rand.Read(body); err != nil {
		t.Fatal(err)
	}
	b64 := base64.StdEncoding.EncodeToString(append([]byte("openssh-key-v1\x00"), body...))
	return "-----BEGIN OPENSSH PRIVATE KEY-----\n" + b64 + "\n-----END OPENSSH PRIVATE KEY-----\n"
}

// assertNoEcho fails if any 10-byte run of the input (other than armour
// and algorithm names, which messages may name on their own) appears in
// what the error shows.
func assertNoEcho(t *testing.T, err error, input string) {
	t.Helper()
	fe, ok := fault.As(err)
	if !ok {
		t.Fatalf("not a fault: %v", err)
	}
	shown := fe.Error() + "\n" + fe.Detail + fmt.Sprint(fe.Extra)
	for _, f := range fe.Fields {
		shown += "\n" + f.Field + ": " + f.Message
	}
	const window = 10
	for i := 0; i+window <= len(input); i++ {
		w := input[i : i+window]
		if strings.ContainsAny(w, " -\n") {
			continue
		}
		if strings.Contains(shown, w) {
			t.Fatalf("error echoes input %q: %s", w, shown)
		}
	}
}
