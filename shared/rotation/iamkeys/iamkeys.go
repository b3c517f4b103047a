// Package iamkeys is the IAM adapter of key rotation: it manages an IAM
// user's access keys with that user's own credentials, passed per call to
// one client built from dFlow's configuration. SDK errors become domain
// errors here; no error carries a secret (key ids are masked).
package iamkeys

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/iam"
	"github.com/aws/aws-sdk-go-v2/service/iam/types"

	"github.com/dflow-sh/cloud-accounts/shared/awserr"
	"github.com/dflow-sh/cloud-accounts/shared/fault"
	"github.com/dflow-sh/cloud-accounts/shared/links"
	"github.com/dflow-sh/cloud-accounts/shared/rotation"
)

// API is the part of the IAM client the adapter uses.
type API interface {
	ListAccessKeys(ctx context.Context, in *iam.ListAccessKeysInput, optFns ...func(*iam.Options)) (*iam.ListAccessKeysOutput, error)
	CreateAccessKey(ctx context.Context, in *iam.CreateAccessKeyInput, optFns ...func(*iam.Options)) (*iam.CreateAccessKeyOutput, error)
	UpdateAccessKey(ctx context.Context, in *iam.UpdateAccessKeyInput, optFns ...func(*iam.Options)) (*iam.UpdateAccessKeyOutput, error)
	DeleteAccessKey(ctx context.Context, in *iam.DeleteAccessKeyInput, optFns ...func(*iam.Options)) (*iam.DeleteAccessKeyOutput, error)
	GetAccessKeyLastUsed(ctx context.Context, in *iam.GetAccessKeyLastUsedInput, optFns ...func(*iam.Options)) (*iam.GetAccessKeyLastUsedOutput, error)
}

var (
	_ API           = (*iam.Client)(nil)
	_ rotation.Keys = (*Client)(nil)
)

// Client manages access keys.
type Client struct{ iam API }

// New builds the client from dFlow's config (its credentials are never
// used: every call is signed with the customer's). api replaces the SDK
// client when not nil.
func New(cfg aws.Config, api API) *Client {
	if api == nil {
		api = iam.NewFromConfig(cfg)
	}
	return &Client{iam: api}
}

func signed(c rotation.Credentials) func(*iam.Options) {
	return func(o *iam.Options) {
		o.Credentials = credentials.NewStaticCredentialsProvider(c.AccessKeyID, c.SecretAccessKey, "")
		if c.Region != "" {
			o.Region = c.Region
		}
	}
}

// List returns the user's access keys.
func (c *Client) List(ctx context.Context, cr rotation.Credentials, user string) ([]rotation.KeyMeta, error) {
	var out []rotation.KeyMeta
	p := iam.NewListAccessKeysPaginator(c.iam, &iam.ListAccessKeysInput{UserName: aws.String(user)})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx, signed(cr))
		if err != nil {
			return nil, fmt.Errorf("list access keys of %s: %w", user, translate(err, ""))
		}
		for _, k := range page.AccessKeyMetadata {
			out = append(out, rotation.KeyMeta{
				ID: aws.ToString(k.AccessKeyId), Active: k.Status == types.StatusTypeActive, CreatedAt: aws.ToTime(k.CreateDate),
			})
		}
	}
	return out, nil
}

// Create makes a new access key for the user.
func (c *Client) Create(ctx context.Context, cr rotation.Credentials, user string) (rotation.NewKey, error) {
	out, err := c.iam.CreateAccessKey(ctx, &iam.CreateAccessKeyInput{UserName: aws.String(user)}, signed(cr))
	if err != nil {
		return rotation.NewKey{}, fmt.Errorf("create access key for %s: %w", user, translate(err, ""))
	}
	if out.AccessKey == nil {
		return rotation.NewKey{}, fmt.Errorf("create access key for %s: IAM returned no key", user)
	}
	return rotation.NewKey{
		ID: aws.ToString(out.AccessKey.AccessKeyId), Secret: aws.ToString(out.AccessKey.SecretAccessKey), CreatedAt: aws.ToTime(out.AccessKey.CreateDate),
	}, nil
}

// Deactivate sets the key Inactive.
func (c *Client) Deactivate(ctx context.Context, cr rotation.Credentials, user, keyID string) error {
	_, err := c.iam.UpdateAccessKey(ctx, &iam.UpdateAccessKeyInput{
		UserName: aws.String(user), AccessKeyId: aws.String(keyID), Status: types.StatusTypeInactive,
	}, signed(cr))
	if err != nil {
		return fmt.Errorf("deactivate access key %s: %w", links.MaskKeyID(keyID), translate(err, keyID))
	}
	return nil
}

// Delete deletes the key.
func (c *Client) Delete(ctx context.Context, cr rotation.Credentials, user, keyID string) error {
	_, err := c.iam.DeleteAccessKey(ctx, &iam.DeleteAccessKeyInput{UserName: aws.String(user), AccessKeyId: aws.String(keyID)}, signed(cr))
	if err != nil {
		return fmt.Errorf("delete access key %s: %w", links.MaskKeyID(keyID), translate(err, keyID))
	}
	return nil
}

// LastUsed is when the key last signed a request; zero if never.
func (c *Client) LastUsed(ctx context.Context, cr rotation.Credentials, keyID string) (time.Time, error) {
	out, err := c.iam.GetAccessKeyLastUsed(ctx, &iam.GetAccessKeyLastUsedInput{AccessKeyId: aws.String(keyID)}, signed(cr))
	if err != nil {
		return time.Time{}, fmt.Errorf("read last use of access key %s: %w", links.MaskKeyID(keyID), translate(err, keyID))
	}
	if out.AccessKeyLastUsed == nil {
		return time.Time{}, nil
	}
	return aws.ToTime(out.AccessKeyLastUsed.LastUsedDate), nil
}

// translate turns an IAM error into a domain error wrapping it.
func translate(err error, keyID string) error {
	code := awserr.Code(err)
	var e *fault.Error
	var noEntity *types.NoSuchEntityException
	var limit *types.LimitExceededException
	switch {
	case errors.As(err, &noEntity) || code == "NoSuchEntity":
		e = fault.NotFoundf("iam_key_not_found", "IAM has no such user or access key")
	case errors.As(err, &limit) || code == "LimitExceeded":
		e = fault.Conflictf(rotation.CodeKeyLimit, "the IAM user already has the most access keys IAM allows (2)")
	case code == "AccessDenied" || code == "AccessDeniedException":
		e = fault.Unprocessablef("iam_access_denied", "the IAM user may not manage its own access keys: allow iam:ListAccessKeys, iam:CreateAccessKey, iam:UpdateAccessKey, iam:DeleteAccessKey and iam:GetAccessKeyLastUsed on user/${aws:username}")
	case code == "InvalidClientTokenId" || code == "SignatureDoesNotMatch" || code == "UnrecognizedClientException":
		e = fault.Unprocessablef("credentials_invalid", "AWS does not accept the link's access key")
	case awserr.IsThrottle(err) || awserr.IsTransient(err):
		e = fault.Unavailablef(2, "provider_unavailable", "AWS IAM did not answer; try again shortly")
	default:
		e = &fault.Error{Kind: fault.Internal, Code: "provider_error", Detail: "IAM refused the request"}
	}
	if code != "" && e.Kind != fault.Internal {
		e = e.With("awsErrorCode", code)
	}
	e.Err = err
	return e
}
