package keypairs_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/smithy-go"

	"github.com/dflow-sh/cloud-accounts/shared/awsperms"
	"github.com/dflow-sh/cloud-accounts/shared/fault"
	"github.com/dflow-sh/cloud-accounts/shared/ids"
	"github.com/dflow-sh/cloud-accounts/shared/keypairs"
	"github.com/dflow-sh/cloud-accounts/shared/sshkeys"
	"github.com/dflow-sh/cloud-accounts/shared/tenancy"
)

func ptr[T any](v T) *T { return &v }

func TestRegisterValidation(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	long := strings.Repeat("n", keypairs.MaxNameLen+1)
	cases := []struct {
		name      string
		in        keypairs.Input
		code      string
		field     string
		msg       string
		sensitive bool
	}{
		{"no key", keypairs.Input{Name: ptr("a")}, "validation_failed", "publicKey", "is required", false},
		{"no name", keypairs.Input{PublicKey: ptr(ed25519Line(t, ""))}, "validation_failed", "name", "is required", false},
		{"long name", keypairs.Input{Name: &long, PublicKey: ptr(ed25519Line(t, ""))}, "validation_failed", "name", "1 to 64", false},
		{"name with spaces around", keypairs.Input{Name: ptr(" a "), PublicKey: ptr(ed25519Line(t, ""))}, "validation_failed", "name", "spaces", false},
		{"name with control", keypairs.Input{Name: ptr("a\tb"), PublicKey: ptr(ed25519Line(t, ""))}, "validation_failed", "name", "control", false},
		{"pkcs8 private key", keypairs.Input{Name: ptr("a"), PublicKey: ptr(privatePEM(t))}, sshkeys.CodePrivateKeyRejected, "publicKey", "private key", true},
		{"openssh private key, no name", keypairs.Input{PublicKey: ptr(openSSHPrivate(t))}, sshkeys.CodePrivateKeyRejected, "publicKey", "private key", true},
		{"openssh private key body only", keypairs.Input{Name: ptr("a"), PublicKey: ptr(strings.Split(openSSHPrivate(t), "\n")[1])}, sshkeys.CodePrivateKeyRejected, "publicKey", "private key", true},
		{"ecdsa", keypairs.Input{Name: ptr("a"), PublicKey: ptr(ecdsaLine(t))}, "validation_failed", "publicKey", "ECDSA", false},
		{"garbage", keypairs.Input{Name: ptr("a"), PublicKey: ptr("hello world this is no key")}, "validation_failed", "publicKey", "not an OpenSSH public key", true},
		{"dsa", keypairs.Input{Name: ptr("a"), PublicKey: ptr("ssh-dss AAAAB3NzaC1kc3MAAACBAP1sECRETbody")}, "validation_failed", "publicKey", "DSA", true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := e.svc.Register(context.Background(), e.caller, e.org, c.in)
			fe, ok := fault.As(err)
			if !ok || fe.Kind != fault.Invalid || fe.Code != c.code {
				t.Fatalf("error %v; want Invalid %s", err, c.code)
			}
			var hit bool
			for _, f := range fe.Fields {
				hit = hit || (f.Field == c.field && strings.Contains(f.Message, c.msg))
			}
			if !hit {
				t.Errorf("fields %+v; want %s: …%s…", fe.Fields, c.field, c.msg)
			}
			if c.sensitive {
				assertNoEcho(t, err, *c.in.PublicKey)
			}
			if s := fmt.Sprint(c.in) + fmt.Sprintf("%#v", c.in); c.in.PublicKey != nil && len(*c.in.PublicKey) > 20 && strings.Contains(s, (*c.in.PublicKey)[10:20]) {
				t.Errorf("Input prints its public key: %s", s)
			}
		})
	}
	keys, _, err := e.svc.List(context.Background(), e.org, tenancy.Page{Limit: 10})
	if err != nil || len(keys) != 0 {
		t.Errorf("stored after refusals: %+v %v", keys, err)
	}
}

