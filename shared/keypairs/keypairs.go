// Package keypairs is an organisation's SSH public keys
// (/v1/orgs/{orgId}/ssh-keys) and their import into linked AWS accounts as
// EC2 key pairs, which is how worker nodes get them.
//
// A key is registered once per organisation and imported lazily: the first
// node launched with it in an account and region calls EnsureImported, which
// reuses a key pair holding the same public key (matched by parsing the
// public key EC2 returns, not by EC2's fingerprint, which moto computes
// differently for ed25519) or imports one named dflow-<keyId>, tagged as
// dFlow's. Each import dFlow makes is recorded under the key, so deleting
// the key deletes exactly those key pairs, region by region, and a delete
// that fails half-way is finished by a retry.
//
// Only public material is ever held. A pasted private key is refused by
// sshkeys.Parse with code private_key_rejected, and no error quotes the
// input.
package keypairs

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/dflow-sh/cloud-accounts/shared/awserr"

	"github.com/aws/aws-sdk-go-v2/service/ec2"

	"github.com/dflow-sh/cloud-accounts/shared/fault"
	"github.com/dflow-sh/cloud-accounts/shared/ids"
	"github.com/dflow-sh/cloud-accounts/shared/links"
	"github.com/dflow-sh/cloud-accounts/shared/sshkeys"
	"github.com/dflow-sh/cloud-accounts/shared/tenancy"
)

// Machine codes of the faults this package returns.
const (
	CodeNotFound  = "ssh_key_not_found"
	CodeNameTaken = "ssh_key_name_taken"
	CodeExists    = "ssh_key_exists"
)

// Errors the store and the service return.
var (
	ErrNotFound  = fault.NotFoundf(CodeNotFound, "no such SSH key")
	ErrNameTaken = fault.Conflictf(CodeNameTaken, "an SSH key with this name already exists in the organisation")
	// ErrExists is returned (with the existing key's id as sshKeyId) when
	// the same public key is registered twice in an organisation.
	ErrExists = fault.Conflictf(CodeExists, "this public key is already registered in the organisation")
)

// MaxNameLen bounds key names, in characters.
const MaxNameLen = 64

// Key is a registered SSH public key. It holds public material only.
type Key struct {
	OrgID string `json:"-"`
	ID    string `json:"id"`
	Name  string `json:"name"`
	// Type is sshkeys.TypeED25519 or sshkeys.TypeRSA (ECDSA is refused:
	// EC2 cannot import it).
	Type string `json:"type"`
	Bits int    `json:"bits"`
	// Fingerprint is OpenSSH's: "SHA256:" and unpadded base64, as
	// `ssh-keygen -l` prints it.
	Fingerprint string `json:"fingerprint"`
	// PublicKey is the canonical "<algorithm> <base64>" line, without the
	// comment.
	PublicKey string `json:"publicKey"`
	Comment   string `json:"comment"`
	// DeletePending is set once a delete has started removing the key's EC2
	// key pairs; a failed delete leaves it set, and DELETE again finishes.
	// No new import is recorded for such a key.
	DeletePending bool      `json:"deletePending,omitempty"`
	Version       int64     `json:"version"`
	CreatedAt     time.Time `json:"createdAt"`
	CreatedBy     string    `json:"createdBy"`
}

// Import is one EC2 key pair dFlow imported from a key: at most one per
// linked account and region.
type Import struct {
	// AccountID is the dFlow linked account (acc_…).
	AccountID    string    `json:"accountId"`
	AWSAccountID string    `json:"awsAccountId,omitempty"`
	Region       string    `json:"region"`
	KeyPairID    string    `json:"keyPairId"`
	KeyPairName  string    `json:"keyPairName"`
	ImportedAt   time.Time `json:"importedAt"`
}

// Input is the body of POST /ssh-keys. It never prints the public key
// field, which may hold a private key pasted by mistake.
type Input struct {
	Name      *string `json:"name"`
	PublicKey *string `json:"publicKey"`
}

func (in Input) String() string {
	name := "<nil>"
	if in.Name != nil {
		name = *in.Name
	}
	return fmt.Sprintf("keypairs.Input{Name: %q, PublicKey: [redacted]}", name)
}

// GoString keeps %#v from printing the public key field.
func (in Input) GoString() string { return in.String() }

// LogValue keeps the public key field out of structured logs.
func (in Input) LogValue() slog.Value {
	name := ""
	if in.Name != nil {
		name = *in.Name
	}
	return slog.GroupValue(slog.String("name", name), slog.String("publicKey", "[redacted]"))
}

