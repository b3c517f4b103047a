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
	"github.com/dflow-sh/cloud-accounts/shared/groups"
	"github.com/dflow-sh/cloud-accounts/shared/tenancy"
)

var _ groups.Store = (*Store)(nil)

// Security groups live in their organisation's partition:
//
//	SG#<id>                                        the group
//	SGNAME#<account>#<region>#<vpc>#<lower name>   name claim
//	SGUSE#<groupId>#<nodeId>                       a worker node uses the group
//	USES#<account>#securityGroup#<id>              the group uses the account
//
// Only group items start with "SG#".

// UsageKindSecurityGroup is the kind of a group's usage item, as
// links.Usage shows it when an account in use cannot be unlinked.
const UsageKindSecurityGroup = "securityGroup"

func groupSK(id string) string { return "SG#" + id }
func groupNameSK(accountID, region, vpcID, name string) string {
	return "SGNAME#" + accountID + "#" + region + "#" + vpcID + "#" + strings.ToLower(name)
}
func groupUsageSK(accountID, groupID string) string {
	return usesPrefix(accountID) + UsageKindSecurityGroup + "#" + groupID
}

// GroupUsePrefix starts the sort keys of the items saying which worker nodes
// use a security group.
func GroupUsePrefix(groupID string) string { return "SGUSE#" + groupID + "#" }

// GroupUseSK is the sort key (in the organisation's partition, ORG#<orgId>)
// of the item saying worker node nodeID uses security group groupID. Write
// it with GroupUseItems, delete it with GroupUnuseItem.
func GroupUseSK(groupID, nodeID string) string { return GroupUsePrefix(groupID) + nodeID }

// ErrGroupUnusable is the fault for a failed check of GroupUseItems: the
// group does not exist or is being deleted.
var ErrGroupUnusable = fault.Conflictf("security_group_unavailable", "the security group does not exist or is being deleted")

// GroupUseItems returns the two items a worker node's transaction adds when
// the node starts using a security group: a check that the group exists and
// is not being deleted (map its condition failure to ErrGroupUnusable), and
// the SGUSE item {type, nodeId, securityGroupId}. Store.transact fills in
// the table name.
func GroupUseItems(orgID, groupID, nodeID string) (check, put types.TransactWriteItem) {
	check = types.TransactWriteItem{ConditionCheck: &types.ConditionCheck{
		Key:                      key(orgPK(orgID), groupSK(groupID)),
		ConditionExpression:      aws.String("attribute_exists(PK) AND attribute_not_exists(#del)"),
		ExpressionAttributeNames: map[string]string{"#del": "deleting"},
	}}
	put = types.TransactWriteItem{Put: &types.Put{Item: map[string]types.AttributeValue{
		attrPK: str(orgPK(orgID)), attrSK: str(GroupUseSK(groupID, nodeID)),
		"type": str("securityGroupUse"), "nodeId": str(nodeID), "securityGroupId": str(groupID),
	}}}
	return check, put
}

// GroupUnuseItem removes a node's SGUSE item, in the node's transaction.
func GroupUnuseItem(orgID, groupID, nodeID string) types.TransactWriteItem {
	return types.TransactWriteItem{Delete: &types.Delete{Key: key(orgPK(orgID), GroupUseSK(groupID, nodeID))}}
}

type groupItem struct {
	Type string `json:"type"`
	groups.Group
	OrgID string `json:"orgId"`
}

type groupClaim struct {
	Type            string `json:"type"`
	SecurityGroupID string `json:"securityGroupId"`
}

type usageItem struct {
	Type string `json:"type"`
	Kind string `json:"kind"`
	ID   string `json:"id"`
}

var errGroupAccountGone = fault.NotFoundf("account_not_found", "no such linked account")

func groupRecord(g groups.Group) (map[string]types.AttributeValue, error) {
	item, err := marshal(groupItem{Type: "securityGroup", Group: g, OrgID: g.OrgID},
		map[string]string{attrPK: orgPK(g.OrgID), attrSK: groupSK(g.ID)})
	if err != nil {
		return nil, fmt.Errorf("encode security group %s: %w", g.ID, err)
	}
	// Computed on every read.
	delete(item, "warnings")
	return item, nil
}

func groupNameItem(g groups.Group) (map[string]types.AttributeValue, error) {
	return marshal(groupClaim{Type: "securityGroupName", SecurityGroupID: g.ID},
		map[string]string{attrPK: orgPK(g.OrgID), attrSK: groupNameSK(g.AccountID, g.Region, g.VPCID, g.Name)})
}