func TestRegisterConflictsAndReads(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := newEnv(t)
	line := ed25519Line(t, "me@laptop")
	k := e.register("Laptop", line)
	if k.Type != sshkeys.TypeED25519 || k.Bits != 256 || !strings.HasPrefix(k.Fingerprint, "SHA256:") ||
		k.Comment != "me@laptop" || strings.Contains(k.PublicKey, "laptop") || k.Version != 1 || k.CreatedBy != "user-1" {
		t.Errorf("key %+v", k)
	}

	_, err := e.svc.Register(ctx, e.caller, e.org, keypairs.Input{Name: ptr("LAPTOP"), PublicKey: ptr(rsaLine(t, 0, ""))})
	if !fault.Is(err, keypairs.CodeNameTaken) {
		t.Errorf("same name in other case: %v", err)
	}
	// The same key with another comment is the same key.
	again := strings.Replace(line, "me@laptop", "other", 1)
	_, err = e.svc.Register(ctx, e.caller, e.org, keypairs.Input{Name: ptr("Desk"), PublicKey: &again})
	if fe, ok := fault.As(err); !ok || fe.Code != keypairs.CodeExists || fe.Extra["sshKeyId"] != k.ID {
		t.Errorf("same key twice: %v", err)
	}
	// Another organisation may register it.
	if _, err := e.svc.Register(ctx, e.caller, ids.New(ids.Org), keypairs.Input{Name: ptr("Laptop"), PublicKey: &line}); err != nil {
		t.Errorf("same key in another org: %v", err)
	}
	rsaKey := e.register("Build", rsaLine(t, 0, ""))
	if rsaKey.Type != sshkeys.TypeRSA || rsaKey.Bits != 2048 {
		t.Errorf("rsa key %+v", rsaKey)
	}

	got, err := e.svc.Get(ctx, e.org, k.ID)
	if err != nil || got != k {
		t.Errorf("get: %+v %v", got, err)
	}
	if _, err := e.svc.Get(ctx, ids.New(ids.Org), k.ID); !fault.Is(err, keypairs.CodeNotFound) {
		t.Errorf("get from another org: %v", err)
	}
	if _, err := e.svc.Get(ctx, e.org, "nonsense"); !fault.Is(err, keypairs.CodeNotFound) {
		t.Errorf("get malformed id: %v", err)
	}
	first, next, err := e.svc.List(ctx, e.org, tenancy.Page{Limit: 1})
	if err != nil || len(first) != 1 || next == "" {
		t.Fatalf("list page 1: %+v %q %v", first, next, err)
	}
	second, _, err := e.svc.List(ctx, e.org, tenancy.Page{Limit: 5, After: next})
	if err != nil || len(second) != 1 || second[0].ID == first[0].ID {
		t.Errorf("list page 2: %+v %v", second, err)
	}
	for _, x := range append(first, second...) {
		if want := map[string]keypairs.Key{k.ID: k, rsaKey.ID: rsaKey}[x.ID]; x != want {
			t.Errorf("listed %+v\nwant %+v", x, want)
		}
	}
	if err := e.svc.Delete(ctx, e.org, k.ID, ptr(int64(7))); !fault.Is(err, "version_mismatch") {
		t.Errorf("delete with a stale If-Match: %v", err)
	}
	if err := e.svc.Delete(ctx, e.org, k.ID, ptr(int64(1))); err != nil {
		t.Fatal(err)
	}
	// Name and key are free again.
	e.register("laptop", line)
}