// Store keeps keys and their imports. CreateSSHKey claims the name (case
// ignored) and the fingerprint in the same transaction as the key
// (ErrNameTaken, ErrExists). PutSSHKeyImport records an import only while
// the key exists and no delete has started (ErrNotFound otherwise).
type Store interface {
	CreateSSHKey(ctx context.Context, k Key) error
	GetSSHKey(ctx context.Context, orgID, id string) (Key, error)
	ListSSHKeys(ctx context.Context, orgID string, p tenancy.Page) ([]Key, string, error)
	// MarkSSHKeyDeleting sets DeletePending if the key is still at k.Version.
	MarkSSHKeyDeleting(ctx context.Context, k Key) error
	// DeleteSSHKey removes the key and its claims if it is still at k.Version.
	DeleteSSHKey(ctx context.Context, k Key) error
	ListSSHKeyImports(ctx context.Context, orgID, keyID string) ([]Import, error)
	PutSSHKeyImport(ctx context.Context, orgID, keyID string, im Import) error
	DeleteSSHKeyImport(ctx context.Context, orgID, keyID string, im Import) error
}

// EC2API is the part of the EC2 API key pairs need.
type EC2API interface {
	DescribeKeyPairs(ctx context.Context, in *ec2.DescribeKeyPairsInput, optFns ...func(*ec2.Options)) (*ec2.DescribeKeyPairsOutput, error)
	ImportKeyPair(ctx context.Context, in *ec2.ImportKeyPairInput, optFns ...func(*ec2.Options)) (*ec2.ImportKeyPairOutput, error)
	DeleteKeyPair(ctx context.Context, in *ec2.DeleteKeyPairInput, optFns ...func(*ec2.Options)) (*ec2.DeleteKeyPairOutput, error)
}

var _ EC2API = (*ec2.Client)(nil)

// Accounts resolves a link of the organisation and gives an EC2 client
// acting as it in a region.
type Accounts interface {
	// Link fails with fault NotFound account_not_found for an unknown link.
	Link(ctx context.Context, orgID, accountID string) (links.Link, error)
	// EC2 may return a *fault.Error (e.g. credentials AWS refuses), which
	// passes through.
	EC2(ctx context.Context, link links.Link, region string) (EC2API, error)
}

// Service holds the SSH key use-cases.
type Service struct {
	store    Store
	accounts Accounts
	log      *slog.Logger
	now      func() time.Time
}

// NewService returns the use-cases. log and now may be nil.
func NewService(store Store, accounts Accounts, log *slog.Logger, now func() time.Time) *Service {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if now == nil {
		now = time.Now
	}
	return &Service{store: store, accounts: accounts, log: log, now: func() time.Time { return now().UTC() }}
}

const msgECDSA = "is an ECDSA key, which EC2 cannot import (it takes ed25519 and RSA keys only); use an ed25519 key or an RSA key of at least 2048 bits"

// Register validates and stores a public key.
func (s *Service) Register(ctx context.Context, caller tenancy.Caller, orgID string, in Input) (Key, error) {
	var fields []fault.FieldError
	var parsed sshkeys.Key
	if in.PublicKey == nil {
		fields = append(fields, fault.FieldError{Field: sshkeys.FieldName, Message: "is required"})
	} else {
		k, err := sshkeys.Parse(*in.PublicKey)
		if fe, ok := fault.As(err); ok && fe.Code == sshkeys.CodePrivateKeyRejected {
			// Its own code, alone: the client must tell the user the key is exposed.
			return Key{}, err
		}
		switch fe, ok := fault.As(err); {
		case err == nil && !k.EC2Importable():
			fields = append(fields, fault.FieldError{Field: sshkeys.FieldName, Message: msgECDSA})
		case err == nil:
			parsed = k
		case ok:
			fields = append(fields, fe.Fields...)
		default:
			return Key{}, fmt.Errorf("parse public key: %w", err)
		}
	}
	name := ""
	if in.Name == nil {
		fields = append(fields, fault.FieldError{Field: "name", Message: "is required"})
	} else if msg := checkName(*in.Name); msg != "" {
		fields = append(fields, fault.FieldError{Field: "name", Message: msg})
	} else {
		name = *in.Name
	}
	if len(fields) > 0 {
		return Key{}, fault.Validation(fields...)
	}
	k := Key{
		OrgID: orgID, ID: ids.New(ids.SSHKey), Name: name,
		Type: parsed.Type, Bits: parsed.Bits, Fingerprint: parsed.SHA256,
		PublicKey: parsed.Authorized, Comment: parsed.Comment,
		Version: 1, CreatedAt: s.now(), CreatedBy: caller.UserID,
	}
	if err := s.store.CreateSSHKey(ctx, k); err != nil {
		return Key{}, err
	}
	return k, nil
}

