package dynamo

import (
	"context"
	"fmt"
	"hash/fnv"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/dflow-sh/cloud-accounts/shared/nodes"
	"github.com/dflow-sh/cloud-accounts/shared/tenancy"
)

var _ nodes.Store = (*Store)(nil)

// Worker nodes live in their organisation's partition:
//
//	ORG#<org> / NODE#<id>                      the record; while active also
//	                                           GSI1 NODES_ACTIVE#<shard> / <org>#<id>
//	ORG#<org> / USES#<account>#workerNode#<id> the account is in use (links)
//	ORG#<org> / SGUSE#<group>#<id>             the group is in use (groups)
//	ORG#<org> / NODECOUNT#<user>               active nodes the user created
//
// Every write of a record maintains the others in its transaction, from
// whether the node is active before and after.
const nodeShards = 4

func nodeSK(id string) string { return "NODE#" + id }
func nodeUsesSK(accountID, nodeID string) string {
	return usesPrefix(accountID) + nodes.UsageKind + "#" + nodeID
}
func nodeCountSK(userID string) string { return "NODECOUNT#" + userID }

// NodesActiveShardKey names the index partitions of active nodes.
func NodesActiveShardKey(shard int) string { return fmt.Sprintf("NODES_ACTIVE#%d", shard) }

func nodeShard(id string) int {
	h := fnv.New32a()
	h.Write([]byte(id))
	return int(h.Sum32() % nodeShards)
}

var errNodeAccountGone = errLinkNotFound

type nodeItem struct {
	Type  string `json:"type"`
	OrgID string `json:"orgId"`
	nodes.Node
}

type nodeUsageItem struct {
	Type string `json:"type"`
	Kind string `json:"kind"`
	ID   string `json:"id"`
}

func (s *Store) nodeItem(n nodes.Node) (map[string]types.AttributeValue, error) {
	keys := map[string]string{attrPK: orgPK(n.OrgID), attrSK: nodeSK(n.ID)}
	if n.Active() {
		keys[attrGSI1PK], keys[attrGSI1SK] = NodesActiveShardKey(nodeShard(n.ID)), n.OrgID+"#"+n.ID
	}
	item, err := marshal(nodeItem{Type: "node", OrgID: n.OrgID, Node: n}, keys)
	if err != nil {
		return nil, fmt.Errorf("encode node %s: %w", n.ID, err)
	}
	return item, nil
}

// nodeUsageItems are the items an active node keeps beside it: its
// account's usage item and, per security group, the SGUSE item (groups.go's
// GroupUseItems). checked adds each group's check that it exists and is not
// being deleted; the checks' positions are returned.
func nodeUsageItems(n nodes.Node, checked bool) ([]types.TransactWriteItem, []int, error) {
	ui, err := marshal(nodeUsageItem{Type: "usage", Kind: nodes.UsageKind, ID: n.ID},
		map[string]string{attrPK: orgPK(n.OrgID), attrSK: nodeUsesSK(n.AccountID, n.ID)})
	if err != nil {
		return nil, nil, err
	}
	out := []types.TransactWriteItem{{Put: &types.Put{Item: ui}}}
	var checks []int
	for _, g := range n.SecurityGroupIDs {
		check, put := GroupUseItems(n.OrgID, g, n.ID)
		if checked {
			checks = append(checks, len(out))
			out = append(out, check)
		}
		out = append(out, put)
	}
	return out, checks, nil
}

func nodeReleaseItems(n nodes.Node) []types.TransactWriteItem {
	out := []types.TransactWriteItem{{Delete: &types.Delete{Key: key(orgPK(n.OrgID), nodeUsesSK(n.AccountID, n.ID))}}}
	for _, g := range n.SecurityGroupIDs {
		out = append(out, GroupUnuseItem(n.OrgID, g, n.ID))
	}
	return out
}

// nodeCountItem moves the creator's active count by delta; with limit > 0 an
// increment is refused at the limit.
func nodeCountItem(orgID, userID string, delta int64, limit int) types.TransactWriteItem {
	up := &types.Update{
		Key:                       key(orgPK(orgID), nodeCountSK(userID)),
		UpdateExpression:          aws.String("ADD #active :d SET #type = :type"),
		ExpressionAttributeNames:  map[string]string{"#active": "active", "#type": "type"},
		ExpressionAttributeValues: map[string]types.AttributeValue{":d": num(delta), ":type": str("nodeCount")},
	}
	if delta > 0 && limit > 0 {
		up.ConditionExpression = aws.String("attribute_not_exists(#active) OR #active < :limit")
		up.ExpressionAttributeValues[":limit"] = num(int64(limit))
	}
	return types.TransactWriteItem{Update: up}
}