// CreateSecurityGroup writes a group with its name claim and its account's
// usage item, if the account is still linked.
func (s *Store) CreateSecurityGroup(ctx context.Context, g groups.Group) error {
	gi, err := groupRecord(g)
	if err != nil {
		return err
	}
	ni, err := groupNameItem(g)
	if err != nil {
		return err
	}
	ui, err := marshal(usageItem{Type: "usage", Kind: UsageKindSecurityGroup, ID: g.ID},
		map[string]string{attrPK: orgPK(g.OrgID), attrSK: groupUsageSK(g.AccountID, g.ID)})
	if err != nil {
		return err
	}
	items := []types.TransactWriteItem{
		putNew(gi), putNew(ni), putNew(ui),
		{ConditionCheck: &types.ConditionCheck{
			Key: key(orgPK(g.OrgID), accountSK(g.AccountID)), ConditionExpression: aws.String("attribute_exists(PK)"),
		}},
	}
	return s.transact(ctx, "create security group "+g.ID, items, map[int]error{1: groups.ErrNameTaken, 3: errGroupAccountGone})
}

func decodeGroup(item map[string]types.AttributeValue) (groups.Group, error) {
	var gi groupItem
	if err := unmarshal(item, &gi); err != nil {
		return groups.Group{}, fmt.Errorf("decode security group: %w", err)
	}
	gi.Group.OrgID = gi.OrgID
	return gi.Group, nil
}

// GetSecurityGroup reads a group.
func (s *Store) GetSecurityGroup(ctx context.Context, orgID, id string) (groups.Group, error) {
	var gi groupItem
	if err := s.get(ctx, orgPK(orgID), groupSK(id), &gi, groups.ErrNotFound); err != nil {
		return groups.Group{}, err
	}
	gi.Group.OrgID = gi.OrgID
	return gi.Group, nil
}

// ListSecurityGroups pages through an organisation's groups in id order,
// optionally of one account and/or region.
func (s *Store) ListSecurityGroups(ctx context.Context, orgID string, f groups.Filter, p tenancy.Page) ([]groups.Group, string, error) {
	in := queryPrefix(orgPK(orgID), "SG#")
	var filters []string
	if f.AccountID != "" {
		filters = append(filters, "accountId = :account")
		in.ExpressionAttributeValues[":account"] = str(f.AccountID)
	}
	if f.Region != "" {
		filters = append(filters, "#region = :region")
		in.ExpressionAttributeNames["#region"] = "region"
		in.ExpressionAttributeValues[":region"] = str(f.Region)
	}
	if len(filters) > 0 {
		in.FilterExpression = aws.String(strings.Join(filters, " AND "))
	}
	items, next, err := s.query(ctx, in, attrPK, orgPK(orgID), page{p.Limit, p.After})
	if err != nil {
		return nil, "", err
	}
	out := make([]groups.Group, 0, len(items))
	for _, it := range items {
		g, err := decodeGroup(it)
		if err != nil {
			return nil, "", err
		}
		out = append(out, g)
	}
	return out, next, nil
}

// UpdateSecurityGroup writes what a PATCH changes, moving the name claim.
func (s *Store) UpdateSecurityGroup(ctx context.Context, g groups.Group, prev groups.Group) error {
	u := newUpdate()
	err := u.setAll(map[string]any{
		"name": g.Name, "description": g.Description,
		"inboundRules": g.InboundRules, "outboundRules": g.OutboundRules,
		"status": g.Status, "lastError": g.LastError,
		"updatedAt": g.UpdatedAt.Format(time.RFC3339Nano),
	})
	if err != nil {
		return err
	}
	u.names["#ver"] = "version"
	u.sets = append(u.sets, "#ver = :version")
	u.values[":version"] = num(g.Version)
	cond, vals := versioned(prev.Version)
	items := []types.TransactWriteItem{u.item(orgPK(g.OrgID), groupSK(g.ID), cond, vals)}
	reasons := map[int]error{0: errConcurrent}
	if !strings.EqualFold(g.Name, prev.Name) {
		ni, err := groupNameItem(g)
		if err != nil {
			return err
		}
		items = append(items,
			types.TransactWriteItem{Delete: &types.Delete{Key: key(orgPK(g.OrgID), groupNameSK(prev.AccountID, prev.Region, prev.VPCID, prev.Name))}},
			putNew(ni))
		reasons[2] = groups.ErrNameTaken
	}
	return s.transact(ctx, "update security group "+g.ID, items, reasons)
}

