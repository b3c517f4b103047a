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
	"github.com/dflow-sh/cloud-accounts/shared/tenancy"
)

var _ tenancy.Store = (*Store)(nil)

var (
	errOrgNotFound    = fault.NotFoundf("org_not_found", "no such organisation")
	errRoleNotFound   = fault.NotFoundf("role_not_found", "no such role")
	errMemberNotFound = fault.NotFoundf("member_not_found", "no such member")
	errConcurrent     = fault.Conflictf("concurrent_update", "the resource changed while this request ran; read it again and retry")
	errLastAdmin      = fault.Conflictf("last_admin", "an organisation must keep at least one Admin")
	errRoleNameTaken  = fault.Conflictf("role_name_taken", "a role with this name already exists")
	errMemberExists   = fault.Conflictf("member_exists", "the user is already a member")
)

type orgItem struct {
	Type string `json:"type"`
	tenancy.Org
}

type roleItem struct {
	Type  string `json:"type"`
	OrgID string `json:"orgId"`
	tenancy.Role
}

type roleNameItem struct {
	Type   string `json:"type"`
	RoleID string `json:"roleId"`
}

type memberItem struct {
	Type  string `json:"type"`
	OrgID string `json:"orgId"`
	tenancy.Member
}

func putNew(item map[string]types.AttributeValue) types.TransactWriteItem {
	return types.TransactWriteItem{Put: &types.Put{
		Item:                item,
		ConditionExpression: aws.String("attribute_not_exists(PK)"),
	}}
}

// CreateOrg writes the organisation, its roles and its first member at once.
func (s *Store) CreateOrg(ctx context.Context, org tenancy.Org, roles []tenancy.Role, owner tenancy.Member) error {
	var items []types.TransactWriteItem
	oi, err := marshal(orgItem{Type: "org", Org: org}, map[string]string{attrPK: orgPK(org.ID), attrSK: orgSK})
	if err != nil {
		return err
	}
	items = append(items, putNew(oi))
	for _, r := range roles {
		ri, err := marshal(roleItem{Type: "role", OrgID: org.ID, Role: r}, map[string]string{attrPK: orgPK(org.ID), attrSK: roleSK(r.ID)})
		if err != nil {
			return err
		}
		ni, err := marshal(roleNameItem{Type: "roleName", RoleID: r.ID}, map[string]string{attrPK: orgPK(org.ID), attrSK: roleNameSK(r.Name)})
		if err != nil {
			return err
		}
		items = append(items, putNew(ri), putNew(ni))
	}
	mi, err := s.memberItem(owner)
	if err != nil {
		return err
	}
	items = append(items, putNew(mi))
	return s.transact(ctx, "create org "+org.ID, items, nil)
}

func (s *Store) memberItem(m tenancy.Member) (map[string]types.AttributeValue, error) {
	return marshal(memberItem{Type: "member", OrgID: m.OrgID, Member: m}, map[string]string{
		attrPK: orgPK(m.OrgID), attrSK: memberSK(m.UserID),
		// The user → organisations index.
		attrGSI1PK: userPK(m.UserID), attrGSI1SK: orgPK(m.OrgID),
	})
}

// GetOrg reads an organisation.
func (s *Store) GetOrg(ctx context.Context, orgID string) (tenancy.Org, error) {
	var it orgItem
	if err := s.get(ctx, orgPK(orgID), orgSK, &it, errOrgNotFound); err != nil {
		return tenancy.Org{}, err
	}
	return it.Org, nil
}

