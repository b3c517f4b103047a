// Package tenancy is organisations, their members and roles: who may do what
// inside which organisation. Deny is the default everywhere: a permission not
// granted explicitly is refused.
package tenancy

import (
	"fmt"
	"sort"

	"github.com/dflow-sh/cloud-accounts/shared/fault"
)

// Collection is a kind of resource a role grants access to.
type Collection string

const (
	CloudProviderAccounts Collection = "cloudProviderAccounts"
	SecurityGroups        Collection = "securityGroups"
	SSHKeys               Collection = "sshKeys"
	WorkerNodes           Collection = "workerNodes"
	Team                  Collection = "team"
	Roles                 Collection = "roles"
	Audit                 Collection = "audit"
)

// Collections lists every collection, in display order.
var Collections = []Collection{CloudProviderAccounts, SecurityGroups, SSHKeys, WorkerNodes, Team, Roles, Audit}

// Action is what a role may do to a collection.
type Action string

const (
	Create Action = "create"
	Read   Action = "read"
	Update Action = "update"
	Delete Action = "delete"
	// Rotate exists on cloudProviderAccounts only.
	Rotate Action = "rotate"
)

// Read scopes for worker nodes.
const (
	ScopeAll = "all"
	ScopeOwn = "own"
)

// Grant is what a role allows on one collection.
type Grant struct {
	Create bool `json:"create"`
	Read   bool `json:"read"`
	Update bool `json:"update"`
	Delete bool `json:"delete"`
	// Rotate is meaningful for cloudProviderAccounts only.
	Rotate bool `json:"rotate,omitempty"`
	// CreateLimit caps how many worker nodes a holder may create (0 = no cap).
	CreateLimit int `json:"createLimit,omitempty"`
	// ReadScope is "all" or "own" for worker nodes.
	ReadScope string `json:"readScope,omitempty"`
}

// Allows reports whether the grant includes the action.
func (g Grant) Allows(a Action) bool {
	switch a {
	case Create:
		return g.Create
	case Read:
		return g.Read
	case Update:
		return g.Update
	case Delete:
		return g.Delete
	case Rotate:
		return g.Rotate
	}
	return false
}

// Permissions maps collections to grants; a missing collection grants nothing.
type Permissions map[Collection]Grant

// Allows reports whether the permissions include action on collection.
func (p Permissions) Allows(c Collection, a Action) bool {
	g, ok := p[c]
	return ok && g.Allows(a)
}

// Normalized fills every collection, so readers always see the full matrix.
func (p Permissions) Normalized() Permissions {
	out := make(Permissions, len(Collections))
	for _, c := range Collections {
		g := p[c]
		if c == WorkerNodes && g.ReadScope == "" {
			g.ReadScope = ScopeAll
		}
		out[c] = g
	}
	return out
}

// Covers reports whether p grants at least everything q grants; holders may
// only hand out what they hold themselves. It returns the first excess found.
func (p Permissions) Covers(q Permissions) (bool, string) {
	keys := make([]string, 0, len(q))
	for c := range q {
		keys = append(keys, string(c))
	}
	sort.Strings(keys)
	for _, k := range keys {
		c := Collection(k)
		mine, want := p[c], q[c]
		for _, a := range []Action{Create, Read, Update, Delete, Rotate} {
			if want.Allows(a) && !mine.Allows(a) {
				return false, fmt.Sprintf("%s.%s", c, a)
			}
		}
		if c == WorkerNodes {
			if mine.CreateLimit != 0 && (want.CreateLimit == 0 || want.CreateLimit > mine.CreateLimit) && want.Create {
				return false, "workerNodes.createLimit"
			}
			if mine.ReadScope == ScopeOwn && want.ReadScope != ScopeOwn && want.Read {
				return false, "workerNodes.readScope"
			}
		}
	}
	return true, ""
}

// GrantInput is a grant as a client sends it; absent flags are false.
type GrantInput struct {
	Create      *bool   `json:"create"`
	Read        *bool   `json:"read"`
	Update      *bool   `json:"update"`
	Delete      *bool   `json:"delete"`
	Rotate      *bool   `json:"rotate"`
	CreateLimit *int    `json:"createLimit"`
	ReadScope   *string `json:"readScope"`
}

// MaxCreateLimit bounds createLimit to something a person would type.
const MaxCreateLimit = 10000

// ParsePermissions validates client input into Permissions. Problems are
// reported per field, e.g. "permissions.sshKeys.rotate".
func ParsePermissions(field string, in map[string]GrantInput) (Permissions, []fault.FieldError) {
	out := Permissions{}
	var problems []fault.FieldError
	bad := func(f, msg string) {
		problems = append(problems, fault.FieldError{Field: field + "." + f, Message: msg})
	}
	keys := make([]string, 0, len(in))
	for k := range in {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		c := Collection(k)
		if !knownCollection(c) {
			bad(k, fmt.Sprintf("unknown collection; expected one of %v", Collections))
			continue
		}
		gi := in[k]
		g := Grant{Create: deref(gi.Create), Read: deref(gi.Read), Update: deref(gi.Update), Delete: deref(gi.Delete)}
		if gi.Rotate != nil {
			if c != CloudProviderAccounts {
				bad(k+".rotate", "rotate exists on cloudProviderAccounts only")
			}
			g.Rotate = *gi.Rotate
		}
		if gi.CreateLimit != nil {
			switch {
			case c != WorkerNodes:
				bad(k+".createLimit", "createLimit exists on workerNodes only")
			case *gi.CreateLimit < 0 || *gi.CreateLimit > MaxCreateLimit:
				bad(k+".createLimit", fmt.Sprintf("must be between 0 (no cap) and %d", MaxCreateLimit))
			}
			g.CreateLimit = *gi.CreateLimit
		}
		if gi.ReadScope != nil {
			switch {
			case c != WorkerNodes:
				bad(k+".readScope", "readScope exists on workerNodes only")
			case *gi.ReadScope != ScopeAll && *gi.ReadScope != ScopeOwn:
				bad(k+".readScope", `must be "all" or "own"`)
			}
			g.ReadScope = *gi.ReadScope
		}
		out[c] = g
	}
	return out.Normalized(), problems
}

func knownCollection(c Collection) bool {
	for _, k := range Collections {
		if k == c {
			return true
		}
	}
	return false
}

func deref(b *bool) bool { return b != nil && *b }

func all(c Collection) Grant {
	g := Grant{Create: true, Read: true, Update: true, Delete: true}
	switch c {
	case CloudProviderAccounts:
		g.Rotate = true
	case WorkerNodes:
		g.ReadScope = ScopeAll
	}
	return g
}

func readOnly(c Collection) Grant {
	g := Grant{Read: true}
	if c == WorkerNodes {
		g.ReadScope = ScopeAll
	}
	return g
}
