// Package rotation rotates the access key of an access-key link, the way
// Vault's AWS secrets engine does: create the new key, store it, prove it
// works, promote it, and only then retire the old one. Each rotation is a
// journal of steps kept in the store; every step is idempotent, so a rerun
// (Resume, the hourly sweep, or a repeated Secrets Manager event) continues
// where the last one stopped. A failure at any step leaves a working
// AWSCURRENT secret. Secrets never enter a journal, an error or a log line:
// keys are named by masked ids and by hashes (the links' credKey form).
package rotation

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"log/slog"
	"time"

	"github.com/dflow-sh/cloud-accounts/shared/fault"
	"github.com/dflow-sh/cloud-accounts/shared/ids"
	"github.com/dflow-sh/cloud-accounts/shared/links"
	"github.com/dflow-sh/cloud-accounts/shared/tenancy"
)

// Steps of a rotation: the step named is the next one to run, or a final one.
const (
	StepCreate     = "create"
	StepTest       = "test"
	StepPromote    = "promote"
	StepRetire     = "retire"
	StepDone       = "done"
	StepFailed     = "failed"
	StepRolledBack = "rolled_back"
)

// Outcomes of a finished rotation.
const (
	OutcomeRotated     = "rotated"
	OutcomeFailed      = "failed"
	OutcomeRolledBack  = "rolled_back"
	OutcomeCompromised = "compromised"
)

// Reasons a rotation starts.
const (
	ReasonScheduled      = "scheduled"
	ReasonManual         = "manual"
	ReasonLeak           = "leak"
	ReasonSecretsManager = "secrets_manager"
)

// Codes of the errors and warnings a rotation records.
const (
	CodeKeyLimit          = "key_limit_reached"
	CodeInProgress        = "rotation_in_progress"
	CodeOldKeyUsed        = "old_key_used_after_rotation"
	CodeNotAccessKey      = "not_an_access_key_link"
	CodeNotFound          = "rotation_not_found"
	CodeFinished          = "rotation_finished"
	CodePromoted          = "rotation_already_promoted"
	CodeCredsReplaced     = "credentials_replaced"
	CodeNewKeyFailed      = "new_key_not_working"
	CodeWrongPrincipal    = "new_key_wrong_principal"
	CodeNotIAMUser        = "principal_not_iam_user"
	CodeSecretUnknown     = "secret_not_a_link"
	CodeStepUnknown       = "rotation_step_unknown"
	CodeOldKeyNotRetired  = "old_key_not_deactivated"
	CodeStoreConflict     = "rotation_concurrent_update"
	CodePendingSecretLost = "pending_secret_lost"
)

// Rotation is one rotation's journal.
type Rotation struct {
	ID        string `json:"id"`
	OrgID     string `json:"orgId"`
	LinkID    string `json:"linkId"`
	Reason    string `json:"reason"`
	RequestID string `json:"requestId,omitempty"`
	Step      string `json:"step"`
	// Outcome is empty until the rotation is finished (done, failed or
	// rolled back); a rotation waiting to delete its old key has "rotated".
	Outcome string `json:"outcome,omitempty"`

	NewKeyMasked string `json:"newKeyMasked,omitempty"`
	OldKeyMasked string `json:"oldKeyMasked,omitempty"`
	// NewKeyRef and OldKeyRef are the keys' credKey hashes: they find a key
	// in ListAccessKeys without the journal holding its id.
	NewKeyRef string `json:"newKeyRef,omitempty"`
	OldKeyRef string `json:"oldKeyRef,omitempty"`

	// Token is the ClientRequestToken (and so the version id) of the
	// pending secret version; OldVersionID is the version it replaces.
	Token            string `json:"token"`
	OldVersionID     string `json:"oldVersionId,omitempty"`
	PendingVersionID string `json:"pendingVersionId,omitempty"`

	StartedAt           time.Time  `json:"startedAt"`
	PromotedAt          *time.Time `json:"promotedAt,omitempty"`
	OldKeyDeactivatedAt *time.Time `json:"oldKeyDeactivatedAt,omitempty"`
	RetireAfter         *time.Time `json:"retireAfter,omitempty"`
	OldKeyDeletedAt     *time.Time `json:"oldKeyDeletedAt,omitempty"`
	FinishedAt          *time.Time `json:"finishedAt,omitempty"`
	// NextAttemptAt is when the sweep should look at an unfinished journal.
	NextAttemptAt time.Time `json:"nextAttemptAt"`
	// Attempts counts runs that ended in an error.
	Attempts  int             `json:"attempts"`
	LastError *Error          `json:"lastError,omitempty"`
	Warnings  []links.Warning `json:"warnings"`
	Version   int64           `json:"version"`
	UpdatedAt time.Time       `json:"updatedAt"`
}

// Finished reports a journal nothing will run again.
func (r Rotation) Finished() bool {
	return r.Step == StepDone || r.Step == StepFailed || r.Step == StepRolledBack
}

// Pending reports a rotation before its promotion: one Rollback can undo.
func (r Rotation) Pending() bool {
	return r.Step == StepCreate || r.Step == StepTest || r.Step == StepPromote && r.PromotedAt == nil
}

// Error is a step's failure as the journal keeps it.
type Error struct {
	Code    string    `json:"code"`
	Message string    `json:"message"`
	At      time.Time `json:"at"`
}

