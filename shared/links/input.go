package links

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"regexp"
	"strings"
	"unicode/utf8"

	"github.com/dflow-sh/cloud-accounts/shared/fault"
	"github.com/dflow-sh/cloud-accounts/shared/partition"
)

// CredentialsInput is the credentials part of a request. It redacts itself:
// it holds a secret access key until the vault has it.
type CredentialsInput struct {
	Type            *string `json:"type"`
	AccessKeyID     *string `json:"accessKeyId"`
	SecretAccessKey *string `json:"secretAccessKey"`
	RoleARN         *string `json:"roleArn"`
}

func (CredentialsInput) String() string   { return redacted }
func (CredentialsInput) GoString() string { return redacted }

// RotationInput is the rotation policy in a request.
type RotationInput struct {
	Enabled    *bool `json:"enabled"`
	MaxAgeDays *int  `json:"maxAgeDays"`
}

// LinkInput is the body of POST /accounts.
type LinkInput struct {
	Name          *string           `json:"name"`
	Provider      *string           `json:"provider"`
	Environments  []string          `json:"environments"`
	DefaultRegion *string           `json:"defaultRegion"`
	Credentials   *CredentialsInput `json:"credentials"`
	Rotation      *RotationInput    `json:"rotation"`
}

// PatchInput is the body of PATCH /accounts/{id}.
type PatchInput struct {
	Name          *string        `json:"name"`
	Environments  []string       `json:"environments"`
	DefaultRegion *string        `json:"defaultRegion"`
	Rotation      *RotationInput `json:"rotation"`
}

var (
	accessKeyID = regexp.MustCompile(`^(AKIA|ASIA)[A-Z0-9]{16}$`)
	envName     = regexp.MustCompile(`^[a-z][a-z0-9-]{0,31}$`)
)

// Rotation bounds.
const (
	DefaultMaxAgeDays = 90
	MaxMaxAgeDays     = 365
	maxEnvironments   = 20
	maxNameLen        = 64
)

type problems []fault.FieldError

func (p *problems) add(field, format string, args ...any) {
	*p = append(*p, fault.FieldError{Field: field, Message: fmt.Sprintf(format, args...)})
}

func (p problems) err() error {
	if len(p) == 0 {
		return nil
	}
	return fault.Validation(p...)
}

func checkName(p *problems, name string) {
	n := utf8.RuneCountInString(name)
	switch {
	case n < 1 || n > maxNameLen:
		p.add("name", "must be 1 to %d characters", maxNameLen)
	case strings.TrimSpace(name) != name:
		p.add("name", "must not start or end with spaces")
	case strings.ContainsFunc(name, func(r rune) bool { return r < 0x20 || r == 0x7f }):
		p.add("name", "must not contain control characters")
	}
}

func checkEnvironments(p *problems, envs []string) {
	if len(envs) == 0 {
		p.add("environments", `must list at least one environment, or ["*"] for all`)
		return
	}
	if len(envs) > maxEnvironments {
		p.add("environments", "at most %d environments", maxEnvironments)
	}
	seen := map[string]bool{}
	for i, e := range envs {
		field := fmt.Sprintf("environments[%d]", i)
		switch {
		case e == AllEnvironments && len(envs) > 1:
			p.add(field, `"*" stands alone: it already means every environment`)
		case e == AllEnvironments:
		case !envName.MatchString(e):
			p.add(field, "must be an environment name such as production or staging")
		case seen[e]:
			p.add(field, "is listed twice")
		}
		seen[e] = true
	}
}

func checkRegion(p *problems, region string) {
	if !partition.ValidRegion(region) {
		p.add("defaultRegion", "must be an AWS region code such as eu-west-1")
	}
}

func checkRotation(p *problems, r *RotationInput, credType string) {
	if r == nil {
		return
	}
	if r.Enabled != nil && *r.Enabled && credType == TypeAssumeRole {
		p.add("rotation.enabled", "role links have no key to rotate")
	}
	if r.MaxAgeDays != nil && (*r.MaxAgeDays < 1 || *r.MaxAgeDays > MaxMaxAgeDays) {
		p.add("rotation.maxAgeDays", "must be from 1 to %d days", MaxMaxAgeDays)
	}
}

// checked is credentials that passed the format rules.
type checked struct {
	secret    Secret
	partition partition.Partition
	// key identifies the credentials for the one-link-per-credentials rule.
	key string
}

func checkCredentials(p *problems, c *CredentialsInput, region string) checked {
	if c == nil {
		p.add("credentials", "is required")
		return checked{}
	}
	typ := ""
	if c.Type != nil {
		typ = *c.Type
	}
	switch typ {
	case TypeAccessKey:
		if c.RoleARN != nil {
			p.add("credentials.roleArn", "does not go with type accessKey")
		}
		var out checked
		out.secret.Type = TypeAccessKey
		switch {
		case c.AccessKeyID == nil:
			p.add("credentials.accessKeyId", "is required")
		case !accessKeyID.MatchString(*c.AccessKeyID):
			p.add("credentials.accessKeyId", "must be 20 characters: AKIA or ASIA then 16 upper-case letters or digits")
		default:
			out.secret.AccessKeyID = *c.AccessKeyID
		}
		switch {
		case c.SecretAccessKey == nil:
			p.add("credentials.secretAccessKey", "is required")
		case len(*c.SecretAccessKey) != 40:
			// Never echo any part of it.
			p.add("credentials.secretAccessKey", "must be 40 characters")
		default:
			out.secret.SecretAccessKey = *c.SecretAccessKey
		}
		if part, ok := partition.ForRegion(region); ok {
			out.partition = part
		}
		out.key = credentialKey("key", out.secret.AccessKeyID)
		return out
	case TypeAssumeRole:
		if c.AccessKeyID != nil || c.SecretAccessKey != nil {
			p.add("credentials", "access keys do not go with type assumeRole")
		}
		if c.RoleARN == nil {
			p.add("credentials.roleArn", "is required")
			return checked{}
		}
		arn, err := partition.ParseRoleARN(*c.RoleARN)
		if err != nil {
			p.add("credentials.roleArn", "%s", err.Error())
			return checked{}
		}
		if rp, ok := partition.ForRegion(region); ok && rp.ID != arn.Partition.ID {
			p.add("defaultRegion", "is in partition %s but the role is in %s", rp.ID, arn.Partition.ID)
		}
		return checked{
			secret:    Secret{Type: TypeAssumeRole, RoleARN: *c.RoleARN},
			partition: arn.Partition,
			key:       credentialKey("role", strings.ToLower(*c.RoleARN)),
		}
	case "":
		p.add("credentials.type", `is required: "assumeRole" (preferred) or "accessKey"`)
	default:
		p.add("credentials.type", `must be "assumeRole" or "accessKey"`)
	}
	return checked{}
}

// credentialKey identifies credentials without storing them: a hash, so even
// the access key id stays out of the table's keys.
func credentialKey(kind, id string) string {
	h := sha256.Sum256([]byte(kind + ":" + id))
	return kind + "-" + hex.EncodeToString(h[:16])
}
