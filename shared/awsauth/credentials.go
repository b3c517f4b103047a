package awsauth

import (
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
)

// redacted is what credentials print as, everywhere.
const redacted = "[redacted]"

// errNoJSON is what the credential types answer to json.Marshal: they are
// never part of a response body or a log document. The vault payload is
// built from their fields, explicitly, by its owner.
var errNoJSON = errors.New("awsauth: credentials are not marshalled to JSON")

// AccessKey is a customer's long-term IAM user access key. It redacts
// itself in fmt (every verb), slog and JSON.
type AccessKey struct {
	ID     string
	Secret string
}

// Masked shows the access key id's first and last four characters,
// "AKIA…WXYZ", for messages and logs; a short id is hidden entirely.
func (k AccessKey) Masked() string { return mask(k.ID) }

func (k AccessKey) String() string               { return redacted }
func (k AccessKey) GoString() string             { return "awsauth.AccessKey{" + redacted + "}" }
func (k AccessKey) LogValue() slog.Value         { return slog.StringValue(redacted) }
func (k AccessKey) MarshalJSON() ([]byte, error) { return nil, errNoJSON }

// Format covers the verbs String and GoString do not (%d, %x, %+v on a
// pointer...), which would otherwise print the fields.
func (k AccessKey) Format(f fmt.State, verb rune) { format(f, verb, k.GoString()) }

// SessionCredentials are temporary credentials from AssumeRole. They
// redact themselves like AccessKey.
type SessionCredentials struct {
	AccessKeyID     string
	SecretAccessKey string
	SessionToken    string
	Expires         time.Time
}

// Provider serves the credentials as they are (no refresh), for one SDK
// call's options.
func (c SessionCredentials) Provider() aws.CredentialsProvider {
	return credentials.StaticCredentialsProvider{Value: aws.Credentials{
		AccessKeyID:     c.AccessKeyID,
		SecretAccessKey: c.SecretAccessKey,
		SessionToken:    c.SessionToken,
		Source:          "awsauth.SessionCredentials",
		CanExpire:       !c.Expires.IsZero(),
		Expires:         c.Expires,
	}}
}

func (c SessionCredentials) String() string { return redacted }
func (c SessionCredentials) GoString() string {
	return "awsauth.SessionCredentials{" + redacted + ", Expires: " + c.Expires.UTC().Format(time.RFC3339) + "}"
}
func (c SessionCredentials) LogValue() slog.Value          { return slog.StringValue(redacted) }
func (c SessionCredentials) MarshalJSON() ([]byte, error)  { return nil, errNoJSON }
func (c SessionCredentials) Format(f fmt.State, verb rune) { format(f, verb, c.GoString()) }

func format(f fmt.State, verb rune, goString string) {
	if verb == 'v' && f.Flag('#') {
		_, _ = fmt.Fprint(f, goString)
		return
	}
	_, _ = fmt.Fprint(f, redacted)
}

func mask(id string) string {
	if len(id) < 12 {
		return "…"
	}
	return id[:4] + "…" + id[len(id)-4:]
}

// Identity is who AWS says credentials belong to (GetCallerIdentity).
type Identity struct {
	AccountID string
	ARN       string
	UserID    string
}

// RoleCheck is what CheckRole learned about a customer's role.
type RoleCheck struct {
	// Identity is the assumed-role session's identity; AccountID is the
	// customer's account.
	Identity Identity
	// ExternalIDRequired is true when AssumeRole WITHOUT the external id
	// was refused, i.e. the trust policy guards against confused deputies.
	ExternalIDRequired bool
}