// updateGroup runs one conditional UpdateItem on a group; a failed
// condition is errConcurrent.
func (s *Store) updateGroup(ctx context.Context, what string, orgID, id string, u *update, cond string, condValues map[string]types.AttributeValue) error {
	if strings.Contains(cond, "#ver") {
		u.names["#ver"] = "version"
	}
	ti := u.item(orgPK(orgID), groupSK(id), cond, condValues)
	_, err := s.db.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName: &s.table, Key: ti.Update.Key, UpdateExpression: ti.Update.UpdateExpression,
		ConditionExpression:       ti.Update.ConditionExpression,
		ExpressionAttributeNames:  ti.Update.ExpressionAttributeNames,
		ExpressionAttributeValues: ti.Update.ExpressionAttributeValues,
	})
	if isConditionFailed(err) {
		return errConcurrent
	}
	if err != nil {
		return fmt.Errorf("%s of security group %s: %w", what, id, err)
	}
	return nil
}

// SetSecurityGroupAWSID records the AWS group's id whatever the version: a
// PATCH during creation must not make dFlow lose the group it made.
func (s *Store) SetSecurityGroupAWSID(ctx context.Context, orgID, id, awsGroupID, prevAWSGroupID string) error {
	u := newUpdate()
	if err := u.set("awsGroupId", awsGroupID); err != nil {
		return err
	}
	cond := "attribute_exists(PK) AND (#f0 = :new OR "
	vals := map[string]types.AttributeValue{":new": str(awsGroupID)}
	if prevAWSGroupID == "" {
		cond += "attribute_not_exists(#f0) OR #f0 = :empty)"
		vals[":empty"] = str("")
	} else {
		cond += "#f0 = :prev)"
		vals[":prev"] = str(prevAWSGroupID)
	}
	return s.updateGroup(ctx, "record aws id", orgID, id, u, cond, vals)
}

// SetSecurityGroupStatus records the outcome of applying a version.
func (s *Store) SetSecurityGroupStatus(ctx context.Context, g groups.Group) error {
	u := newUpdate()
	if err := u.setAll(map[string]any{"status": g.Status, "lastError": g.LastError}); err != nil {
		return err
	}
	cond, vals := versioned(g.Version)
	return s.updateGroup(ctx, "set status", g.OrgID, g.ID, u, cond, vals)
}

// SetSecurityGroupDeleting marks or unmarks a group being deleted.
func (s *Store) SetSecurityGroupDeleting(ctx context.Context, g groups.Group, deleting bool) error {
	u := newUpdate()
	var v any
	if deleting {
		v = true
	}
	if err := u.set("deleting", v); err != nil {
		return err
	}
	cond, vals := versioned(g.Version)
	return s.updateGroup(ctx, "mark deleting", g.OrgID, g.ID, u, cond, vals)
}

// DeleteSecurityGroup removes a group, its name claim and its usage item.
func (s *Store) DeleteSecurityGroup(ctx context.Context, g groups.Group) error {
	items := []types.TransactWriteItem{
		{Delete: &types.Delete{
			Key:                       key(orgPK(g.OrgID), groupSK(g.ID)),
			ConditionExpression:       aws.String("#ver = :v"),
			ExpressionAttributeNames:  map[string]string{"#ver": "version"},
			ExpressionAttributeValues: map[string]types.AttributeValue{":v": num(g.Version)},
		}},
		{Delete: &types.Delete{Key: key(orgPK(g.OrgID), groupNameSK(g.AccountID, g.Region, g.VPCID, g.Name))}},
		{Delete: &types.Delete{Key: key(orgPK(g.OrgID), groupUsageSK(g.AccountID, g.ID))}},
	}
	return s.transact(ctx, "delete security group "+g.ID, items, map[int]error{0: errConcurrent})
}

// SecurityGroupUsers lists the worker nodes using a group, from their SGUSE
// items' sort keys.
func (s *Store) SecurityGroupUsers(ctx context.Context, orgID, groupID string) ([]string, error) {
	prefix := GroupUsePrefix(groupID)
	in := queryPrefix(orgPK(orgID), prefix)
	in.ProjectionExpression = aws.String("#sk")
	var out []string
	after := ""
	for {
		items, next, err := s.query(ctx, in, attrPK, orgPK(orgID), page{limit: 100, after: after})
		if err != nil {
			return nil, err
		}
		for _, it := range items {
			if sk, ok := it[attrSK].(*types.AttributeValueMemberS); ok {
				out = append(out, strings.TrimPrefix(sk.Value, prefix))
			}
		}
		if next == "" {
			return out, nil
		}
		after = next
	}
}
