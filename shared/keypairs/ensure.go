package keypairs

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/dflow-sh/cloud-accounts/shared/awserr"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"

	"github.com/dflow-sh/cloud-accounts/shared/awsperms"
	"github.com/dflow-sh/cloud-accounts/shared/fault"
	"github.com/dflow-sh/cloud-accounts/shared/ids"
	"github.com/dflow-sh/cloud-accounts/shared/links"
	"github.com/dflow-sh/cloud-accounts/shared/partition"
	"github.com/dflow-sh/cloud-accounts/shared/sshkeys"
)

// KeyTagKey tags the key pairs dFlow imports with the key's id.
const KeyTagKey = "dflow:key"

// maxNameSuffix bounds the names tried when dflow-<keyId> is taken by a key
// pair holding another key.
const maxNameSuffix = 9

// importRounds bounds describe-then-import rounds lost to concurrent imports.
const importRounds = 3

// PairName is the name of the EC2 key pair dFlow imports a key as; when a
// key pair holding another key already has it, -2, -3… are appended.
func PairName(keyID string) string { return "dflow-" + keyID }

// EnsureImported returns the name of an EC2 key pair holding the key in the
// link's account and region, importing it when there is none. A key pair
// already holding the same public key is reused, whatever its name: one dFlow
// imported (tagged dflow:key=<keyId>) is recorded under the key if it is not
// yet (a crash may have lost the record); one the customer made is used as
// it is and never recorded, so deleting the key never deletes it.
//
// Concurrent calls for the same key, account and region end with one key
// pair: both may try to import dflow-<keyId>, EC2 refuses the second name
// (InvalidKeyPair.Duplicate), and the loser finds the winner's pair by its
// public key. The import is recorded by a conditional write that fails once
// the key is deleted or being deleted; the pair just imported is then
// removed again.
func (s *Service) EnsureImported(ctx context.Context, orgID, keyID string, link links.Link, region string) (string, error) {
	if !ids.Valid(ids.SSHKey, keyID) {
		return "", ErrNotFound
	}
	if link.OrgID != "" && link.OrgID != orgID {
		return "", fmt.Errorf("ensure key pair: link %s is not of organisation %s", link.ID, orgID)
	}
	if err := checkRegion(link, region); err != nil {
		return "", err
	}
	k, err := s.store.GetSSHKey(ctx, orgID, keyID)
	if err != nil {
		return "", err
	}
	if k.DeletePending {
		return "", ErrNotFound.With("reason", "the key is being deleted")
	}
	api, err := s.accounts.EC2(ctx, link, region)
	if err != nil {
		return "", clientError(err, region)
	}
	for round := 0; round < importRounds; round++ {
		pairs, err := describePairs(ctx, api, region)
		if err != nil {
			return "", err
		}
		if p, ok := match(pairs, k); ok {
			if owned(p, k) {
				if err := s.record(ctx, k, link, region, p); err != nil {
					if fault.KindOf(err) == fault.NotFound {
						// The key is being deleted and will not see this pair.
						s.rollback(ctx, api, region, k, p)
					}
					return "", err
				}
			}
			return aws.ToString(p.KeyName), nil
		}
		name, ok := freeName(pairs, k.ID)
		if !ok {
			return "", fault.Conflictf("key_pair_name_taken", "key pairs named %s to %s-%d already exist in region %s with other keys", PairName(k.ID), PairName(k.ID), maxNameSuffix, region)
		}
		out, err := api.ImportKeyPair(ctx, &ec2.ImportKeyPairInput{
			KeyName:           aws.String(name),
			PublicKeyMaterial: []byte(k.PublicKey),
			TagSpecifications: []types.TagSpecification{{
				ResourceType: types.ResourceTypeKeyPair,
				Tags: []types.Tag{
					{Key: aws.String(awsperms.ManagedTagKey), Value: aws.String(awsperms.ManagedTagValue)},
					{Key: aws.String(awsperms.OrgTagKey), Value: aws.String(orgID)},
					{Key: aws.String(KeyTagKey), Value: aws.String(k.ID)},
					{Key: aws.String("Name"), Value: aws.String(k.Name)},
				},
			}},
		})
		if awserr.Code(err) == "InvalidKeyPair.Duplicate" {
			// Someone took the name since we looked: perhaps a concurrent
			// import of this very key. Look again.
			continue
		}
		if err != nil {
			return "", classify(err, "ec2:ImportKeyPair", region)
		}
		p := types.KeyPairInfo{KeyName: aws.String(name), KeyPairId: out.KeyPairId}
		if err := s.record(ctx, k, link, region, p); err != nil {
			s.rollback(ctx, api, region, k, p)
			return "", err
		}
		return name, nil
	}
	return "", fault.Unavailablef(1, "key_pair_import_contended", "key pair names for this key kept being taken in region %s; try again", region)
}

