// Package vault is the Secrets Manager adapter: every linked account's
// credentials live in one secret of their own, and nowhere else. Values are
// JSON documents kept as SecretString. SDK errors become domain errors here,
// and no error, log line or test output carries a secret value.
package vault

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sort"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager/types"

	"github.com/dflow-sh/cloud-accounts/shared/fault"
	"github.com/dflow-sh/cloud-accounts/shared/ids"
)

// Staging labels Secrets Manager gives versions.
const (
	StageCurrent  = "AWSCURRENT"
	StagePrevious = "AWSPREVIOUS"
	StagePending  = "AWSPENDING"
)

// Recovery window bounds of DeleteSecret, in days.
const (
	MinRecoveryDays = 7
	MaxRecoveryDays = 30
)

// API is the part of the Secrets Manager client the vault uses; tests
// replace it to inject faults.
type API interface {
	CreateSecret(ctx context.Context, in *secretsmanager.CreateSecretInput, optFns ...func(*secretsmanager.Options)) (*secretsmanager.CreateSecretOutput, error)
	PutSecretValue(ctx context.Context, in *secretsmanager.PutSecretValueInput, optFns ...func(*secretsmanager.Options)) (*secretsmanager.PutSecretValueOutput, error)
	GetSecretValue(ctx context.Context, in *secretsmanager.GetSecretValueInput, optFns ...func(*secretsmanager.Options)) (*secretsmanager.GetSecretValueOutput, error)
	DescribeSecret(ctx context.Context, in *secretsmanager.DescribeSecretInput, optFns ...func(*secretsmanager.Options)) (*secretsmanager.DescribeSecretOutput, error)
	UpdateSecretVersionStage(ctx context.Context, in *secretsmanager.UpdateSecretVersionStageInput, optFns ...func(*secretsmanager.Options)) (*secretsmanager.UpdateSecretVersionStageOutput, error)
	DeleteSecret(ctx context.Context, in *secretsmanager.DeleteSecretInput, optFns ...func(*secretsmanager.Options)) (*secretsmanager.DeleteSecretOutput, error)
	RestoreSecret(ctx context.Context, in *secretsmanager.RestoreSecretInput, optFns ...func(*secretsmanager.Options)) (*secretsmanager.RestoreSecretOutput, error)
}

var _ API = (*secretsmanager.Client)(nil)

// Vault keeps secrets in Secrets Manager.
type Vault struct {
	sm       API
	kmsKeyID string
}

type options struct {
	api         API
	maxAttempts int
	kmsKeyID    string
}

// Option tunes New.
type Option func(*options)

// WithAPI makes the vault use api instead of a client built from the
// config (tests inject faults with it).
func WithAPI(api API) Option { return func(o *options) { o.api = api } }

// WithMaxAttempts sets how many times the SDK's standard retryer tries a
// call (throttling, 5xx, network errors) before the vault gives up.
func WithMaxAttempts(n int) Option { return func(o *options) { o.maxAttempts = n } }

// WithKMSKeyID encrypts new secrets with a customer managed key instead of
// the account's aws/secretsmanager key.
func WithKMSKeyID(id string) Option { return func(o *options) { o.kmsKeyID = id } }

// New builds the vault and its one Secrets Manager client from cfg.
func New(cfg aws.Config, opts ...Option) (*Vault, error) {
	var o options
	for _, fn := range opts {
		fn(&o)
	}
	if o.maxAttempts < 0 {
		return nil, fmt.Errorf("vault: max attempts %d is negative", o.maxAttempts)
	}
	api := o.api
	if api == nil {
		if cfg.Region == "" {
			return nil, errors.New("vault: the AWS config has no region")
		}
		api = secretsmanager.NewFromConfig(cfg, func(so *secretsmanager.Options) {
			if o.maxAttempts > 0 {
				so.RetryMaxAttempts = o.maxAttempts
			}
		})
	}
	return &Vault{sm: api, kmsKeyID: o.kmsKeyID}, nil
}

