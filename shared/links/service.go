package links

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/dflow-sh/cloud-accounts/shared/fault"
	"github.com/dflow-sh/cloud-accounts/shared/ids"
	"github.com/dflow-sh/cloud-accounts/shared/partition"
	"github.com/dflow-sh/cloud-accounts/shared/tenancy"
)

// Filter narrows a list of links.
type Filter struct {
	Provider    string
	Environment string
}

// Usage is something that still uses a link.
type Usage struct {
	Kind string `json:"kind"`
	ID   string `json:"id"`
}

// Record is what the store keeps of a link besides what readers see.
type Record struct {
	SecretName string
	// CredKey identifies the credentials (a hash) for the one-link-per-
	// credentials rule.
	CredKey string
}

// Store keeps link metadata. Uniqueness of names and credentials within an
// organisation is enforced by the store's conditional writes.
type Store interface {
	ExternalID(ctx context.Context, orgID string, fresh string) (string, error)
	CreateLink(ctx context.Context, l Link, rec Record) error
	GetLink(ctx context.Context, orgID, id string) (Link, Record, error)
	ListLinks(ctx context.Context, orgID string, f Filter, p tenancy.Page) ([]Link, string, error)
	UpdateLink(ctx context.Context, l Link, prev Link) error
	ReplaceCredentials(ctx context.Context, l Link, prev Link, rec, prevRec Record) error
	SetHealth(ctx context.Context, l Link) error
	DeleteLink(ctx context.Context, l Link, rec Record) error
	LinkUsage(ctx context.Context, orgID, id string) ([]Usage, error)
	Taken(ctx context.Context, orgID, name, credKey string) (nameTaken, credTaken bool, err error)
}

// Vault keeps credentials: Secrets Manager in production.
type Vault interface {
	Create(ctx context.Context, name string, value []byte, tags map[string]string) (string, error)
	Put(ctx context.Context, name string, value []byte) (string, error)
	Current(ctx context.Context, name string) ([]byte, string, error)
	Promote(ctx context.Context, name, versionID string) error
	ScheduleDeletion(ctx context.Context, name string, recoveryDays int) error
	Restore(ctx context.Context, name string) error
	Purge(ctx context.Context, name string) error
}

// Identity is who AWS says the credentials are.
type Identity struct {
	AccountID string
	ARN       string
}

// Verifier asks the provider whether credentials work. Rejections are
// fault "credentials_invalid" (422), trouble reaching it "provider_unavailable" (503).
type Verifier interface {
	CheckAccessKey(ctx context.Context, region, accessKeyID, secretAccessKey string) (Identity, error)
	// CheckRole assumes the role with the external id; externalIDRequired
	// reports whether assuming it without the external id was refused.
	CheckRole(ctx context.Context, region, roleARN, externalID, requestID string) (id Identity, externalIDRequired bool, err error)
}

// Config tunes the service.
type Config struct {
	// SecretPrefix starts every secret name: <prefix>/orgs/<org>/accounts/<id>.
	SecretPrefix string
	// RecoveryDays is how long a deleted link's secret can be restored (7–30).
	RecoveryDays int
	// Partition is the one this deployment runs in: credentials only work
	// inside their own partition, so links elsewhere cannot be checked or used.
	Partition string
}

// Service holds the linking use-cases.
type Service struct {
	store  Store
	vault  Vault
	verify Verifier
	cfg    Config
	log    *slog.Logger
	now    func() time.Time
}

// NewService returns the use-cases.
func NewService(store Store, vault Vault, verify Verifier, cfg Config, log *slog.Logger, now func() time.Time) *Service {
	if cfg.RecoveryDays == 0 {
		cfg.RecoveryDays = 7
	}
	if now == nil {
		now = time.Now
	}
	return &Service{store: store, vault: vault, verify: verify, cfg: cfg, log: log, now: func() time.Time { return now().UTC() }}
}

// SecretName is where a link's credentials live.
func (s *Service) SecretName(orgID, id string) string {
	return s.cfg.SecretPrefix + "/orgs/" + orgID + "/accounts/" + id
}