func checkRegion(link links.Link, region string) error {
	if !partition.ValidRegion(region) {
		return fault.Field("region", "must be an AWS region code such as eu-west-1")
	}
	if p, ok := partition.ForRegion(region); ok && link.Partition != "" && p.ID != link.Partition {
		return fault.Field("region", "must be a region of the account's partition %s", link.Partition)
	}
	return nil
}

func describePairs(ctx context.Context, api EC2API, region string) ([]types.KeyPairInfo, error) {
	// Every pair of the region, with its public key: EC2's fingerprint
	// filter cannot be trusted for ed25519 (moto computes another value).
	out, err := api.DescribeKeyPairs(ctx, &ec2.DescribeKeyPairsInput{IncludePublicKey: aws.Bool(true)})
	if err != nil {
		return nil, classify(err, "ec2:DescribeKeyPairs", region)
	}
	return out.KeyPairs, nil
}

// match finds a key pair holding k's public key, preferring one dFlow
// imported from k.
func match(pairs []types.KeyPairInfo, k Key) (types.KeyPairInfo, bool) {
	var found []types.KeyPairInfo
	for _, p := range pairs {
		pk, err := sshkeys.Parse(aws.ToString(p.PublicKey))
		if err == nil && pk.SHA256 == k.Fingerprint {
			found = append(found, p)
		}
	}
	if len(found) == 0 {
		return types.KeyPairInfo{}, false
	}
	if i := slices.IndexFunc(found, func(p types.KeyPairInfo) bool { return owned(p, k) }); i >= 0 {
		return found[i], true
	}
	return found[0], true
}

// owned reports whether dFlow imported p from k.
func owned(p types.KeyPairInfo, k Key) bool {
	return tag(p.Tags, KeyTagKey) == k.ID && tag(p.Tags, awsperms.OrgTagKey) == k.OrgID &&
		tag(p.Tags, awsperms.ManagedTagKey) == awsperms.ManagedTagValue
}

func tag(tags []types.Tag, key string) string {
	for _, t := range tags {
		if aws.ToString(t.Key) == key {
			return aws.ToString(t.Value)
		}
	}
	return ""
}

func freeName(pairs []types.KeyPairInfo, keyID string) (string, bool) {
	taken := make(map[string]bool, len(pairs))
	for _, p := range pairs {
		taken[aws.ToString(p.KeyName)] = true
	}
	for i := 1; i <= maxNameSuffix; i++ {
		name := PairName(keyID)
		if i > 1 {
			name = fmt.Sprintf("%s-%d", name, i)
		}
		if !taken[name] {
			return name, true
		}
	}
	return "", false
}

// record writes the import under the key unless it is there already.
func (s *Service) record(ctx context.Context, k Key, link links.Link, region string, p types.KeyPairInfo) error {
	have, err := s.store.ListSSHKeyImports(ctx, k.OrgID, k.ID)
	if err != nil {
		return err
	}
	for _, im := range have {
		if im.AccountID == link.ID && im.Region == region && im.KeyPairID == aws.ToString(p.KeyPairId) {
			return nil
		}
	}
	im := Import{
		AccountID: link.ID, AWSAccountID: link.AWSAccountID, Region: region,
		KeyPairID: aws.ToString(p.KeyPairId), KeyPairName: aws.ToString(p.KeyName), ImportedAt: s.now(),
	}
	return s.store.PutSSHKeyImport(ctx, k.OrgID, k.ID, im)
}

// rollback deletes a key pair just imported whose import could not be
// recorded, so no pair dFlow made is left that a delete would not find. If
// that fails too the pair stays tagged dflow:key=<keyId>, and the next
// EnsureImported for the key records it.
func (s *Service) rollback(ctx context.Context, api EC2API, region string, k Key, p types.KeyPairInfo) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	im := Import{Region: region, KeyPairID: aws.ToString(p.KeyPairId), KeyPairName: aws.ToString(p.KeyName)}
	if err := deletePair(ctx, api, im); err != nil {
		s.log.ErrorContext(ctx, "key pair left unrecorded: rollback failed", "sshKeyId", k.ID,
			"region", region, "keyPairId", im.KeyPairID, "error", err.Error())
	}
}

func filter(name string, values ...string) []types.Filter {
	return []types.Filter{{Name: aws.String(name), Values: values}}
}

func derefEq(p *string, v string) bool { return p != nil && *p == v }
