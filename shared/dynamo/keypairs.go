package dynamo

import (
	"context"
	"fmt"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/dflow-sh/cloud-accounts/shared/keypairs"
	"github.com/dflow-sh/cloud-accounts/shared/tenancy"
)

var _ keypairs.Store = (*Store)(nil)

// SSH keys live in their organisation's partition:
//
//	SSHKEY#<id>                          the key
//	SSHKEYNAME#<lower name>              name claim (unique ignoring case)
//	SSHKEYFP#<SHA256:…>                  public key claim (once per organisation)
//	SSHKEYPAIR#<id>#<account>#<region>   an EC2 key pair imported from the key
//
// The import items do not start with "SSHKEY#", so listing keys by that
// prefix reads keys only.
func sshKeySK(id string) string            { return "SSHKEY#" + id }
func sshKeyNameSK(name string) string      { return "SSHKEYNAME#" + strings.ToLower(name) }
func sshKeyFingerprintSK(fp string) string { return "SSHKEYFP#" + fp }
func sshKeyPairPrefix(id string) string    { return "SSHKEYPAIR#" + id + "#" }
func sshKeyPairSK(id, accountID, region string) string {
	return sshKeyPairPrefix(id) + accountID + "#" + region
}

// sshKeyItem is a key as stored. The item's "type" names the entity, as on
// every item of the table, so the key's own type is kept as keyType.
type sshKeyItem struct {
	Type string `json:"type"`
	keypairs.Key
	KeyType string `json:"keyType"`
	OrgID   string `json:"orgId"`
}

func (it sshKeyItem) key() keypairs.Key {
	k := it.Key
	k.OrgID, k.Type = it.OrgID, it.KeyType
	return k
}

type sshKeyClaim struct {
	Type     string `json:"type"`
	SSHKeyID string `json:"sshKeyId"`
}

type sshKeyImportItem struct {
	Type string `json:"type"`
	keypairs.Import
}

func sshKeyClaimItem(orgID, sk, typ, keyID string) (map[string]types.AttributeValue, error) {
	return marshal(sshKeyClaim{Type: typ, SSHKeyID: keyID}, map[string]string{attrPK: orgPK(orgID), attrSK: sk})
}

// CreateSSHKey writes a key with its name and public key claims at once.
func (s *Store) CreateSSHKey(ctx context.Context, k keypairs.Key) error {
	ki, err := marshal(sshKeyItem{Type: "sshKey", Key: k, KeyType: k.Type, OrgID: k.OrgID}, map[string]string{attrPK: orgPK(k.OrgID), attrSK: sshKeySK(k.ID)})
	if err != nil {
		return fmt.Errorf("encode ssh key %s: %w", k.ID, err)
	}
	ni, err := sshKeyClaimItem(k.OrgID, sshKeyNameSK(k.Name), "sshKeyName", k.ID)
	if err != nil {
		return err
	}
	fi, err := sshKeyClaimItem(k.OrgID, sshKeyFingerprintSK(k.Fingerprint), "sshKeyFingerprint", k.ID)
	if err != nil {
		return err
	}
	err = s.transact(ctx, "create ssh key "+k.ID, []types.TransactWriteItem{putNew(ki), putNew(ni), putNew(fi)},
		map[int]error{1: keypairs.ErrNameTaken, 2: keypairs.ErrExists})
	if err == keypairs.ErrExists {
		// Name the key already holding it, so the client can point to it.
		var c sshKeyClaim
		if s.get(ctx, orgPK(k.OrgID), sshKeyFingerprintSK(k.Fingerprint), &c, keypairs.ErrNotFound) == nil {
			return keypairs.ErrExists.With("sshKeyId", c.SSHKeyID)
		}
	}
	return err
}

// GetSSHKey reads a key.
func (s *Store) GetSSHKey(ctx context.Context, orgID, id string) (keypairs.Key, error) {
	var it sshKeyItem
	if err := s.get(ctx, orgPK(orgID), sshKeySK(id), &it, keypairs.ErrNotFound); err != nil {
		return keypairs.Key{}, err
	}
	return it.key(), nil
}

// ListSSHKeys pages through an organisation's keys, in id order.
func (s *Store) ListSSHKeys(ctx context.Context, orgID string, p tenancy.Page) ([]keypairs.Key, string, error) {
	items, next, err := s.query(ctx, queryPrefix(orgPK(orgID), "SSHKEY#"), attrPK, orgPK(orgID), page{p.Limit, p.After})
	if err != nil {
		return nil, "", err
	}
	out := make([]keypairs.Key, 0, len(items))
	for _, it := range items {
		var ki sshKeyItem
		if err := unmarshal(it, &ki); err != nil {
			return nil, "", fmt.Errorf("decode ssh key: %w", err)
		}
		out = append(out, ki.key())
	}
	return out, next, nil
}

