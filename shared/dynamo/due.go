package dynamo

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/dflow-sh/cloud-accounts/shared/fault"
	"github.com/dflow-sh/cloud-accounts/shared/rotation"
)

// The rotation sweep reads rotation.DueShards partitions of the link
// rotation index: the two counts must agree (a negative array length does
// not compile).
var (
	_ [linkShards - rotation.DueShards]struct{}
	_ [rotation.DueShards - linkShards]struct{}
)

// DueLinks pages through the links of one rotation index shard whose next
// rotation is due by now, earliest first. It queries the sparse index
// (never a scan): GSI2PK = ROTATION#<shard> AND GSI2SK <= "<now>~", where
// '~' sorts after the '#' that follows the time in every key. next is ""
// after the last page; pass it back as after for the next one.
func (s *Store) DueLinks(ctx context.Context, shard int, now time.Time, after string, limit int) ([]rotation.DueLink, string, error) {
	if shard < 0 || shard >= linkShards {
		return nil, "", fault.Field("shard", "must be from 0 to %d", linkShards-1)
	}
	if limit <= 0 || limit > 1000 {
		limit = 100
	}
	pk := RotationShardKey(shard)
	in := &dynamodb.QueryInput{
		IndexName:                 aws.String(indexGSI2),
		KeyConditionExpression:    aws.String("#pk = :pk AND #sk <= :upper"),
		ProjectionExpression:      aws.String("#sk"),
		ExpressionAttributeNames:  map[string]string{"#pk": attrGSI2PK, "#sk": attrGSI2SK},
		ExpressionAttributeValues: map[string]types.AttributeValue{":pk": str(pk), ":upper": str(now.UTC().Format(auditTimeFormat) + "~")},
	}
	items, next, err := s.query(ctx, in, attrGSI2PK, pk, page{limit: limit, after: after})
	if err != nil {
		return nil, "", err
	}
	out := make([]rotation.DueLink, 0, len(items))
	for _, it := range items {
		sk, _ := it[attrGSI2SK].(*types.AttributeValueMemberS)
		if sk == nil {
			return nil, "", fmt.Errorf("rotation index %s: item without %s", pk, attrGSI2SK)
		}
		ref, err := parseRotationDue(sk.Value)
		if err != nil {
			return nil, "", fmt.Errorf("rotation index %s: %w", pk, err)
		}
		out = append(out, ref)
	}
	return out, next, nil
}

// parseRotationDue reads a rotationDue key: "<time>#<org>#<link>".
func parseRotationDue(sk string) (rotation.DueLink, error) {
	parts := strings.SplitN(sk, "#", 3)
	if len(parts) != 3 || parts[1] == "" || parts[2] == "" {
		return rotation.DueLink{}, fmt.Errorf("malformed key %q", sk)
	}
	at, err := time.Parse(auditTimeFormat, parts[0])
	if err != nil {
		return rotation.DueLink{}, fmt.Errorf("malformed key %q: %w", sk, err)
	}
	return rotation.DueLink{OrgID: parts[1], LinkID: parts[2], DueAt: at.UTC()}, nil
}
