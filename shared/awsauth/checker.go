// Package awsauth checks customers' AWS credentials with STS before dFlow
// stores them: an IAM user's access key (GetCallerIdentity signed with it)
// or an IAM role dFlow assumes with the organisation's external id. One STS
// client, built from dFlow's own configuration, serves every call; customer
// credentials travel as per-call options. SDK errors become domain errors
// here: "credentials_invalid" when AWS rejects the customer's credentials,
// "provider_unavailable" when AWS can't be reached.
package awsauth

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/sts"

	"github.com/dflow-sh/cloud-accounts/shared/fault"
)

// API is the part of the STS client the checker uses; tests replace it to
// inject faults.
type API interface {
	GetCallerIdentity(ctx context.Context, in *sts.GetCallerIdentityInput, optFns ...func(*sts.Options)) (*sts.GetCallerIdentityOutput, error)
	AssumeRole(ctx context.Context, in *sts.AssumeRoleInput, optFns ...func(*sts.Options)) (*sts.AssumeRoleOutput, error)
}

var _ API = (*sts.Client)(nil)

// CheckDuration is how long CheckRole's sessions last: STS's minimum, as
// they are dropped at once.
const CheckDuration = 15 * time.Minute

// MaxDuration is the longest session AssumeRole may ask for; a role's own
// MaxSessionDuration (and 1 hour for role chaining) may be lower.
const MaxDuration = 12 * time.Hour

// Checker asks STS about customer credentials.
type Checker struct {
	sts    API
	region string
}

type options struct {
	api         API
	maxAttempts int
}

// Option tunes New.
type Option func(*options)

// WithAPI makes the checker use api instead of a client built from the
// config (tests inject faults with it).
func WithAPI(api API) Option { return func(o *options) { o.api = api } }

// WithMaxAttempts sets how many times the SDK's standard retryer tries a
// call (throttling, 5xx, network errors) before the checker gives up.
func WithMaxAttempts(n int) Option { return func(o *options) { o.maxAttempts = n } }

// New builds the checker and its one STS client from dFlow's own config:
// its credentials assume customer roles, its region is the default for
// every call.
func New(cfg aws.Config, opts ...Option) (*Checker, error) {
	var o options
	for _, fn := range opts {
		fn(&o)
	}
	if o.maxAttempts < 0 {
		return nil, fmt.Errorf("awsauth: max attempts %d is negative", o.maxAttempts)
	}
	if cfg.Region == "" {
		return nil, errors.New("awsauth: the AWS config has no region")
	}
	api := o.api
	if api == nil {
		api = sts.NewFromConfig(cfg, func(so *sts.Options) {
			if o.maxAttempts > 0 {
				so.RetryMaxAttempts = o.maxAttempts
			}
		})
	}
	return &Checker{sts: api, region: cfg.Region}, nil
}

// CallOption tunes one check.
type CallOption func(*call)

type call struct{ region string }

// InRegion sends the call to STS in region: a region of the credentials'
// partition (us-gov-west-1 for GovCloud keys, cn-north-1 for China). By
// default calls go to the region of the checker's config.
func InRegion(region string) CallOption { return func(c *call) { c.region = region } }

func (c *Checker) call(opts []CallOption) call {
	cl := call{region: c.region}
	for _, fn := range opts {
		fn(&cl)
	}
	if cl.region == "" {
		cl.region = c.region
	}
	return cl
}

// CheckAccessKey asks STS who the access key belongs to, signing
// GetCallerIdentity with the key itself. AWS rejecting the key is fault
// Unprocessable "credentials_invalid" (with the AWS code in
// Extra["awsErrorCode"]); AWS unreachable is "provider_unavailable".
func (c *Checker) CheckAccessKey(ctx context.Context, key AccessKey, opts ...CallOption) (Identity, error) {
	if err := checkKey(key); err != nil {
		// Not even the masked id: a malformed one may be a pasted secret.
		return Identity{}, fmt.Errorf("check access key: %w", err)
	}
	cl := c.call(opts)
	creds := credentials.NewStaticCredentialsProvider(key.ID, key.Secret, "")
	id, err := c.callerIdentity(ctx, creds, cl)
	if err != nil {
		return Identity{}, fmt.Errorf("check access key %s: %w", key.Masked(), classify(err, signedByCustomer, cl.region, key.Masked()))
	}
	return id, nil
}

