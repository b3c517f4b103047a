package dynamo

import (
	"context"
	"fmt"
	"hash/fnv"
	"sort"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/dflow-sh/cloud-accounts/shared/fault"
	"github.com/dflow-sh/cloud-accounts/shared/links"
	"github.com/dflow-sh/cloud-accounts/shared/tenancy"
)

var _ links.Store = (*Store)(nil)

// Sweeps read links through sharded index partitions, so neither the health
// sweep nor the rotation sweep is bound to one partition's throughput.
const linkShards = 4

var (
	errLinkNotFound = fault.NotFoundf("account_not_found", "no such linked account")
	errLinkName     = fault.Conflictf("account_name_taken", "a linked account with this name already exists in the organisation")
	errLinkCreds    = fault.Conflictf("account_already_linked", "these credentials are already linked in the organisation")
)

func accountSK(id string) string       { return "ACCOUNT#" + id }
func accountNameSK(name string) string { return "ACCOUNTNAME#" + strings.ToLower(name) }
func accountCredSK(key string) string  { return "ACCOUNTCRED#" + key }
func usesPrefix(accountID string) string {
	return "USES#" + accountID + "#"
}

const externalIDSK = "#EXTERNALID"

func shardOf(id string) int {
	h := fnv.New32a()
	h.Write([]byte(id))
	return int(h.Sum32() % linkShards)
}

// LinkShardKey and RotationShardKey name the index partitions sweeps read.
func LinkShardKey(shard int) string     { return fmt.Sprintf("LINKS#%d", shard) }
func RotationShardKey(shard int) string { return fmt.Sprintf("ROTATION#%d", shard) }

type linkItem struct {
	Type string `json:"type"`
	links.Link
	OrgID      string `json:"orgId"`
	SecretName string `json:"secretName"`
	CredKey    string `json:"credKey"`
}

type pointerItem struct {
	Type      string `json:"type"`
	AccountID string `json:"accountId"`
}

func (s *Store) linkItem(l links.Link, rec links.Record) (map[string]types.AttributeValue, error) {
	keys := map[string]string{
		attrPK: orgPK(l.OrgID), attrSK: accountSK(l.ID),
		attrGSI1PK: LinkShardKey(shardOf(l.ID)), attrGSI1SK: l.OrgID + "#" + l.ID,
	}
	if due := rotationDue(l); due != "" {
		keys[attrGSI2PK], keys[attrGSI2SK] = RotationShardKey(shardOf(l.ID)), due
	}
	return marshal(linkItem{Type: "account", Link: l, OrgID: l.OrgID, SecretName: rec.SecretName, CredKey: rec.CredKey}, keys)
}

// rotationDue is the sparse rotation index's sort key: only links with
// rotation on are in the index, ordered by when they fall due.
func rotationDue(l links.Link) string {
	if l.Rotation == nil || !l.Rotation.Enabled || l.Rotation.NextRotationAt == nil {
		return ""
	}
	return l.Rotation.NextRotationAt.UTC().Format(auditTimeFormat) + "#" + l.OrgID + "#" + l.ID
}

func pointer(orgID, sk, typ, accountID string) (map[string]types.AttributeValue, error) {
	return marshal(pointerItem{Type: typ, AccountID: accountID}, map[string]string{attrPK: orgPK(orgID), attrSK: sk})
}

// ExternalID returns the organisation's external id, storing fresh the first time.
func (s *Store) ExternalID(ctx context.Context, orgID string, fresh string) (string, error) {
	item := map[string]types.AttributeValue{
		attrPK: str(orgPK(orgID)), attrSK: str(externalIDSK),
		"type": str("externalId"), "externalId": str(fresh),
	}
	_, err := s.db.PutItem(ctx, &dynamodb.PutItemInput{
		TableName: &s.table, Item: item, ConditionExpression: aws.String("attribute_not_exists(PK)"),
	})
	if err == nil {
		return fresh, nil
	}
	if !isConditionFailed(err) {
		return "", fmt.Errorf("store external id of %s: %w", orgID, err)
	}
	var it struct {
		ExternalID string `json:"externalId"`
	}
	if err := s.get(ctx, orgPK(orgID), externalIDSK, &it, fault.NotFoundf("external_id_not_found", "no external id")); err != nil {
		return "", err
	}
	return it.ExternalID, nil
}