// CreateNode writes a new node with its usage items and count, checking
// that its account is still linked.
func (s *Store) CreateNode(ctx context.Context, n nodes.Node, createLimit int) error {
	ni, err := s.nodeItem(n)
	if err != nil {
		return err
	}
	items := []types.TransactWriteItem{
		putNew(ni),
		nodeCountItem(n.OrgID, n.CreatedBy, 1, createLimit),
		{ConditionCheck: &types.ConditionCheck{
			Key:                 key(orgPK(n.OrgID), accountSK(n.AccountID)),
			ConditionExpression: aws.String("attribute_exists(PK)"),
		}},
	}
	uses, checks, err := nodeUsageItems(n, true)
	if err != nil {
		return err
	}
	reasons := map[int]error{0: nodes.ErrExists, 1: nodes.ErrCreateLimit, 2: errNodeAccountGone}
	for _, c := range checks {
		reasons[len(items)+c] = ErrGroupUnusable
	}
	items = append(items, uses...)
	return s.transact(ctx, "create node "+n.ID, items, reasons)
}

// GetNode reads a node.
func (s *Store) GetNode(ctx context.Context, orgID, id string) (nodes.Node, error) {
	var it nodeItem
	if err := s.get(ctx, orgPK(orgID), nodeSK(id), &it, nodes.ErrNotFound); err != nil {
		return nodes.Node{}, err
	}
	it.Node.OrgID = it.OrgID
	return it.Node, nil
}

// ListNodes pages through an organisation's nodes.
func (s *Store) ListNodes(ctx context.Context, orgID string, f nodes.Filter, p tenancy.Page) ([]nodes.Node, string, error) {
	in := queryPrefix(orgPK(orgID), "NODE#")
	var filters []string
	add := func(attr, val string) {
		ph := fmt.Sprintf("%d", len(filters))
		filters = append(filters, "#a"+ph+" = :v"+ph)
		if in.ExpressionAttributeNames == nil {
			in.ExpressionAttributeNames = map[string]string{}
		}
		in.ExpressionAttributeNames["#a"+ph] = attr
		in.ExpressionAttributeValues[":v"+ph] = str(val)
	}
	if f.Environment != "" {
		add("environment", f.Environment)
	}
	if f.AccountID != "" {
		add("accountId", f.AccountID)
	}
	if f.Status != "" {
		add("status", f.Status)
	}
	if f.CreatedBy != "" {
		add("createdBy", f.CreatedBy)
	}
	if len(filters) > 0 {
		in.FilterExpression = aws.String(strings.Join(filters, " AND "))
	}
	items, next, err := s.query(ctx, in, attrPK, orgPK(orgID), page{p.Limit, p.After})
	if err != nil {
		return nil, "", err
	}
	out := make([]nodes.Node, 0, len(items))
	for _, it := range items {
		var ni nodeItem
		if err := unmarshal(it, &ni); err != nil {
			return nil, "", fmt.Errorf("decode node: %w", err)
		}
		ni.Node.OrgID = ni.OrgID
		out = append(out, ni.Node)
	}
	return out, next, nil
}

// UpdateNode replaces a node at version prev.Version; when it becomes final
// its usage items, count and index entry go in the same transaction (and
// come back if it becomes active again: a failed node whose instance
// turned up).
func (s *Store) UpdateNode(ctx context.Context, n nodes.Node, prev nodes.Node) error {
	ni, err := s.nodeItem(n)
	if err != nil {
		return err
	}
	items := []types.TransactWriteItem{{Put: &types.Put{
		Item:                      ni,
		ConditionExpression:       aws.String("attribute_exists(PK) AND #ver = :prev"),
		ExpressionAttributeNames:  map[string]string{"#ver": "version"},
		ExpressionAttributeValues: map[string]types.AttributeValue{":prev": num(prev.Version)},
	}}}
	switch {
	case prev.Active() && !n.Active():
		items = append(items, nodeCountItem(n.OrgID, n.CreatedBy, -1, 0))
		items = append(items, nodeReleaseItems(prev)...)
	case !prev.Active() && n.Active():
		// The instance uses its groups already: no check.
		uses, _, err := nodeUsageItems(n, false)
		if err != nil {
			return err
		}
		items = append(items, nodeCountItem(n.OrgID, n.CreatedBy, 1, 0))
		items = append(items, uses...)
	}
	return s.transact(ctx, "update node "+n.ID, items, map[int]error{0: nodes.ErrConcurrent})
}

// ActiveNodes reads every active node from the sharded index.
func (s *Store) ActiveNodes(ctx context.Context) ([]nodes.Node, error) {
	var out []nodes.Node
	for shard := 0; shard < nodeShards; shard++ {
		pk := NodesActiveShardKey(shard)
		after := ""
		for {
			in := &dynamodb.QueryInput{
				IndexName:                 aws.String(indexGSI1),
				KeyConditionExpression:    aws.String("#pk = :pk"),
				ExpressionAttributeNames:  map[string]string{"#pk": attrGSI1PK},
				ExpressionAttributeValues: map[string]types.AttributeValue{":pk": str(pk)},
			}
			items, next, err := s.query(ctx, in, attrGSI1PK, pk, page{limit: 100, after: after})
			if err != nil {
				return nil, err
			}
			for _, it := range items {
				var ni nodeItem
				if err := unmarshal(it, &ni); err != nil {
					return nil, fmt.Errorf("decode node: %w", err)
				}
				ni.Node.OrgID = ni.OrgID
				// The index is eventually consistent: a node may have
				// become final since.
				if ni.Node.Active() {
					out = append(out, ni.Node)
				}
			}
			if next == "" {
				break
			}
			after = next
		}
	}
	return out, nil
}
