// Package pendinglabel removes the AWSPENDING staging label from a secret
// version a rotation rollback abandons: the one Secrets Manager call the
// vault does not offer. (It belongs in shared/vault as Vault.ClearPending;
// it lives here until that package takes it.)
package pendinglabel

import (
	"context"
	"fmt"
	"slices"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"

	"github.com/dflow-sh/cloud-accounts/shared/awserr"
	"github.com/dflow-sh/cloud-accounts/shared/fault"
	"github.com/dflow-sh/cloud-accounts/shared/rotation"
)

// API is the part of the Secrets Manager client used.
type API interface {
	DescribeSecret(ctx context.Context, in *secretsmanager.DescribeSecretInput, optFns ...func(*secretsmanager.Options)) (*secretsmanager.DescribeSecretOutput, error)
	UpdateSecretVersionStage(ctx context.Context, in *secretsmanager.UpdateSecretVersionStageInput, optFns ...func(*secretsmanager.Options)) (*secretsmanager.UpdateSecretVersionStageOutput, error)
}

var (
	_ API                    = (*secretsmanager.Client)(nil)
	_ rotation.PendingLabels = (*Labels)(nil)
)

// Labels moves staging labels.
type Labels struct{ sm API }

// New builds Labels from cfg; api replaces the SDK client when not nil.
func New(cfg aws.Config, api API) *Labels {
	if api == nil {
		api = secretsmanager.NewFromConfig(cfg)
	}
	return &Labels{sm: api}
}

// RemovePending takes AWSPENDING off versionID; a version without it is left alone.
func (l *Labels) RemovePending(ctx context.Context, name, versionID string) error {
	d, err := l.sm.DescribeSecret(ctx, &secretsmanager.DescribeSecretInput{SecretId: aws.String(name)})
	if err != nil {
		return fmt.Errorf("describe secret %s: %w", name, translate(err))
	}
	if !slices.Contains(d.VersionIdsToStages[versionID], "AWSPENDING") {
		return nil
	}
	_, err = l.sm.UpdateSecretVersionStage(ctx, &secretsmanager.UpdateSecretVersionStageInput{
		SecretId: aws.String(name), VersionStage: aws.String("AWSPENDING"), RemoveFromVersionId: aws.String(versionID),
	})
	if err != nil {
		return fmt.Errorf("remove AWSPENDING from secret %s version %s: %w", name, versionID, translate(err))
	}
	return nil
}

func translate(err error) error {
	var e *fault.Error
	switch code := awserr.Code(err); {
	case code == "ResourceNotFoundException":
		e = fault.NotFoundf("secret_not_found", "the secret does not exist")
	case awserr.IsTransient(err):
		e = fault.Unavailablef(1, "secrets_unavailable", "the secret store is unavailable; try again")
	default:
		e = &fault.Error{Kind: fault.Internal, Code: "secrets_error", Detail: "the secret store refused the request"}
	}
	e.Err = err
	return e
}
