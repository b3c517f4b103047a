// Package access acts as a linked account: it turns a link into AWS
// credentials (the access key in the vault, or a session of the customer's
// role assumed with the organisation's external id) and into SDK clients.
// Both are cached per link inside a warm function and refreshed before they
// expire, so a request reuses them rather than building its own.
package access

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/iam"
	"github.com/aws/aws-sdk-go-v2/service/ssm"

	"github.com/dflow-sh/cloud-accounts/shared/awsauth"
	"github.com/dflow-sh/cloud-accounts/shared/fault"
	"github.com/dflow-sh/cloud-accounts/shared/links"
)

// Vault reads a link's secret.
type Vault interface {
	Current(ctx context.Context, name string) ([]byte, string, error)
}

// Assumer assumes a customer's role.
type Assumer interface {
	AssumeRole(ctx context.Context, roleARN, externalID, sessionName string, d time.Duration, opts ...awsauth.CallOption) (awsauth.SessionCredentials, error)
}

// ExternalIDs returns an organisation's external id.
type ExternalIDs interface {
	ExternalID(ctx context.Context, orgID string) (string, error)
}

const (
	// keyRefresh: access keys are re-read from the vault this often, so a
	// rotated or replaced key is picked up without a cold start.
	keyRefresh = 5 * time.Minute
	// sessionLength of assumed-role sessions; refreshed expiryWindow early.
	sessionLength = time.Hour
	expiryWindow  = 5 * time.Minute
	// maxEntries bounds the cache of a long-lived warm function.
	maxEntries = 512
)

// Broker hands out credentials and clients per link.
type Broker struct {
	base    aws.Config
	vault   Vault
	assumer Assumer
	ids     ExternalIDs
	now     func() time.Time

	mu      sync.Mutex
	entries map[string]*entry
}

type entry struct {
	creds   *aws.CredentialsCache
	ec2     map[string]*ec2.Client
	ssm     map[string]*ssm.Client
	iam     map[string]*iam.Client
	created time.Time
}

// New returns a broker whose clients start from base (endpoint, retryer,
// middleware) with the link's credentials and the asked region.
func New(base aws.Config, vault Vault, assumer Assumer, ids ExternalIDs) *Broker {
	return &Broker{base: base, vault: vault, assumer: assumer, ids: ids, now: time.Now, entries: map[string]*entry{}}
}

// key identifies a link's credentials: replacing them makes a new entry.
func key(rec links.Record, l links.Link) string { return l.ID + "/" + rec.CredKey }

func (b *Broker) entry(l links.Link, rec links.Record, requestID string) *entry {
	b.mu.Lock()
	defer b.mu.Unlock()
	k := key(rec, l)
	if e, ok := b.entries[k]; ok {
		return e
	}
	if len(b.entries) >= maxEntries {
		b.entries = map[string]*entry{}
	}
	e := &entry{ec2: map[string]*ec2.Client{}, ssm: map[string]*ssm.Client{}, iam: map[string]*iam.Client{}, created: b.now()}
	e.creds = aws.NewCredentialsCache(b.provider(l, rec, requestID), func(o *aws.CredentialsCacheOptions) {
		o.ExpiryWindow = expiryWindow
	})
	b.entries[k] = e
	return e
}

// provider resolves a link's credentials afresh each time the cache asks.
func (b *Broker) provider(l links.Link, rec links.Record, requestID string) aws.CredentialsProvider {
	return aws.CredentialsProviderFunc(func(ctx context.Context) (aws.Credentials, error) {
		switch l.Credentials.Type {
		case links.TypeAccessKey:
			raw, _, err := b.vault.Current(ctx, rec.SecretName)
			if err != nil {
				return aws.Credentials{}, fmt.Errorf("read credentials of %s: %w", l.ID, err)
			}
			s, err := links.ParseSecret(raw)
			if err != nil {
				return aws.Credentials{}, err
			}
			return aws.Credentials{
				AccessKeyID: s.AccessKeyID, SecretAccessKey: s.SecretAccessKey, Source: "dflow-link",
				CanExpire: true, Expires: b.now().Add(keyRefresh + expiryWindow),
			}, nil
		case links.TypeAssumeRole:
			ext, err := b.ids.ExternalID(ctx, l.OrgID)
			if err != nil {
				return aws.Credentials{}, err
			}
			sess, err := b.assumer.AssumeRole(ctx, l.Credentials.RoleARN, ext, awsauth.SessionName("dflow", requestID), sessionLength, awsauth.InRegion(l.DefaultRegion))
			if err != nil {
				return aws.Credentials{}, err
			}
			return aws.Credentials{
				AccessKeyID: sess.AccessKeyID, SecretAccessKey: sess.SecretAccessKey, SessionToken: sess.SessionToken,
				Source: "dflow-link", CanExpire: true, Expires: sess.Expires,
			}, nil
		}
		return aws.Credentials{}, fmt.Errorf("link %s: unknown credential type %q", l.ID, l.Credentials.Type)
	})
}

