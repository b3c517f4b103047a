package dynamo

import (
	"context"
	"testing"
	"time"

	"github.com/dflow-sh/cloud-accounts/shared/fault"
	"github.com/dflow-sh/cloud-accounts/shared/ids"
	"github.com/dflow-sh/cloud-accounts/shared/keypairs"
	"github.com/dflow-sh/cloud-accounts/shared/tenancy"
)

func testKey(org, name, fp string) keypairs.Key {
	return keypairs.Key{
		OrgID: org, ID: ids.New(ids.SSHKey), Name: name, Type: "ed25519", Bits: 256,
		Fingerprint: fp, PublicKey: "ssh-ed25519 AAAA", Version: 1,
		CreatedAt: time.Now().UTC().Truncate(time.Millisecond), CreatedBy: "u",
	}
}

func TestSSHKeyStore(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s, _ := newStore(t)
	org := ids.New(ids.Org)
	k := testKey(org, "Laptop", "SHA256:abc/+1")
	if err := s.CreateSSHKey(ctx, k); err != nil {
		t.Fatal(err)
	}
	if err := s.CreateSSHKey(ctx, testKey(org, "LAPTOP", "SHA256:other")); !fault.Is(err, keypairs.CodeNameTaken) {
		t.Errorf("name taken: %v", err)
	}
	err := s.CreateSSHKey(ctx, testKey(org, "Desk", k.Fingerprint))
	if fe, ok := fault.As(err); !ok || fe.Code != keypairs.CodeExists || fe.Extra["sshKeyId"] != k.ID {
		t.Errorf("key exists: %v", err)
	}
	// Another organisation has its own names and keys.
	if err := s.CreateSSHKey(ctx, testKey(ids.New(ids.Org), "Laptop", k.Fingerprint)); err != nil {
		t.Errorf("other org: %v", err)
	}

	got, err := s.GetSSHKey(ctx, org, k.ID)
	if err != nil || got != k {
		t.Errorf("get %+v %v\nwant %+v", got, err, k)
	}
	im := keypairs.Import{AccountID: ids.New(ids.Account), Region: "eu-west-1", KeyPairID: "key-1", KeyPairName: "dflow-x", ImportedAt: time.Now().UTC()}
	if err := s.PutSSHKeyImport(ctx, org, k.ID, im); err != nil {
		t.Fatal(err)
	}
	// Replacing the import of the same account and region.
	im.KeyPairID = "key-2"
	if err := s.PutSSHKeyImport(ctx, org, k.ID, im); err != nil {
		t.Fatal(err)
	}
	ims, err := s.ListSSHKeyImports(ctx, org, k.ID)
	if err != nil || len(ims) != 1 || ims[0].KeyPairID != "key-2" {
		t.Errorf("imports %+v %v", ims, err)
	}
	// Imports are not keys.
	keys, _, err := s.ListSSHKeys(ctx, org, tenancy.Page{Limit: 10})
	if err != nil || len(keys) != 1 || keys[0].ID != k.ID {
		t.Errorf("keys %+v %v", keys, err)
	}
	if err := s.PutSSHKeyImport(ctx, org, ids.New(ids.SSHKey), im); !fault.Is(err, keypairs.CodeNotFound) {
		t.Errorf("import of an unknown key: %v", err)
	}

	stale := k
	stale.Version = 5
	if err := s.MarkSSHKeyDeleting(ctx, stale); !fault.Is(err, "concurrent_update") {
		t.Errorf("mark at a stale version: %v", err)
	}
	if err := s.MarkSSHKeyDeleting(ctx, k); err != nil {
		t.Fatal(err)
	}
	if got, _ := s.GetSSHKey(ctx, org, k.ID); !got.DeletePending || got.Version != k.Version {
		t.Errorf("marked key %+v", got)
	}
	im.Region = "us-east-1"
	if err := s.PutSSHKeyImport(ctx, org, k.ID, im); !fault.Is(err, keypairs.CodeNotFound) {
		t.Errorf("import during delete: %v", err)
	}
	for _, im := range ims {
		if err := s.DeleteSSHKeyImport(ctx, org, k.ID, im); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.DeleteSSHKey(ctx, k); err != nil {
		t.Fatal(err)
	}
	if _, err := s.GetSSHKey(ctx, org, k.ID); !fault.Is(err, keypairs.CodeNotFound) {
		t.Errorf("get after delete: %v", err)
	}
	if err := s.CreateSSHKey(ctx, testKey(org, "laptop", k.Fingerprint)); err != nil {
		t.Errorf("claims not released: %v", err)
	}
}