// MarkSSHKeyDeleting flags a key whose delete has started; the version stays.
func (s *Store) MarkSSHKeyDeleting(ctx context.Context, k keypairs.Key) error {
	_, err := s.db.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName:                 &s.table,
		Key:                       key(orgPK(k.OrgID), sshKeySK(k.ID)),
		UpdateExpression:          aws.String("SET #del = :true"),
		ConditionExpression:       aws.String("attribute_exists(PK) AND #ver = :v"),
		ExpressionAttributeNames:  map[string]string{"#del": "deletePending", "#ver": "version"},
		ExpressionAttributeValues: map[string]types.AttributeValue{":true": &types.AttributeValueMemberBOOL{Value: true}, ":v": num(k.Version)},
	})
	if isConditionFailed(err) {
		return errConcurrent
	}
	if err != nil {
		return fmt.Errorf("mark ssh key %s deleting: %w", k.ID, err)
	}
	return nil
}

// DeleteSSHKey removes a key and its claims.
func (s *Store) DeleteSSHKey(ctx context.Context, k keypairs.Key) error {
	items := []types.TransactWriteItem{
		{Delete: &types.Delete{
			Key:                       key(orgPK(k.OrgID), sshKeySK(k.ID)),
			ConditionExpression:       aws.String("#ver = :v"),
			ExpressionAttributeNames:  map[string]string{"#ver": "version"},
			ExpressionAttributeValues: map[string]types.AttributeValue{":v": num(k.Version)},
		}},
		{Delete: &types.Delete{Key: key(orgPK(k.OrgID), sshKeyNameSK(k.Name))}},
		{Delete: &types.Delete{Key: key(orgPK(k.OrgID), sshKeyFingerprintSK(k.Fingerprint))}},
	}
	return s.transact(ctx, "delete ssh key "+k.ID, items, map[int]error{0: errConcurrent})
}

// ListSSHKeyImports reads every import of a key.
func (s *Store) ListSSHKeyImports(ctx context.Context, orgID, keyID string) ([]keypairs.Import, error) {
	var out []keypairs.Import
	after := ""
	for {
		items, next, err := s.query(ctx, queryPrefix(orgPK(orgID), sshKeyPairPrefix(keyID)), attrPK, orgPK(orgID), page{limit: 100, after: after})
		if err != nil {
			return nil, err
		}
		for _, it := range items {
			var ii sshKeyImportItem
			if err := unmarshal(it, &ii); err != nil {
				return nil, fmt.Errorf("decode ssh key import: %w", err)
			}
			out = append(out, ii.Import)
		}
		if next == "" {
			return out, nil
		}
		after = next
	}
}

// PutSSHKeyImport records an import (replacing the one of the same account
// and region) while the key exists and is not being deleted.
func (s *Store) PutSSHKeyImport(ctx context.Context, orgID, keyID string, im keypairs.Import) error {
	item, err := marshal(sshKeyImportItem{Type: "sshKeyImport", Import: im},
		map[string]string{attrPK: orgPK(orgID), attrSK: sshKeyPairSK(keyID, im.AccountID, im.Region)})
	if err != nil {
		return fmt.Errorf("encode ssh key import: %w", err)
	}
	items := []types.TransactWriteItem{
		{ConditionCheck: &types.ConditionCheck{
			Key:                      key(orgPK(orgID), sshKeySK(keyID)),
			ConditionExpression:      aws.String("attribute_exists(PK) AND attribute_not_exists(#del)"),
			ExpressionAttributeNames: map[string]string{"#del": "deletePending"},
		}},
		{Put: &types.Put{Item: item}},
	}
	return s.transact(ctx, "record import of ssh key "+keyID, items, map[int]error{0: keypairs.ErrNotFound})
}

// DeleteSSHKeyImport forgets an import.
func (s *Store) DeleteSSHKeyImport(ctx context.Context, orgID, keyID string, im keypairs.Import) error {
	_, err := s.db.DeleteItem(ctx, &dynamodb.DeleteItemInput{
		TableName: &s.table, Key: key(orgPK(orgID), sshKeyPairSK(keyID, im.AccountID, im.Region)),
	})
	if err != nil {
		return fmt.Errorf("forget import of ssh key %s in %s %s: %w", keyID, im.AccountID, im.Region, err)
	}
	return nil
}