// UpdateOrg replaces an organisation if nobody changed it since prevVersion.
func (s *Store) UpdateOrg(ctx context.Context, org tenancy.Org, prevVersion int64) error {
	item, err := marshal(orgItem{Type: "org", Org: org}, map[string]string{attrPK: orgPK(org.ID), attrSK: orgSK})
	if err != nil {
		return err
	}
	_, err = s.db.PutItem(ctx, &dynamodb.PutItemInput{
		TableName:                 &s.table,
		Item:                      item,
		ConditionExpression:       aws.String("#v = :v"),
		ExpressionAttributeNames:  map[string]string{"#v": "version"},
		ExpressionAttributeValues: map[string]types.AttributeValue{":v": num(prevVersion)},
	})
	if isConditionFailed(err) {
		return errConcurrent
	}
	if err != nil {
		return fmt.Errorf("put org %s: %w", org.ID, err)
	}
	return nil
}

// ListOrgsOfUser pages through the user → organisations index, then reads
// the organisations of the page in one batch.
func (s *Store) ListOrgsOfUser(ctx context.Context, userID string, p tenancy.Page) ([]tenancy.Org, string, error) {
	in := &dynamodb.QueryInput{
		IndexName:                 aws.String(indexGSI1),
		KeyConditionExpression:    aws.String("GSI1PK = :pk"),
		ExpressionAttributeValues: map[string]types.AttributeValue{":pk": str(userPK(userID))},
	}
	items, next, err := s.query(ctx, in, attrGSI1PK, userPK(userID), page{p.Limit, p.After})
	if err != nil {
		return nil, "", err
	}
	if len(items) == 0 {
		return nil, next, nil
	}
	keys := make([]map[string]types.AttributeValue, 0, len(items))
	order := make([]string, 0, len(items))
	for _, it := range items {
		var m memberItem
		if err := unmarshal(it, &m); err != nil {
			return nil, "", fmt.Errorf("decode membership: %w", err)
		}
		keys = append(keys, key(orgPK(m.OrgID), orgSK))
		order = append(order, m.OrgID)
	}
	found := map[string]tenancy.Org{}
	req := map[string]types.KeysAndAttributes{s.table: {Keys: keys, ConsistentRead: aws.Bool(true)}}
	for len(req) > 0 && len(req[s.table].Keys) > 0 {
		res, err := s.db.BatchGetItem(ctx, &dynamodb.BatchGetItemInput{RequestItems: req})
		if err != nil {
			return nil, "", fmt.Errorf("batch get orgs: %w", err)
		}
		for _, it := range res.Responses[s.table] {
			var o orgItem
			if err := unmarshal(it, &o); err != nil {
				return nil, "", fmt.Errorf("decode org: %w", err)
			}
			found[o.ID] = o.Org
		}
		req = res.UnprocessedKeys
		if err := ctx.Err(); err != nil {
			return nil, "", err
		}
	}
	orgs := make([]tenancy.Org, 0, len(order))
	for _, id := range order {
		if o, ok := found[id]; ok {
			orgs = append(orgs, o)
		}
	}
	return orgs, next, nil
}

// GetRole reads a role.
func (s *Store) GetRole(ctx context.Context, orgID, roleID string) (tenancy.Role, error) {
	var it roleItem
	if err := s.get(ctx, orgPK(orgID), roleSK(roleID), &it, errRoleNotFound); err != nil {
		return tenancy.Role{}, err
	}
	it.Role.OrgID = it.OrgID
	it.Role.Permissions = it.Role.Permissions.Normalized()
	return it.Role, nil
}

// ListRoles pages through an organisation's roles.
func (s *Store) ListRoles(ctx context.Context, orgID string, p tenancy.Page) ([]tenancy.Role, string, error) {
	items, next, err := s.query(ctx, queryPrefix(orgPK(orgID), "ROLE#"), attrPK, orgPK(orgID), page{p.Limit, p.After})
	if err != nil {
		return nil, "", err
	}
	out := make([]tenancy.Role, 0, len(items))
	for _, it := range items {
		var r roleItem
		if err := unmarshal(it, &r); err != nil {
			return nil, "", fmt.Errorf("decode role: %w", err)
		}
		r.Role.OrgID = r.OrgID
		r.Role.Permissions = r.Role.Permissions.Normalized()
		out = append(out, r.Role)
	}
	return out, next, nil
}

