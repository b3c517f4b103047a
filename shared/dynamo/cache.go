package dynamo

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
)

// Cache keeps discovery answers per link for a few minutes. Entries expire
// by TTL, which deletes late (and never on emulators): reads check expiry.
type Cache struct {
	store *Store
	now   func() time.Time
}

// NewCache returns the cache over store.
func NewCache(store *Store, now func() time.Time) *Cache {
	if now == nil {
		now = time.Now
	}
	return &Cache{store: store, now: now}
}

// maxCached keeps an answer well under DynamoDB's 400 KB item limit; larger
// answers are simply not cached.
const maxCached = 300 << 10

func cachePK(linkID string) string { return "CACHE#" + linkID }

// Get reads an entry into out; ok is false when absent or expired.
func (c *Cache) Get(ctx context.Context, linkID, key string, out any) (time.Time, bool, error) {
	res, err := c.store.db.GetItem(ctx, &dynamodb.GetItemInput{
		TableName: &c.store.table,
		Key:       map[string]types.AttributeValue{attrPK: str(cachePK(linkID)), attrSK: str(key)},
	})
	if err != nil {
		return time.Time{}, false, fmt.Errorf("read cache %s: %w", key, err)
	}
	if res.Item == nil {
		return time.Time{}, false, nil
	}
	var it struct {
		Data      string `json:"data"`
		CachedAt  int64  `json:"cachedAtNs"`
		ExpiresAt int64  `json:"expiresAt"`
	}
	if err := unmarshal(res.Item, &it); err != nil {
		return time.Time{}, false, fmt.Errorf("decode cache %s: %w", key, err)
	}
	if it.ExpiresAt <= c.now().Unix() {
		return time.Time{}, false, nil
	}
	if err := json.Unmarshal([]byte(it.Data), out); err != nil {
		// A shape from an older version: treat as a miss.
		return time.Time{}, false, nil
	}
	return time.Unix(0, it.CachedAt).UTC(), true, nil
}

// Put stores v for ttl.
func (c *Cache) Put(ctx context.Context, linkID, key string, v any, ttl time.Duration) error {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("encode cache %s: %w", key, err)
	}
	if len(b) > maxCached {
		return nil
	}
	now := c.now()
	_, err = c.store.db.PutItem(ctx, &dynamodb.PutItemInput{
		TableName: &c.store.table,
		Item: map[string]types.AttributeValue{
			attrPK: str(cachePK(linkID)), attrSK: str(key), "type": str("cache"),
			"data":       str(string(b)),
			"cachedAtNs": &types.AttributeValueMemberN{Value: strconv.FormatInt(now.UnixNano(), 10)},
			attrExpires:  num(now.Add(ttl).Unix()),
		},
	})
	if err != nil {
		return fmt.Errorf("write cache %s: %w", key, err)
	}
	return nil
}
