// Package sgrules is the logic of dFlow's security-group rules for worker
// nodes: strict parsing of the API's rule lists, warnings for rules open to
// the world, the difference between the rules dFlow holds and those AWS
// holds (for PATCH, GET drift and sync), and conversion to and from the EC2
// SDK's types. It makes no calls: the EC2 adapter feeds it what it read and
// sends what it returns.
//
// Identity. Two rules are the same rule when protocol, ports and source
// (Rule.Key) match; the description is not part of it. That is how EC2 sees
// them too: it refuses a second rule differing only in description
// (InvalidPermission.Duplicate) and changes descriptions in place with
// UpdateSecurityGroupRuleDescriptionsIngress/Egress, so a description change
// is neither a revoke nor an authorize but a Redescribe item of the Change.
//
// Default egress. EC2 gives every new VPC security group one outbound rule,
// all traffic to 0.0.0.0/0 (and all to ::/0 when the VPC has an IPv6 block);
// moto does the same. The outbound list dFlow holds is the whole truth: Diff
// against it revokes that default rule unless the wanted outbound rules
// include it. That is correct, not a bug — a group should allow exactly what
// dFlow shows. Callers that want AWS's default behaviour ask for it
// explicitly with DefaultEgress (e.g. when a create request omits
// outboundRules); an empty outbound list means no egress at all.
//
// All-ports protocol. Protocol "all" always carries FromPort = ToPort = -1
// (input may omit the ports or give -1), which is what
// DescribeSecurityGroupRules reports for such rules.
package sgrules

import (
	"cmp"
	"encoding/json"
	"slices"
)

// Protocols the API accepts.
const (
	ProtocolTCP  = "tcp"
	ProtocolUDP  = "udp"
	ProtocolICMP = "icmp"
	ProtocolAll  = "all"
)

// Directions, as DriftItem.Direction.
const (
	Inbound  = "inbound"
	Outbound = "outbound"
)

// Rule is one security-group rule: one protocol and port range, and exactly
// one source (inbound) or destination (outbound).
//
// Ports: tcp/udp a range 0–65535; icmp FromPort is the ICMP type and ToPort
// the code (-1 for all); all is -1/-1. Rules read from AWS may carry other
// protocols (e.g. "icmpv6", "50") that the API does not accept as input; they
// are kept as AWS names them so drift can show them and sync can revoke them.
type Rule struct {
	Protocol string `json:"protocol"`
	FromPort int    `json:"fromPort"`
	ToPort   int    `json:"toPort"`
	CIDRv4   string `json:"cidrIpv4,omitempty"`
	CIDRv6   string `json:"cidrIpv6,omitempty"`
	// SourceGroupID is the peer group: the source of an inbound rule, the
	// destination of an outbound one (the API keeps one name for both).
	SourceGroupID string `json:"sourceSecurityGroupId,omitempty"`
	// PrefixListID is read-only: rules read from AWS may reference a managed
	// prefix list; the API shows them but does not accept them as input.
	PrefixListID string `json:"prefixListId,omitempty"`
	Description  string `json:"description,omitempty"`
}

// Rules are a group's inbound and outbound rules.
type Rules struct {
	Inbound  []Rule
	Outbound []Rule
}

// MarshalJSON writes the API's names, with empty lists as [] rather than null.
func (r Rules) MarshalJSON() ([]byte, error) {
	return json.Marshal(struct {
		Inbound  []Rule `json:"inboundRules"`
		Outbound []Rule `json:"outboundRules"`
	}{nonNil(r.Inbound), nonNil(r.Outbound)})
}

// UnmarshalJSON reads what MarshalJSON writes (e.g. rules kept in the store).
// API input goes through Parse instead.
func (r *Rules) UnmarshalJSON(b []byte) error {
	var w struct {
		Inbound  []Rule `json:"inboundRules"`
		Outbound []Rule `json:"outboundRules"`
	}
	if err := json.Unmarshal(b, &w); err != nil {
		return err
	}
	r.Inbound, r.Outbound = w.Inbound, w.Outbound
	return nil
}

func nonNil(rs []Rule) []Rule {
	if rs == nil {
		return []Rule{}
	}
	return rs
}

// Key is a rule's identity: everything but the description.
type Key struct {
	Protocol         string
	FromPort, ToPort int
	CIDRv4, CIDRv6   string
	SourceGroupID    string
	PrefixListID     string
}

// Key returns the rule's identity, with the ports of protocol all as -1.
func (r Rule) Key() Key {
	k := Key{
		Protocol: r.Protocol, FromPort: r.FromPort, ToPort: r.ToPort,
		CIDRv4: r.CIDRv4, CIDRv6: r.CIDRv6, SourceGroupID: r.SourceGroupID, PrefixListID: r.PrefixListID,
	}
	if k.Protocol == ProtocolAll {
		k.FromPort, k.ToPort = -1, -1
	}
	return k
}

// DefaultEgress is the outbound rule EC2 gives a new security group (in a VPC
// without IPv6): all traffic to 0.0.0.0/0. Ask for it to keep it.
func DefaultEgress() []Rule {
	return []Rule{{Protocol: ProtocolAll, FromPort: -1, ToPort: -1, CIDRv4: "0.0.0.0/0"}}
}

// Compare orders rules by protocol, ports, source and description; it is the
// order of every list this package returns sorted.
func Compare(a, b Rule) int {
	return cmp.Or(
		cmp.Compare(a.Protocol, b.Protocol),
		cmp.Compare(a.FromPort, b.FromPort),
		cmp.Compare(a.ToPort, b.ToPort),
		cmp.Compare(sourceRank(a), sourceRank(b)),
		cmp.Compare(a.CIDRv4, b.CIDRv4),
		cmp.Compare(a.CIDRv6, b.CIDRv6),
		cmp.Compare(a.SourceGroupID, b.SourceGroupID),
		cmp.Compare(a.PrefixListID, b.PrefixListID),
		cmp.Compare(a.Description, b.Description),
	)
}

// Sort sorts rules in place by Compare.
func Sort(rules []Rule) { slices.SortFunc(rules, Compare) }

// sourceRank puts IPv4 ranges first, then IPv6, groups and prefix lists.
func sourceRank(r Rule) int {
	switch {
	case r.CIDRv4 != "":
		return 0
	case r.CIDRv6 != "":
		return 1
	case r.SourceGroupID != "":
		return 2
	default:
		return 3
	}
}

// source is the rule's one source, for messages.
func (r Rule) source() string {
	return cmp.Or(r.CIDRv4, r.CIDRv6, r.SourceGroupID, r.PrefixListID)
}
