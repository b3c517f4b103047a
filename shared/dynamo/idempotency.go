package dynamo

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/dflow-sh/cloud-accounts/shared/api"
)

var _ api.IdempotencyStore = (*Idempotency)(nil)

// Idempotency keeps Idempotency-Key records in the table, expiring by TTL.
type Idempotency struct {
	store *Store
	now   func() time.Time
}

// NewIdempotency returns the idempotency records of store.
func NewIdempotency(store *Store, now func() time.Time) *Idempotency {
	if now == nil {
		now = time.Now
	}
	return &Idempotency{store: store, now: now}
}

const idemSK = "#IDEMPOTENCY"

type idemItem struct {
	Type        string              `json:"type"`
	Fingerprint string              `json:"fingerprint"`
	State       string              `json:"state"`
	LockedUntil int64               `json:"lockedUntil"`
	Response    *api.StoredResponse `json:"response,omitempty"`
	ExpiresAt   int64               `json:"expiresAt"`
}

// The client's key is hashed: it is free text and may be long.
func idemPK(k api.IdempotencyKey) string {
	h := sha256.Sum256([]byte(k.Key))
	return "IDEM#" + k.OrgID + "#" + k.UserID + "#" + hex.EncodeToString(h[:])
}

// Begin claims a key, or tells why it cannot.
func (d *Idempotency) Begin(ctx context.Context, k api.IdempotencyKey, fingerprint string, lease time.Duration) (*api.StoredResponse, error) {
	now := d.now()
	item, err := marshal(idemItem{
		Type: "idempotency", Fingerprint: fingerprint, State: "pending",
		LockedUntil: now.Add(lease).Unix(), ExpiresAt: now.Add(api.IdempotencyTTL).Unix(),
	}, map[string]string{attrPK: idemPK(k), attrSK: idemSK})
	if err != nil {
		return nil, err
	}
	// Claim it when new, when expired (TTL deletes late), or when a pending
	// claim's lease ran out (its request died) for the same request.
	_, err = d.store.db.PutItem(ctx, &dynamodb.PutItemInput{
		TableName: &d.store.table,
		Item:      item,
		ConditionExpression: aws.String("attribute_not_exists(PK) OR #exp < :now OR " +
			"(#state = :pending AND #lock < :now AND #fp = :fp)"),
		ExpressionAttributeNames: map[string]string{"#state": "state", "#exp": "expiresAt", "#lock": "lockedUntil", "#fp": "fingerprint"},
		ExpressionAttributeValues: map[string]types.AttributeValue{
			":now": num(now.Unix()), ":pending": str("pending"), ":fp": str(fingerprint),
		},
	})
	if err == nil {
		return nil, nil
	}
	if !isConditionFailed(err) {
		return nil, fmt.Errorf("claim idempotency key: %w", err)
	}
	var cur idemItem
	// Gone in between (expired and deleted): the client may simply retry.
	if err := d.store.get(ctx, idemPK(k), idemSK, &cur, api.ErrInProgress); err != nil {
		return nil, err
	}
	switch {
	case cur.Fingerprint != fingerprint:
		return nil, api.ErrKeyReused
	case cur.State != "done" || cur.Response == nil:
		return nil, api.ErrInProgress
	}
	return cur.Response, nil
}

// Finish stores the response for replay.
func (d *Idempotency) Finish(ctx context.Context, k api.IdempotencyKey, resp api.StoredResponse) error {
	r, err := marshalValue(resp)
	if err != nil {
		return err
	}
	_, err = d.store.db.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName:                 &d.store.table,
		Key:                       key(idemPK(k), idemSK),
		UpdateExpression:          aws.String("SET #state = :done, #response = :r"),
		ExpressionAttributeNames:  map[string]string{"#state": "state", "#response": "response"},
		ExpressionAttributeValues: map[string]types.AttributeValue{":done": str("done"), ":r": r},
	})
	if err != nil {
		return fmt.Errorf("finish idempotency key: %w", err)
	}
	return nil
}

// Abandon deletes a pending claim so the client can retry.
func (d *Idempotency) Abandon(ctx context.Context, k api.IdempotencyKey) error {
	_, err := d.store.db.DeleteItem(ctx, &dynamodb.DeleteItemInput{
		TableName:                 &d.store.table,
		Key:                       key(idemPK(k), idemSK),
		ConditionExpression:       aws.String("#state = :pending"),
		ExpressionAttributeNames:  map[string]string{"#state": "state"},
		ExpressionAttributeValues: map[string]types.AttributeValue{":pending": str("pending")},
	})
	if err != nil && !isConditionFailed(err) {
		return fmt.Errorf("abandon idempotency key: %w", err)
	}
	return nil
}