// TestEnsureImported imports each key type into two regions, with a key
// pair of another key already holding the name dFlow would use in one of
// them; asks again (found, not imported twice); then deletes the key.
func TestEnsureImported(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		name string
		line func(t *testing.T) string
	}{
		{"ed25519", func(t *testing.T) string { return ed25519Line(t, "c") }},
		{"rsa", func(t *testing.T) string { return rsaLine(t, 0, "c") }},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			e := newEnv(t)
			k := e.register("key", c.line(t))
			const r1, r2 = "us-east-1", "eu-west-1"

			// A customer's key pair of another key with dFlow's name for this one.
			foreign, err := e.ec2(r1).ImportKeyPair(ctx, &ec2.ImportKeyPairInput{
				KeyName: aws.String(keypairs.PairName(k.ID)), PublicKeyMaterial: []byte(rsaLine(t, 1, "")),
			})
			if err != nil {
				t.Fatal(err)
			}
			e.faults.Reset()

			n1, err := e.svc.EnsureImported(ctx, e.org, k.ID, e.link, r1)
			if err != nil {
				t.Fatal(err)
			}
			n2, err := e.svc.EnsureImported(ctx, e.org, k.ID, e.link, r2)
			if err != nil {
				t.Fatal(err)
			}
			if n1 != keypairs.PairName(k.ID)+"-2" || n2 != keypairs.PairName(k.ID) {
				t.Errorf("names %q %q", n1, n2)
			}
			for _, r := range []string{r1, r2} {
				again, err := e.svc.EnsureImported(ctx, e.org, k.ID, e.link, r)
				if err != nil || again != map[string]string{r1: n1, r2: n2}[r] {
					t.Errorf("again in %s: %q %v", r, again, err)
				}
			}
			if n := e.count("EC2.ImportKeyPair"); n != 2 {
				t.Errorf("%d imports; want 2", n)
			}
			checkPair(t, e, r1, n1, k)
			checkPair(t, e, r2, n2, k)

			imports, err := e.svc.Imports(ctx, e.org, k.ID)
			if err != nil || len(imports) != 2 {
				t.Fatalf("imports %+v %v", imports, err)
			}
			for _, im := range imports {
				if im.AccountID != e.link.ID || im.AWSAccountID != e.link.AWSAccountID || !strings.HasPrefix(im.KeyPairID, "key-") {
					t.Errorf("import %+v", im)
				}
			}

			if err := e.svc.Delete(ctx, e.org, k.ID, nil); err != nil {
				t.Fatal(err)
			}
			if p := e.pairs(r1); p[n1] != "" || p[keypairs.PairName(k.ID)] != aws.ToString(foreign.KeyPairId) {
				t.Errorf("after delete, %s holds %v; want only the foreign pair", r1, p)
			}
			if p := e.pairs(r2); p[n2] != "" {
				t.Errorf("after delete, %s holds %v", r2, p)
			}
			if _, err := e.svc.Get(ctx, e.org, k.ID); !fault.Is(err, keypairs.CodeNotFound) {
				t.Errorf("get after delete: %v", err)
			}
			if _, err := e.svc.EnsureImported(ctx, e.org, k.ID, e.link, r1); !fault.Is(err, keypairs.CodeNotFound) {
				t.Errorf("ensure after delete: %v", err)
			}
		})
	}
}

// checkPair asserts the named pair holds k's public key and dFlow's tags.
func checkPair(t *testing.T, e *env, region, name string, k keypairs.Key) {
	t.Helper()
	out, err := e.ec2(region).DescribeKeyPairs(context.Background(), &ec2.DescribeKeyPairsInput{KeyNames: []string{name}, IncludePublicKey: aws.Bool(true)})
	if err != nil || len(out.KeyPairs) != 1 {
		t.Fatalf("describe %s in %s: %v", name, region, err)
	}
	p := out.KeyPairs[0]
	pk, err := sshkeys.Parse(aws.ToString(p.PublicKey))
	if err != nil || pk.SHA256 != k.Fingerprint {
		t.Errorf("%s in %s holds %v (%v); want %s", name, region, pk, err, k.Fingerprint)
	}
	tags := map[string]string{}
	for _, tg := range p.Tags {
		tags[aws.ToString(tg.Key)] = aws.ToString(tg.Value)
	}
	want := map[string]string{awsperms.ManagedTagKey: "true", awsperms.OrgTagKey: e.org, keypairs.KeyTagKey: k.ID, "Name": k.Name}
	for key, v := range want {
		if tags[key] != v {
			t.Errorf("%s in %s: tag %s=%q; want %q (tags %v)", name, region, key, tags[key], v, tags)
		}
	}
}

