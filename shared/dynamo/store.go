// Package dynamo is the DynamoDB adapter: one single table holds every
// tenant's metadata. Keys are designed from the access patterns; every read
// is a GetItem, a Query or a BatchGetItem, never a Scan. SDK errors become
// domain errors here.
package dynamo

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/feature/dynamodb/attributevalue"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/smithy-go"

	"github.com/dflow-sh/cloud-accounts/shared/fault"
)

// API is the part of the DynamoDB client the store uses; tests wrap it to
// inject faults.
type API interface {
	GetItem(ctx context.Context, in *dynamodb.GetItemInput, optFns ...func(*dynamodb.Options)) (*dynamodb.GetItemOutput, error)
	PutItem(ctx context.Context, in *dynamodb.PutItemInput, optFns ...func(*dynamodb.Options)) (*dynamodb.PutItemOutput, error)
	UpdateItem(ctx context.Context, in *dynamodb.UpdateItemInput, optFns ...func(*dynamodb.Options)) (*dynamodb.UpdateItemOutput, error)
	DeleteItem(ctx context.Context, in *dynamodb.DeleteItemInput, optFns ...func(*dynamodb.Options)) (*dynamodb.DeleteItemOutput, error)
	Query(ctx context.Context, in *dynamodb.QueryInput, optFns ...func(*dynamodb.Options)) (*dynamodb.QueryOutput, error)
	BatchGetItem(ctx context.Context, in *dynamodb.BatchGetItemInput, optFns ...func(*dynamodb.Options)) (*dynamodb.BatchGetItemOutput, error)
	TransactWriteItems(ctx context.Context, in *dynamodb.TransactWriteItemsInput, optFns ...func(*dynamodb.Options)) (*dynamodb.TransactWriteItemsOutput, error)
}

var _ API = (*dynamodb.Client)(nil)

// Store is the table.
type Store struct {
	db    API
	table string
}

// New returns a store over table.
func New(db API, table string) *Store { return &Store{db: db, table: table} }

// Key builders: one place spells every key.
func orgPK(orgID string) string     { return "ORG#" + orgID }
func userPK(userID string) string   { return "USER#" + userID }
func auditPK(orgID string) string   { return "AUDIT#" + orgID }
func memberSK(userID string) string { return "MEMBER#" + userID }
func roleSK(roleID string) string   { return "ROLE#" + roleID }
func roleNameSK(name string) string { return "ROLENAME#" + strings.ToLower(name) }

const orgSK = "#ORG"

func key(pk, sk string) map[string]types.AttributeValue {
	return map[string]types.AttributeValue{
		attrPK: &types.AttributeValueMemberS{Value: pk},
		attrSK: &types.AttributeValueMemberS{Value: sk},
	}
}

func (s *Store) get(ctx context.Context, pk, sk string, out any, notFound error) error {
	res, err := s.db.GetItem(ctx, &dynamodb.GetItemInput{
		TableName:      &s.table,
		Key:            key(pk, sk),
		ConsistentRead: aws.Bool(true),
	})
	if err != nil {
		return fmt.Errorf("get %s %s: %w", pk, sk, err)
	}
	if res.Item == nil {
		return notFound
	}
	if err := unmarshal(res.Item, out); err != nil {
		return fmt.Errorf("decode %s %s: %w", pk, sk, err)
	}
	return nil
}

// page is a query's position, opaque to clients (the API layer seals it).
type page struct {
	limit int
	after string
}