// ExternalID returns the organisation's external id, creating it once.
func (s *Service) ExternalID(ctx context.Context, orgID string) (string, error) {
	// 32 random bytes, base32: 52 characters.
	return s.store.ExternalID(ctx, orgID, ids.Secret(32))
}

var (
	errNameTaken  = fault.Conflictf("account_name_taken", "a linked account with this name already exists in the organisation")
	errCredsTaken = fault.Conflictf("account_already_linked", "these credentials are already linked in the organisation")
)

// Create links an account after AWS accepted its credentials. Nothing is
// stored unless everything is: a failed metadata write removes the secret.
func (s *Service) Create(ctx context.Context, caller tenancy.Caller, orgID, requestID string, in LinkInput) (Link, error) {
	var p problems
	if in.Name == nil {
		p.add("name", "is required")
	} else {
		checkName(&p, *in.Name)
	}
	provider := ""
	if in.Provider != nil {
		provider = *in.Provider
	}
	switch {
	case provider == "":
		p.add("provider", `is required ("aws")`)
	case !knownProvider(provider):
		p.add("provider", "is not a provider dFlow knows")
	}
	if in.Environments == nil {
		p.add("environments", `is required: a list of environment names, or ["*"]`)
	} else {
		checkEnvironments(&p, in.Environments)
	}
	region := ""
	if in.DefaultRegion == nil {
		p.add("defaultRegion", "is required")
	} else {
		region = *in.DefaultRegion
		checkRegion(&p, region)
	}
	creds := checkCredentials(&p, in.Credentials, region)
	checkRotation(&p, in.Rotation, creds.secret.Type)
	if err := p.err(); err != nil {
		return Link{}, err
	}
	if provider != ProviderAWS {
		return Link{}, fault.Unprocessablef("provider_not_supported", "linking %s accounts is not available yet; only aws can be linked", provider)
	}
	if err := s.checkPartition(creds.partition); err != nil {
		return Link{}, err
	}
	// Cheap refusals before asking AWS; the write enforces them for real.
	nameTaken, credTaken, err := s.store.Taken(ctx, orgID, *in.Name, creds.key)
	if err != nil {
		return Link{}, err
	}
	if nameTaken {
		return Link{}, errNameTaken
	}
	if credTaken {
		return Link{}, errCredsTaken
	}

	now := s.now()
	l := Link{
		OrgID: orgID, ID: ids.New(ids.Account), Name: *in.Name, Provider: provider,
		Environments: in.Environments, DefaultRegion: region, Partition: creds.partition.ID,
		Warnings: []Warning{}, Version: 1, CreatedAt: now, CreatedBy: caller.UserID, UpdatedAt: now,
	}
	if err := s.check(ctx, &l, creds.secret, requestID); err != nil {
		return Link{}, err
	}
	if l.Credentials.Type == TypeAccessKey {
		l.KeyCreatedAt = &now
		l.Rotation = rotationFrom(in.Rotation, nil, now)
	}

	name := s.SecretName(orgID, l.ID)
	if _, err := s.vault.Create(ctx, name, creds.secret.Payload(), map[string]string{"dflow:org": orgID, "dflow:account": l.ID}); err != nil {
		return Link{}, fmt.Errorf("store credentials of %s: %w", l.ID, err)
	}
	if err := s.store.CreateLink(ctx, l, Record{SecretName: name, CredKey: creds.key}); err != nil {
		s.purge(ctx, name)
		return Link{}, err
	}
	return l, nil
}

func (s *Service) checkPartition(p partition.Partition) error {
	if s.cfg.Partition != "" && p.ID != "" && p.ID != s.cfg.Partition {
		return fault.Unprocessablef("partition_not_supported", "this dFlow installation runs in partition %s and cannot use credentials of %s", s.cfg.Partition, p.ID)
	}
	return nil
}