// Create stores value (a JSON document) as a new secret and returns its
// ARN. Its ClientRequestToken is derived from the name, so a retried Create
// of the same value succeeds once more instead of failing: Secrets Manager
// ignores a request whose token and value match an existing version. A
// name that holds something else is fault Conflict "secret_exists".
func (v *Vault) Create(ctx context.Context, name string, value []byte, tags map[string]string) (string, error) {
	return v.CreateWithToken(ctx, name, value, tags, RequestToken("create", name))
}

// CreateWithToken is Create with the caller's own idempotency token (from
// RequestToken, or any 32–64 character string), for callers that retry
// with a token of their own.
func (v *Vault) CreateWithToken(ctx context.Context, name string, value []byte, tags map[string]string, token string) (string, error) {
	if err := checkValue(value); err != nil {
		return "", fmt.Errorf("create secret %s: %w", name, err)
	}
	if err := checkToken(token); err != nil {
		return "", fmt.Errorf("create secret %s: %w", name, err)
	}
	in := &secretsmanager.CreateSecretInput{
		Name:               aws.String(name),
		SecretString:       aws.String(string(value)),
		ClientRequestToken: aws.String(token),
		Tags:               awsTags(tags),
	}
	if v.kmsKeyID != "" {
		in.KmsKeyId = aws.String(v.kmsKeyID)
	}
	out, err := v.sm.CreateSecret(ctx, in)
	if err != nil {
		return "", fmt.Errorf("create secret %s: %w", name, translate(err, opCreate))
	}
	return aws.ToString(out.ARN), nil
}

// Put stores value as a new version of the secret. The new version becomes
// AWSCURRENT and the one it replaces AWSPREVIOUS, so Promote can roll back.
//
// It is staged as AWSPENDING first and then promoted, the way Secrets
// Manager's own rotation moves labels. On AWS a plain PutSecretValue would do
// the same in one call, but moto then leaves two AWSCURRENT versions after a
// Promote; two steps are right on both. A failed promotion leaves AWSCURRENT
// where it was.
func (v *Vault) Put(ctx context.Context, name string, value []byte) (string, error) {
	if err := checkValue(value); err != nil {
		return "", fmt.Errorf("put secret %s: %w", name, err)
	}
	id, err := v.PutPending(ctx, name, value, RequestToken(name, ids.Secret(16)))
	if err != nil {
		return "", err
	}
	if err := v.Promote(ctx, name, id); err != nil {
		return "", err
	}
	return id, nil
}

// PutPending stores value as a version labelled AWSPENDING only (AWSCURRENT
// does not move): the first step of a rotation. The token becomes the
// version id, so repeating the call with the same token and value returns
// the same version; the same token with another value is fault Conflict
// "secret_version_exists".
func (v *Vault) PutPending(ctx context.Context, name string, value []byte, token string) (string, error) {
	if err := checkValue(value); err != nil {
		return "", fmt.Errorf("put pending secret %s: %w", name, err)
	}
	if err := checkToken(token); err != nil {
		return "", fmt.Errorf("put pending secret %s: %w", name, err)
	}
	out, err := v.sm.PutSecretValue(ctx, &secretsmanager.PutSecretValueInput{
		SecretId:           aws.String(name),
		SecretString:       aws.String(string(value)),
		ClientRequestToken: aws.String(token),
		VersionStages:      []string{StagePending},
	})
	if err != nil {
		return "", fmt.Errorf("put pending secret %s: %w", name, translate(err, opPut))
	}
	return aws.ToString(out.VersionId), nil
}

// Current returns the AWSCURRENT value and its version id. Not found is
// fault NotFound "secret_not_found".
func (v *Vault) Current(ctx context.Context, name string) ([]byte, string, error) {
	value, version, err := v.get(ctx, name, "", StageCurrent)
	if err != nil {
		return nil, "", fmt.Errorf("read secret %s: %w", name, err)
	}
	return value, version, nil
}

