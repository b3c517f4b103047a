package dynamo

import (
	"context"
	"fmt"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/dflow-sh/cloud-accounts/shared/fault"
	"github.com/dflow-sh/cloud-accounts/shared/links"
	"github.com/dflow-sh/cloud-accounts/shared/rotation"
	"github.com/dflow-sh/cloud-accounts/shared/tenancy"
)

// Key rotation keeps, in the organisation's partition:
//
//	ROTATION#<link>#<rotation>  a rotation's journal; while unfinished it is
//	                            in GSI2 under ROTJOURNAL#<shard>, sorted by
//	                            "<nextAttemptAt>#<org>#<link>#<rotation>",
//	                            which the hourly sweep queries up to now
//	ROTLEASE#<link>             the lease one rotation of the link holds
//	                            (leaseUntilMs; expiresAt lets TTL clean up)
var _ rotation.Store = (*Store)(nil)

var (
	errRotationNotFound = fault.NotFoundf(rotation.CodeNotFound, "no such rotation")
	errRotationExists   = fault.Conflictf("rotation_exists", "a rotation with this id already exists")
	errRotationChanged  = fault.Conflictf(rotation.CodeStoreConflict, "the rotation's journal changed while this run wrote it")
	errRotationLeased   = fault.Conflictf(rotation.CodeInProgress, "another rotation of this link is running")
)

func rotationSK(linkID, id string) string  { return "ROTATION#" + linkID + "#" + id }
func rotationLeaseSK(linkID string) string { return "ROTLEASE#" + linkID }

// RotationJournalShardKey names the index partitions of unfinished journals.
func RotationJournalShardKey(shard int) string { return fmt.Sprintf("ROTJOURNAL#%d", shard) }

type rotationItem struct {
	Type string `json:"type"`
	rotation.Rotation
}

func rotationItemOf(r rotation.Rotation) (map[string]types.AttributeValue, error) {
	keys := map[string]string{attrPK: orgPK(r.OrgID), attrSK: rotationSK(r.LinkID, r.ID)}
	if !r.Finished() {
		keys[attrGSI2PK] = RotationJournalShardKey(shardOf(r.LinkID))
		keys[attrGSI2SK] = r.NextAttemptAt.UTC().Format(auditTimeFormat) + "#" + r.OrgID + "#" + r.LinkID + "#" + r.ID
	}
	item, err := marshal(rotationItem{Type: "rotation", Rotation: r}, keys)
	if err != nil {
		return nil, fmt.Errorf("encode rotation %s: %w", r.ID, err)
	}
	return item, nil
}

// CreateRotation writes a new journal.
func (s *Store) CreateRotation(ctx context.Context, r rotation.Rotation) error {
	item, err := rotationItemOf(r)
	if err != nil {
		return err
	}
	_, err = s.db.PutItem(ctx, &dynamodb.PutItemInput{
		TableName: &s.table, Item: item, ConditionExpression: aws.String("attribute_not_exists(PK)"),
	})
	if isConditionFailed(err) {
		return errRotationExists
	}
	if err != nil {
		return fmt.Errorf("create rotation %s: %w", r.ID, err)
	}
	return nil
}

// SaveRotation replaces the journal if it is still at prevVersion; the
// index entry follows (gone once the rotation is finished).
func (s *Store) SaveRotation(ctx context.Context, r rotation.Rotation, prevVersion int64) error {
	item, err := rotationItemOf(r)
	if err != nil {
		return err
	}
	_, err = s.db.PutItem(ctx, &dynamodb.PutItemInput{
		TableName: &s.table, Item: item,
		ConditionExpression:       aws.String("#ver = :prev"),
		ExpressionAttributeNames:  map[string]string{"#ver": "version"},
		ExpressionAttributeValues: map[string]types.AttributeValue{":prev": num(prevVersion)},
	})
	if isConditionFailed(err) {
		return errRotationChanged
	}
	if err != nil {
		return fmt.Errorf("save rotation %s: %w", r.ID, err)
	}
	return nil
}

// GetRotation reads one journal.
func (s *Store) GetRotation(ctx context.Context, orgID, linkID, id string) (rotation.Rotation, error) {
	var it rotationItem
	if err := s.get(ctx, orgPK(orgID), rotationSK(linkID, id), &it, errRotationNotFound); err != nil {
		return rotation.Rotation{}, err
	}
	return it.Rotation, nil
}