func (c *Checker) callerIdentity(ctx context.Context, creds aws.CredentialsProvider, cl call) (Identity, error) {
	out, err := c.sts.GetCallerIdentity(ctx, &sts.GetCallerIdentityInput{}, func(o *sts.Options) {
		o.Credentials = creds
		o.Region = cl.region
	})
	if err != nil {
		return Identity{}, err
	}
	return Identity{
		AccountID: aws.ToString(out.Account),
		ARN:       aws.ToString(out.Arn),
		UserID:    aws.ToString(out.UserId),
	}, nil
}

// AssumeRole assumes the customer's role with dFlow's own credentials and
// the external id (none if empty). duration 0 is STS's default (1 hour).
func (c *Checker) AssumeRole(ctx context.Context, roleARN, externalID, sessionName string, duration time.Duration, opts ...CallOption) (SessionCredentials, error) {
	cl := c.call(opts)
	if err := checkAssume(roleARN, externalID, sessionName, duration, cl.region); err != nil {
		// The ARN is not quoted: a malformed one may be anything pasted.
		return SessionCredentials{}, fmt.Errorf("assume role: %w", err)
	}
	creds, err := c.assumeRole(ctx, roleARN, externalID, sessionName, duration, cl)
	if err != nil {
		return SessionCredentials{}, fmt.Errorf("assume role %s: %w", roleARN, classify(err, signedByDFlow, cl.region, ""))
	}
	return creds, nil
}

func (c *Checker) assumeRole(ctx context.Context, roleARN, externalID, sessionName string, duration time.Duration, cl call) (SessionCredentials, error) {
	in := &sts.AssumeRoleInput{
		RoleArn:         aws.String(roleARN),
		RoleSessionName: aws.String(sessionName),
	}
	if externalID != "" {
		in.ExternalId = aws.String(externalID)
	}
	if duration > 0 {
		in.DurationSeconds = aws.Int32(int32(duration / time.Second))
	}
	out, err := c.sts.AssumeRole(ctx, in, func(o *sts.Options) { o.Region = cl.region })
	if err != nil {
		return SessionCredentials{}, err
	}
	if out.Credentials == nil {
		return SessionCredentials{}, errors.New("STS returned no credentials")
	}
	return SessionCredentials{
		AccessKeyID:     aws.ToString(out.Credentials.AccessKeyId),
		SecretAccessKey: aws.ToString(out.Credentials.SecretAccessKey),
		SessionToken:    aws.ToString(out.Credentials.SessionToken),
		Expires:         aws.ToTime(out.Credentials.Expiration),
	}, nil
}

// CheckRole checks that dFlow can use the customer's role: it assumes the
// role with the external id, asks STS who the session is (the customer's
// account), then tries to assume it WITHOUT the external id. That attempt
// being refused (AccessDenied) means the trust policy requires the external
// id (ExternalIDRequired); it succeeding means it does not, and its session
// is dropped. With an empty externalID there is nothing to compare, and
// ExternalIDRequired is false.
func (c *Checker) CheckRole(ctx context.Context, roleARN, externalID, sessionName string, opts ...CallOption) (RoleCheck, error) {
	cl := c.call(opts)
	if err := checkAssume(roleARN, externalID, sessionName, CheckDuration, cl.region); err != nil {
		return RoleCheck{}, fmt.Errorf("check role: %w", err)
	}
	session, err := c.assumeRole(ctx, roleARN, externalID, sessionName, CheckDuration, cl)
	if err != nil {
		return RoleCheck{}, fmt.Errorf("check role %s: %w", roleARN, classify(err, signedByDFlow, cl.region, ""))
	}
	id, err := c.callerIdentity(ctx, session.Provider(), cl)
	if err != nil {
		return RoleCheck{}, fmt.Errorf("check role %s session: %w", roleARN, classify(err, signedByCustomer, cl.region, ""))
	}
	check := RoleCheck{Identity: id}
	if externalID == "" {
		return check, nil
	}
	_, err = c.assumeRole(ctx, roleARN, "", sessionName, CheckDuration, cl)
	switch {
	case err == nil:
		check.ExternalIDRequired = false
	case isAccessDenied(err):
		check.ExternalIDRequired = true
	default:
		return RoleCheck{}, fmt.Errorf("check role %s without external id: %w", roleARN, classify(err, signedByDFlow, cl.region, ""))
	}
	return check, nil
}

var (
	keyIDPattern       = regexp.MustCompile(`^[A-Z0-9]{16,128}$`)
	roleARNPattern     = regexp.MustCompile(`^arn:(aws[a-z-]*):iam::(\d{12}):role/[\w+=,.@/-]{1,512}$`)
	externalIDPattern  = regexp.MustCompile(`^[\w+=,.@:/-]+$`)
	sessionNamePattern = regexp.MustCompile(`^[\w+=,.@-]{2,64}$`)
)

