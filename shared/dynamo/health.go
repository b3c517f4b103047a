package dynamo

import (
	"context"
	"fmt"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/dflow-sh/cloud-accounts/shared/fault"
	"github.com/dflow-sh/cloud-accounts/shared/health"
)

// LinkShards is how many GSI1 partitions (LinkShardKey) hold the links.
const LinkShards = linkShards

// The sweep's default shard count must be this store's.
var _ [LinkShards - health.DefaultShards]struct{}
var _ [health.DefaultShards - LinkShards]struct{}

// LinkRef names a link in the sweep index.
type LinkRef = health.LinkRef

var _ health.Index = (*Store)(nil)

// LinksForSweep reads one page of a shard's links from GSI1, ordered by
// "<orgId>#<linkId>"; next is "" after the last page. The index is
// eventually consistent: a link created a moment ago may be missed.
func (s *Store) LinksForSweep(ctx context.Context, shard int, after string, limit int) ([]LinkRef, string, error) {
	if shard < 0 || shard >= linkShards {
		return nil, "", fault.Field("shard", "must be 0 to %d", linkShards-1)
	}
	if limit <= 0 || limit > 1000 {
		limit = 100
	}
	pk := LinkShardKey(shard)
	in := &dynamodb.QueryInput{
		IndexName:                 aws.String(indexGSI1),
		KeyConditionExpression:    aws.String("#pk = :pk"),
		ExpressionAttributeNames:  map[string]string{"#pk": attrGSI1PK, "#org": "orgId", "#id": "id"},
		ExpressionAttributeValues: map[string]types.AttributeValue{":pk": str(pk)},
		ProjectionExpression:      aws.String("#org, #id"),
	}
	items, next, err := s.query(ctx, in, attrGSI1PK, pk, page{limit: limit, after: after})
	if err != nil {
		return nil, "", err
	}
	refs := make([]LinkRef, 0, len(items))
	for _, it := range items {
		var r struct {
			OrgID string `json:"orgId"`
			ID    string `json:"id"`
		}
		if err := unmarshal(it, &r); err != nil {
			return nil, "", fmt.Errorf("decode link ref: %w", err)
		}
		if r.OrgID == "" || r.ID == "" {
			return nil, "", fmt.Errorf("decode link ref: item in %s without orgId or id", pk)
		}
		refs = append(refs, LinkRef{OrgID: r.OrgID, LinkID: r.ID})
	}
	return refs, next, nil
}