// check asks AWS about the credentials and fills in what it answers.
func (s *Service) check(ctx context.Context, l *Link, secret Secret, requestID string) error {
	now := s.now()
	l.Warnings = removeWarning(l.Warnings, warnNoExternalID)
	switch secret.Type {
	case TypeAccessKey:
		id, err := s.verify.CheckAccessKey(ctx, l.DefaultRegion, secret.AccessKeyID, secret.SecretAccessKey)
		if err != nil {
			return err
		}
		l.Credentials = CredentialsInfo{Type: TypeAccessKey, AccessKeyIDMasked: MaskKeyID(secret.AccessKeyID)}
		l.AWSAccountID, l.PrincipalARN = id.AccountID, id.ARN
	case TypeAssumeRole:
		externalID, err := s.ExternalID(ctx, l.OrgID)
		if err != nil {
			return err
		}
		id, required, err := s.verify.CheckRole(ctx, l.DefaultRegion, secret.RoleARN, externalID, requestID)
		if err != nil {
			return err
		}
		l.Credentials = CredentialsInfo{Type: TypeAssumeRole, RoleARN: secret.RoleARN, ConfusedDeputyProtected: &required}
		l.AWSAccountID, l.PrincipalARN = id.AccountID, id.ARN
		if !required {
			l.Warnings = append(l.Warnings, Warning{Code: warnNoExternalID, Message: "the role can be assumed without the external ID: add the sts:ExternalId condition from the setup trust policy, or another AWS customer of dFlow could be tricked into using it (confused deputy)"})
		}
	default:
		return fmt.Errorf("check: unknown credential type %q", secret.Type)
	}
	if p, ok := partition.FromARN(l.PrincipalARN); ok {
		l.Partition = p.ID
	}
	l.Status, l.LastError, l.LastValidatedAt = Healthy, nil, now
	return nil
}

const warnNoExternalID = "external_id_not_enforced"

func removeWarning(ws []Warning, code string) []Warning {
	out := []Warning{}
	for _, w := range ws {
		if w.Code != code {
			out = append(out, w)
		}
	}
	return out
}

func rotationFrom(in *RotationInput, prev *Rotation, keyCreated time.Time) *Rotation {
	r := Rotation{MaxAgeDays: DefaultMaxAgeDays}
	if prev != nil {
		r = *prev
	}
	if in != nil {
		if in.Enabled != nil {
			r.Enabled = *in.Enabled
		}
		if in.MaxAgeDays != nil {
			r.MaxAgeDays = *in.MaxAgeDays
		}
	}
	r.NextRotationAt = nil
	if r.Enabled {
		next := keyCreated.AddDate(0, 0, r.MaxAgeDays)
		r.NextRotationAt = &next
	}
	return &r
}

// purge removes a secret whose metadata could not be written. It runs on a
// context of its own: the request's may be the reason the write failed.
func (s *Service) purge(ctx context.Context, name string) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	var err error
	for attempt := 0; attempt < 3; attempt++ {
		if err = s.vault.Purge(ctx, name); err == nil || fault.KindOf(err) == fault.NotFound {
			return
		}
	}
	s.log.ErrorContext(ctx, "orphan secret: rollback failed", "secretName", name, "error", err.Error())
}

// Get returns one link.
func (s *Service) Get(ctx context.Context, orgID, id string) (Link, error) {
	l, _, err := s.store.GetLink(ctx, orgID, id)
	return l, err
}

// List pages through an organisation's links.
func (s *Service) List(ctx context.Context, orgID string, f Filter, p tenancy.Page) ([]Link, string, error) {
	var problems problems
	if f.Provider != "" && !knownProvider(f.Provider) {
		problems.add("provider", "is not a provider dFlow knows")
	}
	if f.Environment != "" && !envName.MatchString(f.Environment) {
		problems.add("environment", "must be an environment name such as production")
	}
	if err := problems.err(); err != nil {
		return nil, "", err
	}
	return s.store.ListLinks(ctx, orgID, f, p)
}

func checkVersion(ifMatch *int64, current int64) error {
	if ifMatch != nil && *ifMatch != current {
		return fault.PreconditionFailedf("version_mismatch", "the link is at version %d, not %d", current, *ifMatch).With("currentVersion", current)
	}
	return nil
}