// checkKey rejects what AWS would, before sending it, with a clearer word.
func checkKey(key AccessKey) error {
	switch {
	case key.ID == "" || key.Secret == "":
		return fault.Unprocessablef("credentials_invalid", "both the access key ID and the secret access key are required")
	case !keyIDPattern.MatchString(key.ID):
		return fault.Unprocessablef("credentials_invalid", "the access key ID is not one AWS issues (16 to 128 upper-case letters and digits, usually starting AKIA)")
	case strings.HasPrefix(key.ID, "ASIA"):
		return fault.Unprocessablef("credentials_invalid", "%s is a temporary access key (ASIA…), which expires; use a long-term IAM user access key (AKIA…)", key.Masked())
	case strings.ContainsAny(key.Secret, " \t\r\n"):
		return fault.Unprocessablef("credentials_invalid", "the secret access key contains whitespace; paste it again without spaces or line breaks")
	}
	return nil
}

// checkAssume validates AssumeRole's inputs. The external id and session
// name are dFlow's own (a bad one is a bug: no fault, so an internal
// error), and their values never enter an error message.
func checkAssume(roleARN, externalID, sessionName string, duration time.Duration, region string) error {
	m := roleARNPattern.FindStringSubmatch(roleARN)
	if m == nil {
		return fault.Unprocessablef("credentials_invalid", "the role ARN is not an IAM role ARN (arn:aws:iam::<12-digit account>:role/<name>)")
	}
	if p := partitionOf(region); m[1] != p {
		return fault.Unprocessablef("credentials_invalid", "the role is in the %s partition, but the check runs in %s (partition %s)", m[1], region, p)
	}
	if externalID != "" && (len(externalID) < 2 || len(externalID) > 1224 || !externalIDPattern.MatchString(externalID)) {
		return errors.New("the external id is not 2 to 1224 characters of [\\w+=,.@:/-]")
	}
	if !sessionNamePattern.MatchString(sessionName) {
		return errors.New("the role session name is not 2 to 64 characters of [\\w+=,.@-]; build it with SessionName")
	}
	if duration != 0 && (duration < CheckDuration || duration > MaxDuration) {
		return fmt.Errorf("session duration %s is outside %s to %s", duration, CheckDuration, MaxDuration)
	}
	return nil
}

// partitionOf names the AWS partition of a region, by the region name
// patterns of the SDK's partition table: "aws-us-gov" for us-gov-west-1,
// "aws-cn" for cn-north-1, "aws" for the commercial regions and anything
// unknown. (shared/partition holds the full tables; this adapter needs only
// the mapping and stays free of domain packages.)
func partitionOf(region string) string {
	for _, p := range []struct{ prefix, partition string }{
		{"us-gov-", "aws-us-gov"},
		{"cn-", "aws-cn"},
		{"us-iso-", "aws-iso"},
		{"us-isob-", "aws-iso-b"},
		{"eu-isoe-", "aws-iso-e"},
		{"us-isof-", "aws-iso-f"},
		{"eusc-", "aws-eusc"},
	} {
		if strings.HasPrefix(region, p.prefix) {
			return p.partition
		}
	}
	return "aws"
}

// SessionName builds a RoleSessionName (2–64 characters of [\w+=,.@-])
// that carries the request id, so the customer's CloudTrail shows which
// dFlow request assumed their role: "<prefix>-<requestID>". Other
// characters become '-'; the prefix is shortened first, and a request id
// too long to fit keeps its start and a hash of the whole.
func SessionName(prefix, requestID string) string {
	const maxLen = 64
	p, r := sanitize(prefix), sanitize(requestID)
	if p == "" {
		p = "dflow"
	}
	if r == "" {
		return pad(truncate(p, maxLen))
	}
	if len(r) > maxLen-2 {
		sum := sha256.Sum256([]byte(requestID))
		r = r[:maxLen-2-9] + "-" + hex.EncodeToString(sum[:])[:8]
	}
	return truncate(p, maxLen-1-len(r)) + "-" + r
}

func sanitize(s string) string {
	var b strings.Builder
	for _, r := range s {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', strings.ContainsRune("_+=,.@-", r):
			b.WriteRune(r)
		default:
			b.WriteByte('-')
		}
	}
	return b.String()
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}

func pad(s string) string {
	if len(s) < 2 {
		return s + "-dflow"
	}
	return s
}
