package tenancy

import (
	"time"
)

// Built-in role ids: the same in every organisation.
const (
	AdminRoleID     = "admin"
	DeveloperRoleID = "developer"
	ViewerRoleID    = "viewer"
)

// Org is an organisation: the tenant everything else belongs to.
type Org struct {
	ID        string          `json:"id"`
	Name      string          `json:"name"`
	Features  map[string]bool `json:"features"`
	Version   int64           `json:"version"`
	CreatedAt time.Time       `json:"createdAt"`
	CreatedBy string          `json:"createdBy"`
	UpdatedAt time.Time       `json:"updatedAt"`
}

// Feature reports whether a feature flag is on.
func (o Org) Feature(name string) bool { return o.Features[name] }

// Role is a named set of permissions inside one organisation.
type Role struct {
	OrgID       string      `json:"-"`
	ID          string      `json:"id"`
	Name        string      `json:"name"`
	Description string      `json:"description"`
	Builtin     bool        `json:"builtin"`
	Permissions Permissions `json:"permissions"`
	// Members counts the members holding the role, kept in step with them by
	// transactions: it answers "in use?" and "last Admin?" in one read.
	Members   int       `json:"memberCount"`
	Version   int64     `json:"version"`
	CreatedAt time.Time `json:"createdAt"`
	UpdatedAt time.Time `json:"updatedAt"`
}

// Allows reports whether the role grants action on collection.
func (r Role) Allows(c Collection, a Action) bool { return r.Permissions.Allows(c, a) }

// IsAdmin reports whether this is the built-in Admin role.
func (r Role) IsAdmin() bool { return r.ID == AdminRoleID }

// Member is a user's membership of an organisation.
type Member struct {
	OrgID   string    `json:"-"`
	UserID  string    `json:"userId"`
	RoleID  string    `json:"roleId"`
	AddedAt time.Time `json:"addedAt"`
	AddedBy string    `json:"addedBy"`
	Version int64     `json:"version"`
}

// BuiltinRoles are seeded in every new organisation.
func BuiltinRoles(orgID string, now time.Time) []Role {
	admin, dev, viewer := Permissions{}, Permissions{}, Permissions{}
	for _, c := range Collections {
		admin[c] = all(c)
		viewer[c] = readOnly(c)
		dev[c] = readOnly(c)
	}
	wn := dev[WorkerNodes]
	wn.Create, wn.Update = true, true
	dev[WorkerNodes] = wn
	mk := func(id, name, desc string, p Permissions) Role {
		return Role{OrgID: orgID, ID: id, Name: name, Description: desc, Builtin: true, Permissions: p, Version: 1, CreatedAt: now, UpdatedAt: now}
	}
	return []Role{
		mk(AdminRoleID, "Admin", "Everything, including team, roles and organisation settings. Cannot be edited or deleted.", admin),
		mk(DeveloperRoleID, "Developer", "Reads everything; creates and updates worker nodes.", dev),
		mk(ViewerRoleID, "Viewer", "Reads everything; changes nothing.", viewer),
	}
}