// CreateLink writes a link with its name and credentials claims at once.
func (s *Store) CreateLink(ctx context.Context, l links.Link, rec links.Record) error {
	li, err := s.linkItem(l, rec)
	if err != nil {
		return err
	}
	ni, err := pointer(l.OrgID, accountNameSK(l.Name), "accountName", l.ID)
	if err != nil {
		return err
	}
	ci, err := pointer(l.OrgID, accountCredSK(rec.CredKey), "accountCredentials", l.ID)
	if err != nil {
		return err
	}
	return s.transact(ctx, "create link "+l.ID, []types.TransactWriteItem{putNew(li), putNew(ni), putNew(ci)},
		map[int]error{1: errLinkName, 2: errLinkCreds})
}

// GetLink reads a link.
func (s *Store) GetLink(ctx context.Context, orgID, id string) (links.Link, links.Record, error) {
	var it linkItem
	if err := s.get(ctx, orgPK(orgID), accountSK(id), &it, errLinkNotFound); err != nil {
		return links.Link{}, links.Record{}, err
	}
	it.Link.OrgID = it.OrgID
	return it.Link, links.Record{SecretName: it.SecretName, CredKey: it.CredKey}, nil
}

// ListLinks pages through an organisation's links.
func (s *Store) ListLinks(ctx context.Context, orgID string, f links.Filter, p tenancy.Page) ([]links.Link, string, error) {
	in := queryPrefix(orgPK(orgID), "ACCOUNT#")
	var filters []string
	if f.Provider != "" {
		filters = append(filters, "provider = :provider")
		in.ExpressionAttributeValues[":provider"] = str(f.Provider)
	}
	if f.Environment != "" {
		filters = append(filters, "(contains(environments, :env) OR contains(environments, :all))")
		in.ExpressionAttributeValues[":env"] = str(f.Environment)
		in.ExpressionAttributeValues[":all"] = str(links.AllEnvironments)
	}
	if len(filters) > 0 {
		in.FilterExpression = aws.String(strings.Join(filters, " AND "))
	}
	items, next, err := s.query(ctx, in, attrPK, orgPK(orgID), page{p.Limit, p.After})
	if err != nil {
		return nil, "", err
	}
	out := make([]links.Link, 0, len(items))
	for _, it := range items {
		var li linkItem
		if err := unmarshal(it, &li); err != nil {
			return nil, "", fmt.Errorf("decode link: %w", err)
		}
		li.Link.OrgID = li.OrgID
		out = append(out, li.Link)
	}
	return out, next, nil
}

// update builds an UpdateItem of the given fields, each as the link's JSON
// names them; nil values are removed.
type update struct {
	sets, removes []string
	names         map[string]string
	values        map[string]types.AttributeValue
}

func newUpdate() *update {
	return &update{names: map[string]string{}, values: map[string]types.AttributeValue{}}
}

func (u *update) set(name string, v any) error {
	ph := fmt.Sprintf("#f%d", len(u.names))
	u.names[ph] = name
	if v == nil {
		u.removes = append(u.removes, ph)
		return nil
	}
	av, err := marshalValue(v)
	if err != nil {
		return fmt.Errorf("encode %s: %w", name, err)
	}
	if _, isNull := av.(*types.AttributeValueMemberNULL); isNull {
		u.removes = append(u.removes, ph)
		return nil
	}
	vp := ":" + ph[1:]
	u.values[vp] = av
	u.sets = append(u.sets, ph+" = "+vp)
	return nil
}

func (u *update) expression() string {
	sort.Strings(u.sets)
	expr := ""
	if len(u.sets) > 0 {
		expr = "SET " + strings.Join(u.sets, ", ")
	}
	if len(u.removes) > 0 {
		expr += " REMOVE " + strings.Join(u.removes, ", ")
	}
	return strings.TrimSpace(expr)
}

func (u *update) item(pk, sk, condition string, condValues map[string]types.AttributeValue) types.TransactWriteItem {
	for k, v := range condValues {
		u.values[k] = v
	}
	up := &types.Update{
		Key: key(pk, sk), UpdateExpression: aws.String(u.expression()),
		ExpressionAttributeNames: u.names,
	}
	if len(u.values) > 0 {
		up.ExpressionAttributeValues = u.values
	}
	if condition != "" {
		up.ConditionExpression = aws.String(condition)
	}
	return types.TransactWriteItem{Update: up}
}