// Credentials returns the link's credentials, from the cache while valid.
// Errors are the vault's or STS's domain faults (e.g. credentials_invalid).
func (b *Broker) Credentials(ctx context.Context, l links.Link, rec links.Record, requestID string) (aws.Credentials, error) {
	e := b.entry(l, rec, requestID)
	c, err := e.creds.Retrieve(ctx)
	if err != nil {
		if _, ok := fault.As(err); ok {
			return aws.Credentials{}, err
		}
		return aws.Credentials{}, fmt.Errorf("credentials of link %s: %w", l.ID, err)
	}
	return c, nil
}

func (b *Broker) config(e *entry, region string) aws.Config {
	cfg := b.base.Copy()
	cfg.Region = region
	cfg.Credentials = e.creds
	return cfg
}

// EC2 returns the link's EC2 client for region. Credentials are checked
// first, so a rejected link fails here with a clean fault rather than
// inside an SDK call.
func (b *Broker) EC2(ctx context.Context, l links.Link, rec links.Record, region, requestID string) (*ec2.Client, error) {
	return client(ctx, b, l, rec, requestID, func(e *entry) map[string]*ec2.Client { return e.ec2 }, region,
		func(cfg aws.Config) *ec2.Client { return ec2.NewFromConfig(cfg) })
}

// SSM returns the link's SSM client for region.
func (b *Broker) SSM(ctx context.Context, l links.Link, rec links.Record, region, requestID string) (*ssm.Client, error) {
	return client(ctx, b, l, rec, requestID, func(e *entry) map[string]*ssm.Client { return e.ssm }, region,
		func(cfg aws.Config) *ssm.Client { return ssm.NewFromConfig(cfg) })
}

// client returns the cached client of a kind for region, building it once.
func client[C any](ctx context.Context, b *Broker, l links.Link, rec links.Record, requestID string,
	cache func(*entry) map[string]C, region string, build func(aws.Config) C) (C, error) {
	var zero C
	if _, err := b.Credentials(ctx, l, rec, requestID); err != nil {
		return zero, err
	}
	e := b.entry(l, rec, requestID)
	b.mu.Lock()
	defer b.mu.Unlock()
	clients := cache(e)
	c, ok := clients[region]
	if !ok {
		c = build(b.config(e, region))
		clients[region] = c
	}
	return c, nil
}

// IAM returns the link's IAM client. IAM is global: it is reached through
// the link's region, in the link's partition.
func (b *Broker) IAM(ctx context.Context, l links.Link, rec links.Record, requestID string) (*iam.Client, error) {
	return client(ctx, b, l, rec, requestID, func(e *entry) map[string]*iam.Client { return e.iam }, l.DefaultRegion,
		func(cfg aws.Config) *iam.Client { return iam.NewFromConfig(cfg) })
}

// Forget drops a link's cached credentials and clients (after AWS rejected
// them, so the next request starts afresh).
func (b *Broker) Forget(l links.Link, rec links.Record) {
	b.mu.Lock()
	defer b.mu.Unlock()
	delete(b.entries, key(rec, l))
}

type requestIDKey struct{}

// WithRequestID carries the request id to the role sessions the broker
// opens for calls made under ctx (their session names carry it).
func WithRequestID(ctx context.Context, id string) context.Context {
	return context.WithValue(ctx, requestIDKey{}, id)
}

// RequestID is the id WithRequestID put in ctx, or "".
func RequestID(ctx context.Context) string {
	id, _ := ctx.Value(requestIDKey{}).(string)
	return id
}