// Update changes a link's name, environments, default region or rotation.
func (s *Service) Update(ctx context.Context, orgID, id string, in PatchInput, ifMatch *int64) (Link, error) {
	prev, _, err := s.store.GetLink(ctx, orgID, id)
	if err != nil {
		return Link{}, err
	}
	var p problems
	if in.Name == nil && in.Environments == nil && in.DefaultRegion == nil && in.Rotation == nil {
		p.add("body", "names nothing to change")
	}
	if in.Name != nil {
		checkName(&p, *in.Name)
	}
	if in.Environments != nil {
		checkEnvironments(&p, in.Environments)
	}
	if in.DefaultRegion != nil {
		checkRegion(&p, *in.DefaultRegion)
		if rp, ok := partition.ForRegion(*in.DefaultRegion); ok && prev.Partition != "" && rp.ID != prev.Partition {
			p.add("defaultRegion", "must be a region of the link's partition %s", prev.Partition)
		}
	}
	checkRotation(&p, in.Rotation, prev.Credentials.Type)
	if err := p.err(); err != nil {
		return Link{}, err
	}
	if err := checkVersion(ifMatch, prev.Version); err != nil {
		return Link{}, err
	}
	l := prev
	if in.Name != nil {
		l.Name = *in.Name
	}
	if in.Environments != nil {
		l.Environments = in.Environments
	}
	if in.DefaultRegion != nil {
		l.DefaultRegion = *in.DefaultRegion
	}
	if in.Rotation != nil && l.Credentials.Type == TypeAccessKey {
		created := l.CreatedAt
		if l.KeyCreatedAt != nil {
			created = *l.KeyCreatedAt
		}
		l.Rotation = rotationFrom(in.Rotation, prev.Rotation, created)
	}
	l.Version++
	l.UpdatedAt = s.now()
	if err := s.store.UpdateLink(ctx, l, prev); err != nil {
		return Link{}, err
	}
	return l, nil
}

// ReplaceCredentials swaps a link's credentials for new ones of the same AWS
// account. The old value stays in the vault as AWSPREVIOUS.
func (s *Service) ReplaceCredentials(ctx context.Context, orgID, id, requestID string, in CredentialsInput, ifMatch *int64) (Link, error) {
	prev, rec, err := s.store.GetLink(ctx, orgID, id)
	if err != nil {
		return Link{}, err
	}
	var p problems
	creds := checkCredentials(&p, &in, prev.DefaultRegion)
	if err := p.err(); err != nil {
		return Link{}, err
	}
	if err := s.checkPartition(creds.partition); err != nil {
		return Link{}, err
	}
	if err := checkVersion(ifMatch, prev.Version); err != nil {
		return Link{}, err
	}
	_, oldVersion, err := s.current(ctx, rec.SecretName)
	if err != nil {
		return Link{}, err
	}
	l := prev
	if err := s.check(ctx, &l, creds.secret, requestID); err != nil {
		return Link{}, err
	}
	if l.AWSAccountID != prev.AWSAccountID {
		return Link{}, fault.Unprocessablef("account_mismatch", "the new credentials belong to AWS account %s, not the linked account %s", l.AWSAccountID, prev.AWSAccountID)
	}
	now := s.now()
	if l.Credentials.Type == TypeAccessKey {
		l.KeyCreatedAt = &now
		l.Rotation = rotationFrom(nil, prev.Rotation, now)
	} else {
		l.KeyCreatedAt, l.Rotation = nil, nil
	}
	l.Version++
	l.UpdatedAt = now
	if _, err := s.vault.Put(ctx, rec.SecretName, creds.secret.Payload()); err != nil {
		return Link{}, fmt.Errorf("store new credentials of %s: %w", id, err)
	}
	next := Record{SecretName: rec.SecretName, CredKey: creds.key}
	if err := s.store.ReplaceCredentials(ctx, l, prev, next, rec); err != nil {
		s.revert(ctx, rec.SecretName, oldVersion)
		return Link{}, err
	}
	return l, nil
}

func (s *Service) current(ctx context.Context, name string) (Secret, string, error) {
	b, version, err := s.vault.Current(ctx, name)
	if err != nil {
		return Secret{}, "", fmt.Errorf("read credentials: %w", err)
	}
	sec, err := ParseSecret(b)
	return sec, version, err
}