// query runs one page of a query and returns the next position. The start
// key must lie in the partition queried, so a forged position cannot reach
// another tenant's items.
func (s *Store) query(ctx context.Context, in *dynamodb.QueryInput, partitionAttr, partition string, p page) ([]map[string]types.AttributeValue, string, error) {
	in.TableName = &s.table
	in.Limit = aws.Int32(int32(p.limit))
	if p.after != "" {
		var k map[string]string
		if err := json.Unmarshal([]byte(p.after), &k); err != nil || k[partitionAttr] != partition {
			return nil, "", fault.Field("cursor", "is not a cursor this list gave out")
		}
		start := make(map[string]types.AttributeValue, len(k))
		for name, v := range k {
			start[name] = &types.AttributeValueMemberS{Value: v}
		}
		in.ExclusiveStartKey = start
	}
	res, err := s.db.Query(ctx, in)
	if err != nil {
		var ae smithy.APIError
		if p.after != "" && errors.As(err, &ae) && ae.ErrorCode() == "ValidationException" {
			return nil, "", fault.Field("cursor", "is not a cursor this list gave out")
		}
		return nil, "", fmt.Errorf("query %s: %w", partition, err)
	}
	next := ""
	if len(res.LastEvaluatedKey) > 0 {
		k := make(map[string]string, len(res.LastEvaluatedKey))
		for name, v := range res.LastEvaluatedKey {
			if sv, ok := v.(*types.AttributeValueMemberS); ok {
				k[name] = sv.Value
			}
		}
		b, _ := json.Marshal(k)
		next = string(b)
	}
	return res.Items, next, nil
}

func queryPrefix(pk, skPrefix string) *dynamodb.QueryInput {
	return &dynamodb.QueryInput{
		KeyConditionExpression: aws.String("#pk = :pk AND begins_with(#sk, :prefix)"),
		ExpressionAttributeNames: map[string]string{
			"#pk": attrPK, "#sk": attrSK,
		},
		ExpressionAttributeValues: map[string]types.AttributeValue{
			":pk":     &types.AttributeValueMemberS{Value: pk},
			":prefix": &types.AttributeValueMemberS{Value: skPrefix},
		},
		ConsistentRead: aws.Bool(true),
	}
}

func marshal(v any, keys map[string]string) (map[string]types.AttributeValue, error) {
	item, err := attributevalue.MarshalMapWithOptions(v, useJSONTags)
	if err != nil {
		return nil, err
	}
	for k, val := range keys {
		item[k] = &types.AttributeValueMemberS{Value: val}
	}
	return item, nil
}

// transact runs a transaction and maps a condition failure of item i to
// the domain error reasons[i]; other cancellations are internal.
func (s *Store) transact(ctx context.Context, what string, items []types.TransactWriteItem, reasons map[int]error) error {
	for i := range items {
		switch {
		case items[i].Put != nil:
			items[i].Put.TableName = &s.table
		case items[i].Update != nil:
			items[i].Update.TableName = &s.table
		case items[i].Delete != nil:
			items[i].Delete.TableName = &s.table
		case items[i].ConditionCheck != nil:
			items[i].ConditionCheck.TableName = &s.table
		}
	}
	_, err := s.db.TransactWriteItems(ctx, &dynamodb.TransactWriteItemsInput{TransactItems: items})
	if err == nil {
		return nil
	}
	var tce *types.TransactionCanceledException
	if errors.As(err, &tce) {
		for i, r := range tce.CancellationReasons {
			if aws.ToString(r.Code) == "ConditionalCheckFailed" {
				if e, ok := reasons[i]; ok {
					return e
				}
			}
		}
	}
	return fmt.Errorf("%s: %w", what, err)
}

func isConditionFailed(err error) bool {
	var ccf *types.ConditionalCheckFailedException
	return errors.As(err, &ccf)
}

func str(v string) types.AttributeValue { return &types.AttributeValueMemberS{Value: v} }

func num(v int64) types.AttributeValue {
	return &types.AttributeValueMemberN{Value: fmt.Sprint(v)}
}

// Items use the domain types' json names, so the table reads like the API.
func useJSONTags(o *attributevalue.EncoderOptions) { o.TagKey = "json" }

func useJSONTagsDecoding(o *attributevalue.DecoderOptions) { o.TagKey = "json" }

func marshalValue(v any) (types.AttributeValue, error) {
	return attributevalue.MarshalWithOptions(v, useJSONTags)
}

func unmarshal(item map[string]types.AttributeValue, out any) error {
	return attributevalue.UnmarshalMapWithOptions(item, out, useJSONTagsDecoding)
}