// CreateRole adds a role; its name must be free in the organisation.
func (s *Store) CreateRole(ctx context.Context, r tenancy.Role) error {
	ri, err := marshal(roleItem{Type: "role", OrgID: r.OrgID, Role: r}, map[string]string{attrPK: orgPK(r.OrgID), attrSK: roleSK(r.ID)})
	if err != nil {
		return err
	}
	ni, err := marshal(roleNameItem{Type: "roleName", RoleID: r.ID}, map[string]string{attrPK: orgPK(r.OrgID), attrSK: roleNameSK(r.Name)})
	if err != nil {
		return err
	}
	return s.transact(ctx, "create role "+r.ID, []types.TransactWriteItem{putNew(ri), putNew(ni)}, map[int]error{1: errRoleNameTaken})
}

// UpdateRole writes a role's own fields. The member count is left alone:
// member changes move it concurrently.
func (s *Store) UpdateRole(ctx context.Context, r tenancy.Role, prev tenancy.Role) error {
	perms, err := marshalValue(r.Permissions)
	if err != nil {
		return err
	}
	items := []types.TransactWriteItem{{Update: &types.Update{
		Key:                 key(orgPK(r.OrgID), roleSK(r.ID)),
		UpdateExpression:    aws.String("SET #name = :name, #desc = :desc, #perms = :perms, #v = :v, #at = :at"),
		ConditionExpression: aws.String("#v = :prev"),
		ExpressionAttributeNames: map[string]string{
			"#name": "name", "#desc": "description", "#perms": "permissions", "#v": "version", "#at": "updatedAt",
		},
		ExpressionAttributeValues: map[string]types.AttributeValue{
			":name": str(r.Name), ":desc": str(r.Description), ":perms": perms,
			":v": num(r.Version), ":prev": num(prev.Version), ":at": str(r.UpdatedAt.Format(time.RFC3339Nano)),
		},
	}}}
	reasons := map[int]error{0: errConcurrent}
	if !strings.EqualFold(r.Name, prev.Name) {
		ni, err := marshal(roleNameItem{Type: "roleName", RoleID: r.ID}, map[string]string{attrPK: orgPK(r.OrgID), attrSK: roleNameSK(r.Name)})
		if err != nil {
			return err
		}
		items = append(items,
			types.TransactWriteItem{Delete: &types.Delete{Key: key(orgPK(r.OrgID), roleNameSK(prev.Name))}},
			putNew(ni))
		reasons[2] = errRoleNameTaken
	}
	return s.transact(ctx, "update role "+r.ID, items, reasons)
}

// DeleteRole removes a role nobody holds.
func (s *Store) DeleteRole(ctx context.Context, r tenancy.Role) error {
	items := []types.TransactWriteItem{
		{Delete: &types.Delete{
			Key:                       key(orgPK(r.OrgID), roleSK(r.ID)),
			ConditionExpression:       aws.String("#v = :v AND (attribute_not_exists(#members) OR #members = :zero)"),
			ExpressionAttributeNames:  map[string]string{"#members": "memberCount", "#v": "version"},
			ExpressionAttributeValues: map[string]types.AttributeValue{":v": num(r.Version), ":zero": num(0)},
		}},
		{Delete: &types.Delete{Key: key(orgPK(r.OrgID), roleNameSK(r.Name))}},
	}
	return s.transact(ctx, "delete role "+r.ID, items, map[int]error{0: fault.Conflictf("role_in_use", "the role changed or is held by a member")})
}

// GetMember reads a membership.
func (s *Store) GetMember(ctx context.Context, orgID, userID string) (tenancy.Member, error) {
	var it memberItem
	if err := s.get(ctx, orgPK(orgID), memberSK(userID), &it, errMemberNotFound); err != nil {
		return tenancy.Member{}, err
	}
	it.Member.OrgID = it.OrgID
	return it.Member, nil
}