// revert puts the previous secret version back after a failed metadata write.
func (s *Service) revert(ctx context.Context, name, version string) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	var err error
	for attempt := 0; attempt < 3; attempt++ {
		if err = s.vault.Promote(ctx, name, version); err == nil {
			return
		}
	}
	s.log.ErrorContext(ctx, "credentials rollback failed: the vault holds credentials the metadata does not describe", "secretName", name, "error", err.Error())
}

// Validate checks the link's current credentials with AWS now and records
// the outcome as the link's health.
func (s *Service) Validate(ctx context.Context, orgID, id, requestID string) (Link, error) {
	prev, rec, err := s.store.GetLink(ctx, orgID, id)
	if err != nil {
		return Link{}, err
	}
	secret, _, err := s.current(ctx, rec.SecretName)
	if err != nil {
		return Link{}, err
	}
	l := prev
	err = s.check(ctx, &l, secret, requestID)
	switch {
	case err == nil:
	case fault.Is(err, "credentials_invalid"):
		e, _ := fault.As(err)
		l.Status = Unhealthy
		l.LastError = &LinkError{Code: awsCode(e), Message: e.Detail, At: s.now()}
	default:
		return Link{}, err
	}
	if err := s.store.SetHealth(ctx, l); err != nil {
		return Link{}, err
	}
	return l, nil
}

func awsCode(e *fault.Error) string {
	if c, ok := e.Extra["awsErrorCode"].(string); ok && c != "" {
		return c
	}
	return e.Code
}

// Delete unlinks an account nothing uses any more: its secret is scheduled
// for deletion (restorable for the recovery window) and its metadata removed.
func (s *Service) Delete(ctx context.Context, orgID, id string, ifMatch *int64) error {
	l, rec, err := s.store.GetLink(ctx, orgID, id)
	if err != nil {
		return err
	}
	if err := checkVersion(ifMatch, l.Version); err != nil {
		return err
	}
	uses, err := s.store.LinkUsage(ctx, orgID, id)
	if err != nil {
		return err
	}
	if len(uses) > 0 {
		return fault.Conflictf("account_in_use", "%d resource(s) still use this account; remove them first", len(uses)).With("usedBy", uses)
	}
	if err := s.vault.ScheduleDeletion(ctx, rec.SecretName, s.cfg.RecoveryDays); err != nil {
		return fmt.Errorf("schedule deletion of %s: %w", rec.SecretName, err)
	}
	if err := s.store.DeleteLink(ctx, l, rec); err != nil {
		s.restore(ctx, rec.SecretName)
		return err
	}
	return nil
}

func (s *Service) restore(ctx context.Context, name string) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	var err error
	for attempt := 0; attempt < 3; attempt++ {
		if err = s.vault.Restore(ctx, name); err == nil {
			return
		}
	}
	s.log.ErrorContext(ctx, "secret restore failed after unlink rollback", "secretName", name, "error", err.Error())
}

// Resolve returns a link with what acting as it needs (for the functions
// that call AWS through it).
func (s *Service) Resolve(ctx context.Context, orgID, id string) (Link, Record, error) {
	return s.store.GetLink(ctx, orgID, id)
}

// MarkUnhealthy records that AWS rejected a link's credentials while it was
// being used.
func (s *Service) MarkUnhealthy(ctx context.Context, l Link, code, message string) error {
	return s.mark(ctx, l, Unhealthy, code, message)
}

// MarkCompromised records that a leaked key could not be replaced and was
// deactivated: the link needs new credentials.
func (s *Service) MarkCompromised(ctx context.Context, l Link, code, message string) error {
	return s.mark(ctx, l, Compromised, code, message)
}

func (s *Service) mark(ctx context.Context, l Link, status, code, message string) error {
	l.Status = status
	l.LastError = &LinkError{Code: code, Message: message, At: s.now()}
	return s.store.SetHealth(ctx, l)
}

// Warn puts a warning on a link (replacing one with the same code), for
// upkeep that failed on it, e.g. a scheduled rotation.
func (s *Service) Warn(ctx context.Context, orgID, id, code, message string) error {
	l, _, err := s.store.GetLink(ctx, orgID, id)
	if err != nil {
		return err
	}
	l.Warnings = append(removeWarning(l.Warnings, code), Warning{Code: code, Message: message})
	return s.store.SetHealth(ctx, l)
}
