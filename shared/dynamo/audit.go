package dynamo

import (
	"context"
	"fmt"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/dflow-sh/cloud-accounts/shared/audit"
	"github.com/dflow-sh/cloud-accounts/shared/tenancy"
)

// Audit events live in their own partition per organisation, sorted by time
// (fixed-width UTC timestamps sort as strings), read newest first.
const auditTimeFormat = "2006-01-02T15:04:05.000000000Z"

type auditItem struct {
	Type string `json:"type"`
	audit.Event
}

// Record writes one audit event.
func (s *Store) Record(ctx context.Context, e audit.Event) error {
	item, err := marshal(auditItem{Type: "audit", Event: e}, map[string]string{
		attrPK: auditPK(e.OrgID),
		attrSK: e.At.UTC().Format(auditTimeFormat) + "#" + e.ID,
	})
	if err != nil {
		return err
	}
	_, err = s.db.PutItem(ctx, &dynamodb.PutItemInput{
		TableName:           &s.table,
		Item:                item,
		ConditionExpression: aws.String("attribute_not_exists(PK)"),
	})
	if err != nil {
		return fmt.Errorf("record audit event %s: %w", e.ID, err)
	}
	return nil
}

// ListAudit pages through an organisation's audit trail, newest first.
func (s *Store) ListAudit(ctx context.Context, orgID string, p tenancy.Page) ([]audit.Event, string, error) {
	in := &dynamodb.QueryInput{
		KeyConditionExpression:    aws.String("PK = :pk"),
		ExpressionAttributeValues: map[string]types.AttributeValue{":pk": str(auditPK(orgID))},
		ScanIndexForward:          aws.Bool(false),
	}
	items, next, err := s.query(ctx, in, attrPK, auditPK(orgID), page{p.Limit, p.After})
	if err != nil {
		return nil, "", err
	}
	out := make([]audit.Event, 0, len(items))
	for _, it := range items {
		var a auditItem
		if err := unmarshal(it, &a); err != nil {
			return nil, "", fmt.Errorf("decode audit event: %w", err)
		}
		a.Event.At = a.Event.At.UTC().Truncate(time.Nanosecond)
		out = append(out, a.Event)
	}
	return out, next, nil
}