// ListRotations pages through a link's journals, newest first (rotation
// ids start with their time).
func (s *Store) ListRotations(ctx context.Context, orgID, linkID string, p tenancy.Page) ([]rotation.Rotation, string, error) {
	in := queryPrefix(orgPK(orgID), "ROTATION#"+linkID+"#")
	in.ScanIndexForward = aws.Bool(false)
	limit := p.Limit
	if limit <= 0 {
		limit = 50
	}
	items, next, err := s.query(ctx, in, attrPK, orgPK(orgID), page{limit, p.After})
	if err != nil {
		return nil, "", err
	}
	out := make([]rotation.Rotation, 0, len(items))
	for _, it := range items {
		var ri rotationItem
		if err := unmarshal(it, &ri); err != nil {
			return nil, "", fmt.Errorf("decode rotation: %w", err)
		}
		out = append(out, ri.Rotation)
	}
	return out, next, nil
}

// DueRotations reads up to limit unfinished journals whose next attempt
// is due by now, from every index shard.
func (s *Store) DueRotations(ctx context.Context, now time.Time, limit int) ([]rotation.Rotation, error) {
	// '$' sorts right after '#': every key of a time up to now is below it.
	upper := now.UTC().Format(auditTimeFormat) + "$"
	var out []rotation.Rotation
	for shard := 0; shard < linkShards && len(out) < limit; shard++ {
		pk := RotationJournalShardKey(shard)
		after := ""
		for len(out) < limit {
			in := &dynamodb.QueryInput{
				IndexName:                 aws.String(indexGSI2),
				KeyConditionExpression:    aws.String("#pk = :pk AND #sk < :upper"),
				ExpressionAttributeNames:  map[string]string{"#pk": attrGSI2PK, "#sk": attrGSI2SK},
				ExpressionAttributeValues: map[string]types.AttributeValue{":pk": str(pk), ":upper": str(upper)},
			}
			items, next, err := s.query(ctx, in, attrGSI2PK, pk, page{limit: min(100, limit-len(out)), after: after})
			if err != nil {
				return nil, err
			}
			for _, it := range items {
				var ri rotationItem
				if err := unmarshal(it, &ri); err != nil {
					return nil, fmt.Errorf("decode rotation: %w", err)
				}
				out = append(out, ri.Rotation)
			}
			if next == "" {
				break
			}
			after = next
		}
	}
	return out, nil
}

// AcquireRotationLease takes the link's rotation lease for rotationID until
// expires: when no lease exists, the present one has run out, or it is
// already this rotation's (a resumed run). Otherwise fault Conflict
// "rotation_in_progress".
func (s *Store) AcquireRotationLease(ctx context.Context, orgID, linkID, rotationID string, now, expires time.Time) error {
	item := map[string]types.AttributeValue{
		attrPK: str(orgPK(orgID)), attrSK: str(rotationLeaseSK(linkID)),
		"type": str("rotationLease"), "rotationId": str(rotationID),
		"leaseUntilMs": num(expires.UnixMilli()),
		// TTL removes a lease left behind, a day after it ran out.
		attrExpires: num(expires.Add(24 * time.Hour).Unix()),
	}
	_, err := s.db.PutItem(ctx, &dynamodb.PutItemInput{
		TableName: &s.table, Item: item,
		ConditionExpression:       aws.String("attribute_not_exists(PK) OR #rot = :rot OR #until < :now"),
		ExpressionAttributeNames:  map[string]string{"#rot": "rotationId", "#until": "leaseUntilMs"},
		ExpressionAttributeValues: map[string]types.AttributeValue{":rot": str(rotationID), ":now": num(now.UnixMilli())},
	})
	if isConditionFailed(err) {
		return errRotationLeased
	}
	if err != nil {
		return fmt.Errorf("take rotation lease of %s: %w", linkID, err)
	}
	return nil
}

// ReleaseRotationLease gives the lease up if rotationID still holds it.
func (s *Store) ReleaseRotationLease(ctx context.Context, orgID, linkID, rotationID string) error {
	_, err := s.db.DeleteItem(ctx, &dynamodb.DeleteItemInput{
		TableName: &s.table, Key: key(orgPK(orgID), rotationLeaseSK(linkID)),
		ConditionExpression:       aws.String("#rot = :rot"),
		ExpressionAttributeNames:  map[string]string{"#rot": "rotationId"},
		ExpressionAttributeValues: map[string]types.AttributeValue{":rot": str(rotationID)},
	})
	if err != nil && !isConditionFailed(err) {
		return fmt.Errorf("release rotation lease of %s: %w", linkID, err)
	}
	return nil
}

// UpdateRotatedLink records a rotated key on the link: the masked key id,
// keyCreatedAt, the rotation dates (and the rotation index entry), the
// warnings and the credentials claim, if the link is still at prev.Version.
// Nothing else of the link changes.
func (s *Store) UpdateRotatedLink(ctx context.Context, l links.Link, prev links.Link, rec, prevRec links.Record) error {
	return s.writeCredentials(ctx, "record rotated key of "+l.ID, l, prev, rec, prevRec, map[string]any{
		"credentials": l.Credentials, "keyCreatedAt": l.KeyCreatedAt, "rotation": l.Rotation, "warnings": l.Warnings,
	})
}