// A key pair the customer imported from the same key is used as it is: not
// imported again, not recorded, and not deleted with the key.
func TestEnsureImportedReusesCustomerPair(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := newEnv(t)
	line := ed25519Line(t, "")
	k := e.register("key", line)
	if _, err := e.ec2("us-east-1").ImportKeyPair(ctx, &ec2.ImportKeyPairInput{KeyName: aws.String("my-laptop"), PublicKeyMaterial: []byte(line + " mine")}); err != nil {
		t.Fatal(err)
	}
	e.faults.Reset()
	name, err := e.svc.EnsureImported(ctx, e.org, k.ID, e.link, "us-east-1")
	if err != nil || name != "my-laptop" {
		t.Fatalf("ensure: %q %v", name, err)
	}
	if n := e.count("EC2.ImportKeyPair"); n != 0 {
		t.Errorf("%d imports", n)
	}
	if ims, _ := e.svc.Imports(ctx, e.org, k.ID); len(ims) != 0 {
		t.Errorf("recorded %+v", ims)
	}
	if err := e.svc.Delete(ctx, e.org, k.ID, nil); err != nil {
		t.Fatal(err)
	}
	if p := e.pairs("us-east-1"); p["my-laptop"] == "" {
		t.Error("deleting the key deleted the customer's key pair")
	}
}

func TestEnsureImportedChecks(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := newEnv(t)
	k := e.register("key", ed25519Line(t, ""))
	cases := []struct {
		name   string
		org    string
		key    string
		region string
		code   string
	}{
		{"other partition", e.org, k.ID, "cn-north-1", "validation_failed"},
		{"not a region", e.org, k.ID, "mars-1", "validation_failed"},
		{"other org", ids.New(ids.Org), k.ID, "us-east-1", keypairs.CodeNotFound},
		{"unknown key", e.org, ids.New(ids.SSHKey), "us-east-1", keypairs.CodeNotFound},
	}
	for _, c := range cases {
		link := e.link
		link.OrgID = c.org
		_, err := e.svc.EnsureImported(ctx, c.org, c.key, link, c.region)
		if !fault.Is(err, c.code) {
			t.Errorf("%s: %v; want %s", c.name, err, c.code)
		}
	}
}

// Concurrent first uses of a key in one region end with one key pair and one
// record.
func TestEnsureImportedConcurrently(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := newEnv(t)
	k := e.register("key", ed25519Line(t, ""))
	const n = 5
	names := make([]string, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { names[i], errs[i] = e.svc.EnsureImported(ctx, e.org, k.ID, e.link, "us-west-2") })
	}
	wg.Wait()
	for i := range n {
		if errs[i] != nil || names[i] != keypairs.PairName(k.ID) {
			t.Errorf("call %d: %q %v", i, names[i], errs[i])
		}
	}
	if p := e.pairs("us-west-2"); len(p) != 1 {
		t.Errorf("key pairs %v", p)
	}
	if ims, err := e.svc.Imports(ctx, e.org, k.ID); err != nil || len(ims) != 1 {
		t.Errorf("imports %+v %v", ims, err)
	}
}

// When the import cannot be recorded, the key pair just imported is deleted
// again: dFlow leaves no key pair a delete of the key would miss.
func TestEnsureImportedUnrecordedRollsBack(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := newEnv(t)
	k := e.register("key", ed25519Line(t, ""))
	e.faults.FailNth("DynamoDB.TransactWriteItems", 1, nil)
	if _, err := e.svc.EnsureImported(ctx, e.org, k.ID, e.link, "us-east-1"); err == nil {
		t.Fatal("succeeded although the record failed")
	}
	if e.count("EC2.ImportKeyPair") != 1 {
		t.Fatalf("calls %v", e.faults.Calls())
	}
	if p := e.pairs("us-east-1"); len(p) != 0 {
		t.Errorf("unrecorded key pair left: %v", p)
	}
	// And the next use imports it properly.
	if name, err := e.svc.EnsureImported(ctx, e.org, k.ID, e.link, "us-east-1"); err != nil || name != keypairs.PairName(k.ID) {
		t.Errorf("retry: %q %v", name, err)
	}
}