func checkName(name string) string {
	n := utf8.RuneCountInString(name)
	switch {
	case n < 1 || n > MaxNameLen:
		return fmt.Sprintf("must be 1 to %d characters", MaxNameLen)
	case strings.TrimSpace(name) != name:
		return "must not start or end with spaces"
	case strings.ContainsFunc(name, func(r rune) bool { return r < 0x20 || r == 0x7f }):
		return "must not contain control characters"
	}
	return ""
}

// Get returns one key.
func (s *Service) Get(ctx context.Context, orgID, id string) (Key, error) {
	if !ids.Valid(ids.SSHKey, id) {
		return Key{}, ErrNotFound
	}
	return s.store.GetSSHKey(ctx, orgID, id)
}

// List pages through an organisation's keys.
func (s *Service) List(ctx context.Context, orgID string, p tenancy.Page) ([]Key, string, error) {
	return s.store.ListSSHKeys(ctx, orgID, p)
}

// Imports lists where a key has been imported as an EC2 key pair.
func (s *Service) Imports(ctx context.Context, orgID, id string) ([]Import, error) {
	if _, err := s.Get(ctx, orgID, id); err != nil {
		return nil, err
	}
	return s.store.ListSSHKeyImports(ctx, orgID, id)
}

func checkVersion(ifMatch *int64, current int64) error {
	if ifMatch != nil && *ifMatch != current {
		return fault.PreconditionFailedf("version_mismatch", "the SSH key is at version %d, not %d", current, *ifMatch).With("currentVersion", current)
	}
	return nil
}

// Delete removes the EC2 key pairs dFlow imported from the key, in every
// account and region recorded, then the key. Each pair's record goes as soon
// as the pair is gone, so after a failure half-way the key keeps exactly the
// imports left to remove and DELETE again finishes (a pair already gone
// counts as removed). Imports into accounts no longer linked are dropped:
// dFlow has no way into them any more.
func (s *Service) Delete(ctx context.Context, orgID, id string, ifMatch *int64) error {
	k, err := s.Get(ctx, orgID, id)
	if err != nil {
		return err
	}
	if err := checkVersion(ifMatch, k.Version); err != nil {
		return err
	}
	if !k.DeletePending {
		// From here EnsureImported records nothing new for the key, so the
		// list read below is complete.
		if err := s.store.MarkSSHKeyDeleting(ctx, k); err != nil {
			return err
		}
		k.DeletePending = true
	}
	imports, err := s.store.ListSSHKeyImports(ctx, orgID, id)
	if err != nil {
		return err
	}
	for _, im := range imports {
		if err := s.removeImport(ctx, k, im); err != nil {
			return err
		}
	}
	return s.store.DeleteSSHKey(ctx, k)
}

func (s *Service) removeImport(ctx context.Context, k Key, im Import) error {
	link, err := s.accounts.Link(ctx, k.OrgID, im.AccountID)
	if fault.KindOf(err) == fault.NotFound {
		s.log.WarnContext(ctx, "ssh key import left in an unlinked account", "sshKeyId", k.ID,
			"accountId", im.AccountID, "region", im.Region, "keyPairId", im.KeyPairID)
		return s.store.DeleteSSHKeyImport(ctx, k.OrgID, k.ID, im)
	}
	if err != nil {
		return err
	}
	api, err := s.accounts.EC2(ctx, link, im.Region)
	if err != nil {
		return clientError(err, im.Region)
	}
	if err := deletePair(ctx, api, im); err != nil {
		return err
	}
	return s.store.DeleteSSHKeyImport(ctx, k.OrgID, k.ID, im)
}

// deletePair deletes a key pair by id, and is done when it is gone. It looks
// the id up and deletes by name: EC2 takes either, moto only the name.
func deletePair(ctx context.Context, api EC2API, im Import) error {
	out, err := api.DescribeKeyPairs(ctx, &ec2.DescribeKeyPairsInput{Filters: filter("key-pair-id", im.KeyPairID)})
	if err != nil {
		return classify(err, "ec2:DescribeKeyPairs", im.Region)
	}
	for _, p := range out.KeyPairs {
		if derefEq(p.KeyPairId, im.KeyPairID) {
			_, err := api.DeleteKeyPair(ctx, &ec2.DeleteKeyPairInput{KeyName: p.KeyName})
			if err != nil && awserr.Code(err) != "InvalidKeyPair.NotFound" {
				return classify(err, "ec2:DeleteKeyPair", im.Region)
			}
		}
	}
	return nil
}

func clientError(err error, region string) error {
	if _, ok := fault.As(err); ok || errors.Is(err, context.Canceled) {
		return err
	}
	return fmt.Errorf("ec2 client for %s: %w", region, err)
}