// Store keeps journals, the per-link lease and the link metadata a
// rotation changes. dynamo.Store implements it.
type Store interface {
	GetLink(ctx context.Context, orgID, id string) (links.Link, links.Record, error)
	// UpdateRotatedLink writes the key fields of l (credentials, keyCreatedAt,
	// rotation, warnings, updatedAt, version and the credKey claim) if the
	// link is still at prev.Version; otherwise fault Conflict "concurrent_update".
	UpdateRotatedLink(ctx context.Context, l links.Link, prev links.Link, rec, prevRec links.Record) error
	// AcquireRotationLease takes the link's lease for rotationID until
	// expires, if it is free, expired, or already this rotation's; else
	// fault Conflict "rotation_in_progress".
	AcquireRotationLease(ctx context.Context, orgID, linkID, rotationID string, now, expires time.Time) error
	ReleaseRotationLease(ctx context.Context, orgID, linkID, rotationID string) error
	// CreateRotation writes a new journal (version 1).
	CreateRotation(ctx context.Context, r Rotation) error
	// SaveRotation writes r (whose Version is one more than prevVersion)
	// if the stored journal is at prevVersion.
	SaveRotation(ctx context.Context, r Rotation, prevVersion int64) error
	GetRotation(ctx context.Context, orgID, linkID, rotationID string) (Rotation, error)
	// ListRotations pages through a link's journals, newest first.
	ListRotations(ctx context.Context, orgID, linkID string, p tenancy.Page) ([]Rotation, string, error)
	// DueRotations reads unfinished journals due by now from the index.
	DueRotations(ctx context.Context, now time.Time, limit int) ([]Rotation, error)
}

// Vault is the part of the secret store a rotation uses (vault.Vault).
type Vault interface {
	Current(ctx context.Context, name string) ([]byte, string, error)
	PutPending(ctx context.Context, name string, value []byte, token string) (string, error)
	GetVersion(ctx context.Context, name, ref string) ([]byte, string, error)
	Promote(ctx context.Context, name, versionID string) error
}

// PendingLabels removes the AWSPENDING label from a version a rollback
// abandons (pendinglabel.Labels).
type PendingLabels interface {
	RemovePending(ctx context.Context, name, versionID string) error
}

// Verifier asks STS who an access key is (awsauth.LinkVerifier).
type Verifier interface {
	CheckAccessKey(ctx context.Context, region, accessKeyID, secretAccessKey string) (links.Identity, error)
}

// Keys manages a user's access keys with that user's own credentials
// (iamkeys.Client). Errors are domain errors: "iam_key_not_found",
// "key_limit_reached", "credentials_invalid", "provider_unavailable".
type Keys interface {
	List(ctx context.Context, c Credentials, user string) ([]KeyMeta, error)
	Create(ctx context.Context, c Credentials, user string) (NewKey, error)
	Deactivate(ctx context.Context, c Credentials, user, keyID string) error
	Delete(ctx context.Context, c Credentials, user, keyID string) error
	// LastUsed is when the key last signed a request (zero if never).
	LastUsed(ctx context.Context, c Credentials, keyID string) (time.Time, error)
}

// Credentials sign one IAM call. They redact themselves.
type Credentials struct {
	Region          string
	AccessKeyID     string
	SecretAccessKey string
}

// KeyMeta is what ListAccessKeys says of a key.
type KeyMeta struct {
	ID        string
	Active    bool
	CreatedAt time.Time
}

// NewKey is a key CreateAccessKey just made. It redacts itself.
type NewKey struct {
	ID        string
	Secret    string
	CreatedAt time.Time
}

const redacted = "[redacted]"

func (Credentials) String() string             { return redacted }
func (Credentials) GoString() string           { return redacted }
func (Credentials) LogValue() slog.Value       { return slog.StringValue(redacted) }
func (Credentials) Format(f fmt.State, _ rune) { _, _ = f.Write([]byte(redacted)) }
func (NewKey) String() string                  { return redacted }
func (NewKey) GoString() string                { return redacted }
func (NewKey) LogValue() slog.Value            { return slog.StringValue(redacted) }
func (NewKey) Format(f fmt.State, _ rune)      { _, _ = f.Write([]byte(redacted)) }

// KeyRef is the hash a link's credKey claim and a journal use for an access
// key id (links' credentialKey("key", id)).
func KeyRef(accessKeyID string) string {
	h := sha256.Sum256([]byte("key:" + accessKeyID))
	return "key-" + hex.EncodeToString(h[:16])
}

// sortable is base32 in ASCII order, so ids sort by their time prefix.
const sortable = "234567abcdefghijklmnopqrstuvwxyz"

// NewID returns a rotation id ("rot_" and 26 base32 characters, valid for
// ids.Valid) whose first 10 characters encode the time in milliseconds, so
// a link's journals list in the order they started.
func NewID(now time.Time) string {
	var b [26]byte
	ms := uint64(now.UnixMilli())
	for i := 9; i >= 0; i-- {
		b[i] = sortable[ms&31]
		ms >>= 5
	}
	var r [16]byte
	if _, err := rand.Read(r[:]); err != nil {
		panic("rotation: crypto/rand: " + err.Error())
	}
	for i := 0; i < 16; i++ {
		b[10+i] = sortable[r[i]&31]
	}
	return ids.Rotation + "_" + string(b[:])
}

// idForToken is the rotation id of a Secrets Manager rotation: derived
// from its ClientRequestToken, so each event of one rotation finds it.
func idForToken(token string) string {
	h := sha256.Sum256([]byte("secretsmanager:" + token))
	var b [26]byte
	for i := range b {
		b[i] = sortable[h[i]&31]
	}
	return ids.Rotation + "_" + string(b[:])
}

func errorOf(err error, at time.Time) *Error {
	if e, ok := fault.As(err); ok {
		return &Error{Code: e.Code, Message: e.Detail, At: at}
	}
	// An unclassified error's text may carry anything: keep it out.
	return &Error{Code: "internal_error", Message: "the step failed unexpectedly", At: at}
}
