// Package links is linking cloud provider accounts to an organisation: the
// link's metadata, the rules its fields follow, and the use-cases that check
// credentials with the provider before anything is stored. Credentials
// themselves only ever go to the vault (Secrets Manager) and to the calls
// that need them.
package links

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"time"
)

// Providers and their availability.
const (
	ProviderAWS = "aws"

	Available  = "available"
	ComingSoon = "coming_soon"
	Preview    = "preview"
)

// Credential types.
const (
	TypeAccessKey  = "accessKey"
	TypeAssumeRole = "assumeRole"
)

// Link statuses.
const (
	Healthy   = "healthy"
	Unhealthy = "unhealthy"
	// Compromised: the key leaked and could not be replaced; it was
	// deactivated, so the link works again only with new credentials.
	Compromised = "compromised"
)

// AllEnvironments is the wildcard environment list.
const AllEnvironments = "*"

// Link is a linked cloud provider account, as readers see it.
type Link struct {
	OrgID         string          `json:"-"`
	ID            string          `json:"id"`
	Name          string          `json:"name"`
	Provider      string          `json:"provider"`
	Environments  []string        `json:"environments"`
	DefaultRegion string          `json:"defaultRegion"`
	Credentials   CredentialsInfo `json:"credentials"`
	AWSAccountID  string          `json:"awsAccountId"`
	PrincipalARN  string          `json:"principalArn"`
	Partition     string          `json:"partition"`
	Status        string          `json:"status"`
	LastError     *LinkError      `json:"lastError"`
	// LastValidatedAt is when AWS last accepted the credentials.
	LastValidatedAt time.Time `json:"lastValidatedAt"`
	// KeyCreatedAt is when dFlow received the access key (keys only).
	KeyCreatedAt *time.Time `json:"keyCreatedAt,omitempty"`
	Rotation     *Rotation  `json:"rotation,omitempty"`
	Warnings     []Warning  `json:"warnings"`
	Version      int64      `json:"version"`
	CreatedAt    time.Time  `json:"createdAt"`
	CreatedBy    string     `json:"createdBy"`
	UpdatedAt    time.Time  `json:"updatedAt"`
}

// CredentialsInfo is what anyone may see of a link's credentials.
type CredentialsInfo struct {
	Type              string `json:"type"`
	AccessKeyIDMasked string `json:"accessKeyIdMasked,omitempty"`
	RoleARN           string `json:"roleArn,omitempty"`
	// ConfusedDeputyProtected: AWS refused to assume the role without the
	// organisation's external ID (roles only).
	ConfusedDeputyProtected *bool `json:"confusedDeputyProtected,omitempty"`
}

// Rotation is the access-key rotation policy of a link.
type Rotation struct {
	Enabled        bool       `json:"enabled"`
	MaxAgeDays     int        `json:"maxAgeDays"`
	NextRotationAt *time.Time `json:"nextRotationAt"`
	LastRotatedAt  *time.Time `json:"lastRotatedAt,omitempty"`
}

// LinkError is why a link is unhealthy.
type LinkError struct {
	Code    string    `json:"code"`
	Message string    `json:"message"`
	At      time.Time `json:"at"`
}

// Warning is something a link's owner should fix, though it works.
type Warning struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

// Allows reports whether the link may serve an environment.
func (l Link) Allows(environment string) bool {
	for _, e := range l.Environments {
		if e == AllEnvironments || e == environment {
			return true
		}
	}
	return false
}

// Secret is the value kept in the vault for a link. It redacts itself
// everywhere but in Payload, which only the vault adapter's callers use.
type Secret struct {
	Type            string
	AccessKeyID     string
	SecretAccessKey string
	RoleARN         string
}

type secretJSON struct {
	Type            string `json:"type"`
	AccessKeyID     string `json:"accessKeyId,omitempty"`
	SecretAccessKey string `json:"secretAccessKey,omitempty"`
	RoleARN         string `json:"roleArn,omitempty"`
}

// Payload is the JSON stored in the vault.
func (s Secret) Payload() []byte {
	b, _ := json.Marshal(secretJSON(s))
	return b
}

// ParseSecret reads a vault payload.
func ParseSecret(b []byte) (Secret, error) {
	var j secretJSON
	if err := json.Unmarshal(b, &j); err != nil {
		return Secret{}, fmt.Errorf("parse link secret: malformed payload")
	}
	return Secret(j), nil
}

const redacted = "[redacted]"

func (Secret) String() string               { return redacted }
func (Secret) GoString() string             { return redacted }
func (Secret) LogValue() slog.Value         { return slog.StringValue(redacted) }
func (Secret) MarshalJSON() ([]byte, error) { return json.Marshal(redacted) }

// MaskKeyID shows the first and last four characters of an access key id.
func MaskKeyID(id string) string {
	if len(id) < 8 {
		return "…"
	}
	return id[:4] + "…" + id[len(id)-4:]
}

// ProviderInfo is an entry of the provider catalog.
type ProviderInfo struct {
	ID           string   `json:"id"`
	Name         string   `json:"name"`
	Availability string   `json:"availability"`
	Credentials  []string `json:"credentialTypes"`
}

var catalog = []ProviderInfo{
	{ID: "aws", Name: "Amazon Web Services", Availability: Available, Credentials: []string{TypeAssumeRole, TypeAccessKey}},
	{ID: "gcp", Name: "Google Cloud", Availability: ComingSoon, Credentials: []string{}},
	{ID: "azure", Name: "Microsoft Azure", Availability: ComingSoon, Credentials: []string{}},
	{ID: "digitalocean", Name: "DigitalOcean", Availability: ComingSoon, Credentials: []string{}},
}

// Catalog lists the providers; coming-soon ones show as preview when the
// organisation's flag provider.<id> is on.
func Catalog(feature func(string) bool) []ProviderInfo {
	out := make([]ProviderInfo, len(catalog))
	for i, p := range catalog {
		out[i] = p
		if p.Availability == ComingSoon && feature("provider."+p.ID) {
			out[i].Availability = Preview
		}
	}
	return out
}

func knownProvider(id string) bool {
	for _, p := range catalog {
		if p.ID == id {
			return true
		}
	}
	return false
}
