package sgrules

import "slices"

// Change is what turns the rules AWS holds into the rules dFlow wants. Each
// list is sorted by Compare.
//
// Apply Authorize before Revoke, so traffic both the old and the new rules
// allow never drops in between (a port change is a revoke plus an
// authorize); if EC2 answers RulesPerSecurityGroupLimitExceeded, revoke
// first. Redescribe items carry the wanted description and go to
// UpdateSecurityGroupRuleDescriptionsIngress/Egress as ToIPPermissions(items);
// an empty description there removes the rule's description.
type Change struct {
	AuthorizeIngress  []Rule `json:"authorizeIngress,omitempty"`
	RevokeIngress     []Rule `json:"revokeIngress,omitempty"`
	RedescribeIngress []Rule `json:"redescribeIngress,omitempty"`
	AuthorizeEgress   []Rule `json:"authorizeEgress,omitempty"`
	RevokeEgress      []Rule `json:"revokeEgress,omitempty"`
	RedescribeEgress  []Rule `json:"redescribeEgress,omitempty"`
}

// Empty reports whether there is nothing to do.
func (c Change) Empty() bool {
	return len(c.AuthorizeIngress) == 0 && len(c.RevokeIngress) == 0 && len(c.RedescribeIngress) == 0 &&
		len(c.AuthorizeEgress) == 0 && len(c.RevokeEgress) == 0 && len(c.RedescribeEgress) == 0
}

// Diff compares want (what dFlow holds) with have (what AWS holds) by rule
// identity (Rule.Key). Authorize items are wanted rules AWS lacks; Revoke
// items are AWS's rules dFlow does not want, as AWS holds them (description
// included, which some EC2 implementations need to match the rule);
// Redescribe items are wanted rules whose description differs. Rules
// repeated within one list count once (the first).
func Diff(want, have Rules) Change {
	var c Change
	c.AuthorizeIngress, c.RevokeIngress, c.RedescribeIngress = diffDirection(want.Inbound, have.Inbound)
	c.AuthorizeEgress, c.RevokeEgress, c.RedescribeEgress = diffDirection(want.Outbound, have.Outbound)
	return c
}

func diffDirection(want, have []Rule) (authorize, revoke, redescribe []Rule) {
	for _, p := range pairs(want, have) {
		switch {
		case p.have == nil:
			authorize = append(authorize, *p.want)
		case p.want == nil:
			revoke = append(revoke, *p.have)
		case p.want.Description != p.have.Description:
			redescribe = append(redescribe, *p.want)
		}
	}
	return authorize, revoke, redescribe
}

// pair is a rule identity with the wanted and the held rule, either nil.
type pair struct{ want, have *Rule }

// pairs matches want and have by Key, sorted by the wanted (else held) rule.
func pairs(want, have []Rule) []pair {
	byKey := make(map[Key]int, len(want)+len(have))
	var ps []pair
	for i := range want {
		k := want[i].Key()
		if _, dup := byKey[k]; dup {
			continue
		}
		byKey[k] = len(ps)
		ps = append(ps, pair{want: &want[i]})
	}
	for i := range have {
		k := have[i].Key()
		j, ok := byKey[k]
		switch {
		case !ok:
			byKey[k] = len(ps)
			ps = append(ps, pair{have: &have[i]})
		case ps[j].have == nil:
			ps[j].have = &have[i]
		}
	}
	slices.SortFunc(ps, func(a, b pair) int { return Compare(a.rule(), b.rule()) })
	return ps
}

func (p pair) rule() Rule {
	if p.want != nil {
		return *p.want
	}
	return *p.have
}

// Drift kinds.
const (
	DriftMissing     = "missing"     // dFlow holds it, AWS does not
	DriftUnexpected  = "unexpected"  // AWS holds it, dFlow does not
	DriftDescription = "description" // both hold it, with different descriptions
)

// DriftItem is one difference between dFlow's rules and AWS's, for GET.
type DriftItem struct {
	Direction string `json:"direction"` // Inbound or Outbound
	Kind      string `json:"kind"`
	// Rule is dFlow's rule, or AWS's for kind unexpected.
	Rule Rule `json:"rule"`
	// Actual is AWS's rule, for kind description.
	Actual *Rule `json:"actual,omitempty"`
}

// Drift lists how AWS differs from what dFlow holds: inbound first, then
// outbound, each sorted by Compare. It is Diff seen from the other side: a
// sync applying Diff(want, have) clears every item.
func Drift(want, have Rules) []DriftItem {
	var items []DriftItem
	for _, d := range []struct {
		direction  string
		want, have []Rule
	}{{Inbound, want.Inbound, have.Inbound}, {Outbound, want.Outbound, have.Outbound}} {
		for _, p := range pairs(d.want, d.have) {
			switch {
			case p.have == nil:
				items = append(items, DriftItem{Direction: d.direction, Kind: DriftMissing, Rule: *p.want})
			case p.want == nil:
				items = append(items, DriftItem{Direction: d.direction, Kind: DriftUnexpected, Rule: *p.have})
			case p.want.Description != p.have.Description:
				actual := *p.have
				items = append(items, DriftItem{Direction: d.direction, Kind: DriftDescription, Rule: *p.want, Actual: &actual})
			}
		}
	}
	return items
}
