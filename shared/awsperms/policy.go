package awsperms

import (
	"encoding/json"
	"slices"
	"strconv"
	"strings"

	"github.com/dflow-sh/cloud-accounts/shared/partition"
)

// PolicyVersion is the IAM policy language version; policy variables such as
// ${aws:username} need it.
const PolicyVersion = "2012-10-17"

// Policy is an IAM policy document; json.Marshal gives the JSON IAM takes.
type Policy struct {
	Version   string      `json:"Version"`
	Statement []Statement `json:"Statement"`
}

// Statement is one statement of a Policy. Resource is a string when there is
// one resource and a []string when there are more.
type Statement struct {
	Sid       string            `json:"Sid,omitempty"`
	Effect    string            `json:"Effect"`
	Principal map[string]string `json:"Principal,omitempty"`
	Action    []string          `json:"Action"`
	Resource  any               `json:"Resource,omitempty"`
	Condition Condition         `json:"Condition,omitempty"`
}

// Resources returns the statement's resources as a list.
func (s Statement) Resources() []string {
	switch r := s.Resource.(type) {
	case string:
		return []string{r}
	case []string:
		return r
	}
	return nil
}

// Actions returns every action the policy names, each once, in order.
func (p Policy) Actions() []string {
	var out []string
	for _, s := range p.Statement {
		for _, a := range s.Action {
			if !slices.Contains(out, a) {
				out = append(out, a)
			}
		}
	}
	return out
}

// PermissionsPolicy is the least-privilege policy a linked role or user
// needs in partition p: every action in Needed, the IAM self-rotation
// statement only for an access-key user (accessKeyUser), as role links are
// never rotated by dFlow.
func PermissionsPolicy(p partition.Partition, accessKeyUser bool) Policy {
	actions := make([]Action, 0, len(Needed))
	for _, a := range Needed {
		if a.Feature == FeatureRotation && !accessKeyUser {
			continue
		}
		actions = append(actions, a)
	}
	return PolicyFor(p, actions)
}

// PolicyFor returns a policy granting exactly the given actions in partition
// p, each as Needed grants it (for instance the actions a permission check
// found missing). An action with no Grants is granted on its Resource, or on
// "*" when that is empty. Grants with the same Sid, resources and condition
// share one statement; statements come in the order the actions first need
// them.
func PolicyFor(p partition.Partition, actions []Action) Policy {
	type group struct {
		sid, key string
		stmt     Statement
	}
	var groups []*group
	for _, a := range actions {
		grants := a.Grants
		if len(grants) == 0 {
			r := a.Resource
			if r == "" {
				r = "*"
			}
			grants = []Grant{{Resources: []string{r}}}
		}
		for _, g := range grants {
			resources := make([]string, len(g.Resources))
			for i, r := range g.Resources {
				resources[i] = fill(p, r)
			}
			cond := fillCondition(p, g.Condition)
			key := grantKey(resources, cond)
			i := slices.IndexFunc(groups, func(c *group) bool { return c.sid == g.Sid && c.key == key })
			if i < 0 {
				groups = append(groups, &group{sid: g.Sid, key: key, stmt: Statement{
					Effect: "Allow", Resource: resourceValue(resources), Condition: cond,
				}})
				i = len(groups) - 1
			}
			if stmt := &groups[i].stmt; !slices.Contains(stmt.Action, a.Name) {
				stmt.Action = append(stmt.Action, a.Name)
			}
		}
	}
	// A Sid must be unique in a policy; a second group under one Sid (only
	// possible with caller-made Grants) is numbered.
	used := map[string]bool{}
	pol := Policy{Version: PolicyVersion, Statement: make([]Statement, 0, len(groups))}
	for _, g := range groups {
		sid := g.sid
		for n := 2; sid != "" && used[sid]; n++ {
			sid = g.sid + strconv.Itoa(n)
		}
		used[sid] = true
		g.stmt.Sid = sid
		pol.Statement = append(pol.Statement, g.stmt)
	}
	return pol
}

// TrustPolicy lets dFlow's principal (principalARN, an IAM role or account
// of partition p) assume the role, but only when it presents the
// organisation's external ID, which stops another dFlow customer from
// pointing dFlow at this role (the confused-deputy problem).
func TrustPolicy(p partition.Partition, principalARN, externalID string) Policy {
	_ = p // the principal ARN already names the partition; p keeps the signatures alike
	return Policy{
		Version: PolicyVersion,
		Statement: []Statement{{
			Sid:       "DflowAssumeRoleWithExternalId",
			Effect:    "Allow",
			Principal: map[string]string{"AWS": principalARN},
			Action:    []string{"sts:AssumeRole"},
			Condition: Condition{"StringEquals": {"sts:ExternalId": {externalID}}},
		}},
	}
}

func fill(p partition.Partition, template string) string {
	return strings.ReplaceAll(template, PartitionVar, p.ID)
}

func fillCondition(p partition.Partition, c Condition) Condition {
	if len(c) == 0 {
		return nil
	}
	out := make(Condition, len(c))
	for op, kv := range c {
		out[op] = make(map[string][]string, len(kv))
		for k, vs := range kv {
			filled := make([]string, len(vs))
			for i, v := range vs {
				filled[i] = fill(p, v)
			}
			out[op][k] = filled
		}
	}
	return out
}

func resourceValue(resources []string) any {
	if len(resources) == 1 {
		return resources[0]
	}
	return resources
}

// grantKey identifies a grant's resources and condition; json.Marshal sorts
// map keys, so equal conditions give equal keys.
func grantKey(resources []string, c Condition) string {
	b, err := json.Marshal(struct {
		R []string
		C Condition
	}{resources, c})
	if err != nil {
		panic("awsperms: marshal grant key: " + err.Error()) // strings and maps of strings always marshal
	}
	return string(b)
}