// GetVersion returns one version's value and id. ref is a staging label
// (StageCurrent, StagePrevious, StagePending) or else a version id.
func (v *Vault) GetVersion(ctx context.Context, name, ref string) ([]byte, string, error) {
	var value []byte
	var version string
	var err error
	switch ref {
	case StageCurrent, StagePrevious, StagePending:
		value, version, err = v.get(ctx, name, "", ref)
	default:
		value, version, err = v.get(ctx, name, ref, "")
	}
	if err != nil {
		return nil, "", fmt.Errorf("read secret %s version %s: %w", name, ref, err)
	}
	return value, version, nil
}

func (v *Vault) get(ctx context.Context, name, versionID, stage string) ([]byte, string, error) {
	in := &secretsmanager.GetSecretValueInput{SecretId: aws.String(name)}
	// The stage is always explicit: GetSecretValue without one means
	// AWSCURRENT on AWS, but moto then answers with a stale version after a
	// stage move.
	if versionID != "" {
		in.VersionId = aws.String(versionID)
	} else {
		in.VersionStage = aws.String(stage)
	}
	out, err := v.sm.GetSecretValue(ctx, in)
	if err != nil {
		return nil, "", translate(err, opRead)
	}
	if out.SecretString != nil {
		return []byte(*out.SecretString), aws.ToString(out.VersionId), nil
	}
	return out.SecretBinary, aws.ToString(out.VersionId), nil
}

// Stages maps each version id of the secret to its staging labels.
func (v *Vault) Stages(ctx context.Context, name string) (map[string][]string, error) {
	out, err := v.describe(ctx, name)
	if err != nil {
		return nil, fmt.Errorf("describe secret %s: %w", name, err)
	}
	return out.VersionIdsToStages, nil
}

func (v *Vault) describe(ctx context.Context, name string) (*secretsmanager.DescribeSecretOutput, error) {
	out, err := v.sm.DescribeSecret(ctx, &secretsmanager.DescribeSecretInput{SecretId: aws.String(name)})
	if err != nil {
		return nil, translate(err, opRead)
	}
	return out, nil
}

// Promote makes versionID the AWSCURRENT version, taking the label from
// whichever version holds it now (that one becomes AWSPREVIOUS). It rolls
// back a Put and finishes a rotation; promoting the current version is a
// no-op. A promoted pending version loses its AWSPENDING label.
func (v *Vault) Promote(ctx context.Context, name, versionID string) error {
	d, err := v.describe(ctx, name)
	if err != nil {
		return fmt.Errorf("promote secret %s: %w", name, err)
	}
	stages, ok := d.VersionIdsToStages[versionID]
	if !ok {
		return fmt.Errorf("promote secret %s: %w", name,
			fault.NotFoundf("secret_version_not_found", "the secret has no version %s", versionID))
	}
	if !slices.Contains(stages, StageCurrent) {
		in := &secretsmanager.UpdateSecretVersionStageInput{
			SecretId:        aws.String(name),
			VersionStage:    aws.String(StageCurrent),
			MoveToVersionId: aws.String(versionID),
		}
		// The label's present holder must be named, or the call fails.
		for id, labels := range d.VersionIdsToStages {
			if slices.Contains(labels, StageCurrent) {
				in.RemoveFromVersionId = aws.String(id)
			}
		}
		if _, err := v.sm.UpdateSecretVersionStage(ctx, in); err != nil {
			return fmt.Errorf("promote secret %s version %s: %w", name, versionID, translate(err, opWrite))
		}
	}
	if slices.Contains(stages, StagePending) {
		// Best effort: the promotion has happened, and a stale AWSPENDING
		// label is harmless (the next pending version takes the label over).
		_, _ = v.sm.UpdateSecretVersionStage(ctx, &secretsmanager.UpdateSecretVersionStageInput{
			SecretId:            aws.String(name),
			VersionStage:        aws.String(StagePending),
			RemoveFromVersionId: aws.String(versionID),
		})
	}
	return nil
}