// A delete failing half-way keeps the key with the imports left to remove;
// nothing new is imported meanwhile, and DELETE again finishes.
func TestDeleteHalfWay(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := newEnv(t)
	k := e.register("key", rsaLine(t, 0, ""))
	regions := []string{"us-east-1", "eu-west-1", "ap-southeast-2"}
	for _, r := range regions {
		if _, err := e.svc.EnsureImported(ctx, e.org, k.ID, e.link, r); err != nil {
			t.Fatal(err)
		}
	}
	// A pair deleted outside dFlow counts as removed.
	if _, err := e.ec2(regions[0]).DeleteKeyPair(ctx, &ec2.DeleteKeyPairInput{KeyName: aws.String(keypairs.PairName(k.ID))}); err != nil {
		t.Fatal(err)
	}
	e.faults.FailNth("EC2.DeleteKeyPair", 2, &smithy.GenericAPIError{Code: "RequestLimitExceeded", Message: "slow down"})
	err := e.svc.Delete(ctx, e.org, k.ID, nil)
	if fe, ok := fault.As(err); !ok || fe.Kind != fault.Unavailable || fe.Code != keypairs.CodeThrottled {
		t.Fatalf("delete: %v; want 503 %s", err, keypairs.CodeThrottled)
	}
	got, err := e.svc.Get(ctx, e.org, k.ID)
	if err != nil || !got.DeletePending {
		t.Fatalf("after a failed delete: %+v %v", got, err)
	}
	ims, err := e.svc.Imports(ctx, e.org, k.ID)
	if err != nil || len(ims) != 2 {
		t.Errorf("imports left %+v %v; want 2", ims, err)
	}
	if _, err := e.svc.EnsureImported(ctx, e.org, k.ID, e.link, "us-west-1"); !fault.Is(err, keypairs.CodeNotFound) {
		t.Errorf("import during delete: %v", err)
	}
	if err := e.svc.Delete(ctx, e.org, k.ID, ptr(got.Version)); err != nil {
		t.Fatal(err)
	}
	for _, r := range regions {
		if p := e.pairs(r); len(p) != 0 {
			t.Errorf("%s still holds %v", r, p)
		}
	}
}

// Imports into an account no longer linked are dropped: dFlow cannot reach
// them.
func TestDeleteAfterUnlink(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := newEnv(t)
	k := e.register("key", ed25519Line(t, ""))
	if _, err := e.svc.EnsureImported(ctx, e.org, k.ID, e.link, "us-east-1"); err != nil {
		t.Fatal(err)
	}
	delete(e.accts.links, e.link.ID)
	if err := e.svc.Delete(ctx, e.org, k.ID, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := e.svc.Get(ctx, e.org, k.ID); !fault.Is(err, keypairs.CodeNotFound) {
		t.Errorf("get: %v", err)
	}
}

// AWS errors become the faults the API shows.
func TestEnsureImportedAWSFaults(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := newEnv(t)
	k := e.register("key", ed25519Line(t, ""))
	cases := []struct {
		awsCode string
		kind    fault.Kind
		code    string
	}{
		{"AuthFailure", fault.Unprocessable, keypairs.CodeAuthFailed},
		{"UnauthorizedOperation", fault.Unprocessable, keypairs.CodePermissionDenied},
		{"InvalidKeyPair.Format", fault.Unprocessable, keypairs.CodeKeyRejected},
		{"RequestLimitExceeded", fault.Unavailable, keypairs.CodeThrottled},
	}
	for _, c := range cases {
		e.faults.FailNth("EC2.ImportKeyPair", 1, &smithy.GenericAPIError{Code: c.awsCode, Message: "x"})
		_, err := e.svc.EnsureImported(ctx, e.org, k.ID, e.link, "us-east-2")
		fe, ok := fault.As(err)
		if !ok || fe.Kind != c.kind || fe.Code != c.code || fe.Extra["awsErrorCode"] != c.awsCode {
			t.Errorf("%s: %v", c.awsCode, err)
		}
		var ae smithy.APIError
		if !errors.As(err, &ae) {
			t.Errorf("%s: cause not kept", c.awsCode)
		}
	}
	if p := e.pairs("us-east-2"); len(p) != 0 {
		t.Errorf("pairs %v", p)
	}
}