// ListMembers pages through an organisation's members.
func (s *Store) ListMembers(ctx context.Context, orgID string, p tenancy.Page) ([]tenancy.Member, string, error) {
	items, next, err := s.query(ctx, queryPrefix(orgPK(orgID), "MEMBER#"), attrPK, orgPK(orgID), page{p.Limit, p.After})
	if err != nil {
		return nil, "", err
	}
	out := make([]tenancy.Member, 0, len(items))
	for _, it := range items {
		var m memberItem
		if err := unmarshal(it, &m); err != nil {
			return nil, "", fmt.Errorf("decode member: %w", err)
		}
		m.Member.OrgID = m.OrgID
		out = append(out, m.Member)
	}
	return out, next, nil
}

// countRole moves a role's member count; leaving the Admin role keeps at
// least one Admin.
func countRole(orgID, roleID string, delta int64) types.TransactWriteItem {
	u := &types.Update{
		Key:                       key(orgPK(orgID), roleSK(roleID)),
		UpdateExpression:          aws.String("ADD #members :d"),
		ConditionExpression:       aws.String("attribute_exists(PK)"),
		ExpressionAttributeNames:  map[string]string{"#members": "memberCount"},
		ExpressionAttributeValues: map[string]types.AttributeValue{":d": num(delta)},
	}
	if roleID == tenancy.AdminRoleID && delta < 0 {
		u.ConditionExpression = aws.String("#members > :one")
		u.ExpressionAttributeValues[":one"] = num(1)
	}
	return types.TransactWriteItem{Update: u}
}

// AddMember adds a membership and counts it on its role.
func (s *Store) AddMember(ctx context.Context, m tenancy.Member) error {
	mi, err := s.memberItem(m)
	if err != nil {
		return err
	}
	return s.transact(ctx, "add member "+m.UserID, []types.TransactWriteItem{putNew(mi), countRole(m.OrgID, m.RoleID, 1)},
		map[int]error{0: errMemberExists, 1: errRoleNotFound})
}

// ChangeMemberRole moves a member between roles, keeping both counts right.
func (s *Store) ChangeMemberRole(ctx context.Context, m tenancy.Member, prev tenancy.Member) error {
	items := []types.TransactWriteItem{
		{Update: &types.Update{
			Key:                      key(orgPK(m.OrgID), memberSK(m.UserID)),
			UpdateExpression:         aws.String("SET #role = :role, #v = :v"),
			ConditionExpression:      aws.String("#role = :prevRole AND #v = :prev"),
			ExpressionAttributeNames: map[string]string{"#role": "roleId", "#v": "version"},
			ExpressionAttributeValues: map[string]types.AttributeValue{
				":role": str(m.RoleID), ":v": num(m.Version), ":prevRole": str(prev.RoleID), ":prev": num(prev.Version),
			},
		}},
		countRole(m.OrgID, prev.RoleID, -1),
		countRole(m.OrgID, m.RoleID, 1),
	}
	return s.transact(ctx, "change member role "+m.UserID, items, map[int]error{0: errConcurrent, 1: errLastAdmin, 2: errRoleNotFound})
}

// RemoveMember deletes a membership and uncounts it.
func (s *Store) RemoveMember(ctx context.Context, m tenancy.Member) error {
	items := []types.TransactWriteItem{
		{Delete: &types.Delete{
			Key:                       key(orgPK(m.OrgID), memberSK(m.UserID)),
			ConditionExpression:       aws.String("#role = :role AND #v = :v"),
			ExpressionAttributeNames:  map[string]string{"#role": "roleId", "#v": "version"},
			ExpressionAttributeValues: map[string]types.AttributeValue{":role": str(m.RoleID), ":v": num(m.Version)},
		}},
		countRole(m.OrgID, m.RoleID, -1),
	}
	return s.transact(ctx, "remove member "+m.UserID, items, map[int]error{0: errConcurrent, 1: errLastAdmin})
}