// ScheduleDeletion deletes the secret after recoveryDays (7–30); Restore
// undoes it until then. Scheduling a secret already scheduled succeeds.
func (v *Vault) ScheduleDeletion(ctx context.Context, name string, recoveryDays int) error {
	if recoveryDays < MinRecoveryDays || recoveryDays > MaxRecoveryDays {
		return fmt.Errorf("schedule deletion of secret %s: %w", name,
			fault.Invalidf("recovery_window_invalid", "the recovery window must be %d to %d days, not %d", MinRecoveryDays, MaxRecoveryDays, recoveryDays))
	}
	_, err := v.sm.DeleteSecret(ctx, &secretsmanager.DeleteSecretInput{
		SecretId:             aws.String(name),
		RecoveryWindowInDays: aws.Int64(int64(recoveryDays)),
	})
	if err == nil {
		return nil
	}
	var invalid *types.InvalidRequestException
	if errors.As(err, &invalid) {
		// Already scheduled (a retried delete): the secret says so.
		if d, derr := v.describe(ctx, name); derr == nil && d.DeletedDate != nil {
			return nil
		}
	}
	return fmt.Errorf("schedule deletion of secret %s: %w", name, translate(err, opWrite))
}

// Restore cancels a scheduled deletion.
func (v *Vault) Restore(ctx context.Context, name string) error {
	if _, err := v.sm.RestoreSecret(ctx, &secretsmanager.RestoreSecretInput{SecretId: aws.String(name)}); err != nil {
		return fmt.Errorf("restore secret %s: %w", name, translate(err, opWrite))
	}
	return nil
}

// Purge deletes the secret at once, with no recovery window. It is only for
// rolling back a Create whose metadata could not be written, so it refuses
// (fault PreconditionFailed "secret_in_use") a secret that has had a second
// version put. A secret that does not exist is fault NotFound
// "secret_not_found", which a rollback can take as done.
func (v *Vault) Purge(ctx context.Context, name string) error {
	d, err := v.describe(ctx, name)
	if err != nil {
		return fmt.Errorf("purge secret %s: %w", name, err)
	}
	if len(d.VersionIdsToStages) > 1 {
		return fmt.Errorf("purge secret %s: %w", name,
			fault.PreconditionFailedf("secret_in_use", "the secret has %d versions; only a secret that was never updated can be purged", len(d.VersionIdsToStages)))
	}
	if _, err := v.sm.DeleteSecret(ctx, &secretsmanager.DeleteSecretInput{
		SecretId:                   aws.String(name),
		ForceDeleteWithoutRecovery: aws.Bool(true),
	}); err != nil {
		return fmt.Errorf("purge secret %s: %w", name, translate(err, opWrite))
	}
	return nil
}

// RequestToken derives a valid ClientRequestToken (a UUID-shaped 36
// characters) from any caller values, e.g. a request id or rotation id.
// Equal inputs give equal tokens; the parts are hashed, never shown.
func RequestToken(parts ...string) string {
	h := sha256.New()
	for _, p := range parts {
		h.Write([]byte(p))
		h.Write([]byte{0})
	}
	s := hex.EncodeToString(h.Sum(nil))
	return s[0:8] + "-" + s[8:12] + "-" + s[12:16] + "-" + s[16:20] + "-" + s[20:32]
}

func checkToken(token string) error {
	if n := len(token); n < 32 || n > 64 {
		return fmt.Errorf("client request token has %d characters, Secrets Manager wants 32 to 64", n)
	}
	return nil
}

// checkValue reports a value that is not JSON; the error never quotes it.
func checkValue(value []byte) error {
	if !json.Valid(value) {
		return errors.New("the secret value is not a JSON document")
	}
	return nil
}

func awsTags(tags map[string]string) []types.Tag {
	if len(tags) == 0 {
		return nil
	}
	keys := make([]string, 0, len(tags))
	for k := range tags {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	out := make([]types.Tag, 0, len(keys))
	for _, k := range keys {
		out = append(out, types.Tag{Key: aws.String(k), Value: aws.String(tags[k])})
	}
	return out
}