func (u *update) setAll(fields map[string]any) error {
	names := make([]string, 0, len(fields))
	for n := range fields {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		if err := u.set(n, fields[n]); err != nil {
			return err
		}
	}
	return nil
}

func (u *update) rotationIndex(l links.Link) error {
	if due := rotationDue(l); due != "" {
		return u.setAll(map[string]any{attrGSI2PK: RotationShardKey(shardOf(l.ID)), attrGSI2SK: due})
	}
	return u.setAll(map[string]any{attrGSI2PK: nil, attrGSI2SK: nil})
}

func versioned(prev int64) (string, map[string]types.AttributeValue) {
	return "attribute_exists(PK) AND #ver = :prevVersion", map[string]types.AttributeValue{":prevVersion": num(prev)}
}

// UpdateLink writes the fields a PATCH may change.
func (s *Store) UpdateLink(ctx context.Context, l links.Link, prev links.Link) error {
	u := newUpdate()
	err := u.setAll(map[string]any{
		"name": l.Name, "environments": l.Environments, "defaultRegion": l.DefaultRegion,
		"rotation": l.Rotation, "updatedAt": l.UpdatedAt.Format(time.RFC3339Nano),
	})
	if err == nil {
		err = u.rotationIndex(l)
	}
	if err != nil {
		return err
	}
	u.names["#ver"] = "version"
	u.sets = append(u.sets, "#ver = :version")
	u.values[":version"] = num(l.Version)
	cond, vals := versioned(prev.Version)
	items := []types.TransactWriteItem{u.item(orgPK(l.OrgID), accountSK(l.ID), cond, vals)}
	reasons := map[int]error{0: errConcurrent}
	if !strings.EqualFold(l.Name, prev.Name) {
		ni, err := pointer(l.OrgID, accountNameSK(l.Name), "accountName", l.ID)
		if err != nil {
			return err
		}
		items = append(items, types.TransactWriteItem{Delete: &types.Delete{Key: key(orgPK(l.OrgID), accountNameSK(prev.Name))}}, putNew(ni))
		reasons[2] = errLinkName
	}
	return s.transact(ctx, "update link "+l.ID, items, reasons)
}

func credentialFields(l links.Link) map[string]any {
	return map[string]any{
		"credentials": l.Credentials, "awsAccountId": l.AWSAccountID, "principalArn": l.PrincipalARN,
		"partition": l.Partition, "warnings": l.Warnings, "keyCreatedAt": l.KeyCreatedAt, "rotation": l.Rotation,
	}
}

func healthFields(l links.Link) map[string]any {
	return map[string]any{
		"status": l.Status, "lastError": l.LastError, "lastValidatedAt": l.LastValidatedAt.Format(time.RFC3339Nano),
	}
}

// ReplaceCredentials records new credentials, moving the credentials claim.
func (s *Store) ReplaceCredentials(ctx context.Context, l links.Link, prev links.Link, rec, prevRec links.Record) error {
	fields := credentialFields(l)
	for k, v := range healthFields(l) {
		fields[k] = v
	}
	return s.writeCredentials(ctx, "replace credentials of "+l.ID, l, prev, rec, prevRec, fields)
}

// writeCredentials sets fields (and the credentials claim, the rotation
// index and the version) on a link still at prev.Version, moving the
// ACCOUNTCRED# claim when the credentials changed.
func (s *Store) writeCredentials(ctx context.Context, what string, l, prev links.Link, rec, prevRec links.Record, fields map[string]any) error {
	u := newUpdate()
	fields["credKey"] = rec.CredKey
	fields["updatedAt"] = l.UpdatedAt.Format(time.RFC3339Nano)
	err := u.setAll(fields)
	if err == nil {
		err = u.rotationIndex(l)
	}
	if err != nil {
		return err
	}
	u.names["#ver"] = "version"
	u.sets = append(u.sets, "#ver = :version")
	u.values[":version"] = num(l.Version)
	cond, vals := versioned(prev.Version)
	items := []types.TransactWriteItem{u.item(orgPK(l.OrgID), accountSK(l.ID), cond, vals)}
	reasons := map[int]error{0: errConcurrent}
	if rec.CredKey != prevRec.CredKey {
		ci, err := pointer(l.OrgID, accountCredSK(rec.CredKey), "accountCredentials", l.ID)
		if err != nil {
			return err
		}
		items = append(items, types.TransactWriteItem{Delete: &types.Delete{Key: key(orgPK(l.OrgID), accountCredSK(prevRec.CredKey))}}, putNew(ci))
		reasons[2] = errLinkCreds
	}
	return s.transact(ctx, what, items, reasons)
}

// SetHealth records a check's outcome; it leaves everything else alone.
func (s *Store) SetHealth(ctx context.Context, l links.Link) error {
	u := newUpdate()
	fields := healthFields(l)
	// A check also refreshes what AWS says of the principal.
	for k, v := range map[string]any{"warnings": l.Warnings, "credentials": l.Credentials} {
		fields[k] = v
	}
	if err := u.setAll(fields); err != nil {
		return err
	}
	ti := u.item(orgPK(l.OrgID), accountSK(l.ID), "attribute_exists(PK)", nil)
	_, err := s.db.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName: &s.table, Key: ti.Update.Key, UpdateExpression: ti.Update.UpdateExpression,
		ConditionExpression:       ti.Update.ConditionExpression,
		ExpressionAttributeNames:  ti.Update.ExpressionAttributeNames,
		ExpressionAttributeValues: ti.Update.ExpressionAttributeValues,
	})
	if isConditionFailed(err) {
		return errLinkNotFound
	}
	if err != nil {
		return fmt.Errorf("set health of %s: %w", l.ID, err)
	}
	return nil
}

// DeleteLink removes a link and its claims.
func (s *Store) DeleteLink(ctx context.Context, l links.Link, rec links.Record) error {
	items := []types.TransactWriteItem{
		{Delete: &types.Delete{
			Key:                       key(orgPK(l.OrgID), accountSK(l.ID)),
			ConditionExpression:       aws.String("#ver = :v"),
			ExpressionAttributeNames:  map[string]string{"#ver": "version"},
			ExpressionAttributeValues: map[string]types.AttributeValue{":v": num(l.Version)},
		}},
		{Delete: &types.Delete{Key: key(orgPK(l.OrgID), accountNameSK(l.Name))}},
		{Delete: &types.Delete{Key: key(orgPK(l.OrgID), accountCredSK(rec.CredKey))}},
	}
	return s.transact(ctx, "delete link "+l.ID, items, map[int]error{0: errConcurrent})
}

// LinkUsage lists what still uses a link: resources that use one write a
// USES#<account># item beside it in the organisation's partition.
func (s *Store) LinkUsage(ctx context.Context, orgID, id string) ([]links.Usage, error) {
	items, _, err := s.query(ctx, queryPrefix(orgPK(orgID), usesPrefix(id)), attrPK, orgPK(orgID), page{limit: 100})
	if err != nil {
		return nil, err
	}
	out := make([]links.Usage, 0, len(items))
	for _, it := range items {
		var u links.Usage
		if err := unmarshal(it, &u); err != nil {
			return nil, fmt.Errorf("decode usage: %w", err)
		}
		out = append(out, u)
	}
	return out, nil
}

// Taken reports whether a name or credentials are already linked.
func (s *Store) Taken(ctx context.Context, orgID, name, credKey string) (bool, bool, error) {
	res, err := s.db.BatchGetItem(ctx, &dynamodb.BatchGetItemInput{RequestItems: map[string]types.KeysAndAttributes{
		s.table: {Keys: []map[string]types.AttributeValue{
			key(orgPK(orgID), accountNameSK(name)), key(orgPK(orgID), accountCredSK(credKey)),
		}, ConsistentRead: aws.Bool(true)},
	}})
	if err != nil {
		return false, false, fmt.Errorf("check link claims: %w", err)
	}
	var nameTaken, credTaken bool
	for _, it := range res.Responses[s.table] {
		switch sk := it[attrSK].(*types.AttributeValueMemberS).Value; {
		case strings.HasPrefix(sk, "ACCOUNTNAME#"):
			nameTaken = true
		case strings.HasPrefix(sk, "ACCOUNTCRED#"):
			credTaken = true
		}
	}
	return nameTaken, credTaken, nil
}
