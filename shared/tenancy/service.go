package tenancy

import (
	"context"
	"fmt"
	"regexp"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/dflow-sh/cloud-accounts/shared/fault"
	"github.com/dflow-sh/cloud-accounts/shared/ids"
)

// Page asks for one page of a list; After is the store's opaque position.
type Page struct {
	Limit int
	After string
}

// Store keeps organisations, roles and members. Implementations enforce the
// invariants with conditional writes: unique role names, member counts in
// step with members, at least one Admin.
type Store interface {
	CreateOrg(ctx context.Context, org Org, roles []Role, owner Member) error
	GetOrg(ctx context.Context, orgID string) (Org, error)
	UpdateOrg(ctx context.Context, org Org, prevVersion int64) error
	ListOrgsOfUser(ctx context.Context, userID string, p Page) ([]Org, string, error)

	GetRole(ctx context.Context, orgID, roleID string) (Role, error)
	ListRoles(ctx context.Context, orgID string, p Page) ([]Role, string, error)
	CreateRole(ctx context.Context, r Role) error
	UpdateRole(ctx context.Context, r Role, prev Role) error
	DeleteRole(ctx context.Context, r Role) error

	GetMember(ctx context.Context, orgID, userID string) (Member, error)
	ListMembers(ctx context.Context, orgID string, p Page) ([]Member, string, error)
	AddMember(ctx context.Context, m Member) error
	ChangeMemberRole(ctx context.Context, m Member, prev Member) error
	RemoveMember(ctx context.Context, m Member) error
}

// Service holds the tenancy use-cases.
type Service struct {
	store Store
	now   func() time.Time
}

// NewService returns the use-cases over store.
func NewService(store Store, now func() time.Time) *Service {
	if now == nil {
		now = time.Now
	}
	return &Service{store: store, now: func() time.Time { return now().UTC() }}
}

// Caller is the authenticated user and, inside an organisation, their role.
type Caller struct {
	UserID string
	Role   Role
}

// FeatureKey is a feature flag name, e.g. "provider.gcp".
var featureKey = regexp.MustCompile(`^[a-z][a-z0-9]*(\.[a-z][a-z0-9-]*)*$`)

const (
	maxNameLen     = 64
	maxDescLen     = 256
	maxFeatures    = 50
	maxFeatureName = 64
)

func checkName(field, name string) *fault.FieldError {
	n := utf8.RuneCountInString(name)
	switch {
	case strings.TrimSpace(name) != name:
		return &fault.FieldError{Field: field, Message: "must not start or end with spaces"}
	case n < 1 || n > maxNameLen:
		return &fault.FieldError{Field: field, Message: fmt.Sprintf("must be 1 to %d characters", maxNameLen)}
	case strings.ContainsFunc(name, func(r rune) bool { return r < 0x20 || r == 0x7f }):
		return &fault.FieldError{Field: field, Message: "must not contain control characters"}
	}
	return nil
}

// CreateOrg makes an organisation with the built-in roles; the caller joins as Admin.
func (s *Service) CreateOrg(ctx context.Context, userID, name string) (Org, error) {
	if fe := checkName("name", name); fe != nil {
		return Org{}, fault.Validation(*fe)
	}
	now := s.now()
	org := Org{ID: ids.New(ids.Org), Name: name, Features: map[string]bool{}, Version: 1, CreatedAt: now, CreatedBy: userID, UpdatedAt: now}
	owner := Member{OrgID: org.ID, UserID: userID, RoleID: AdminRoleID, AddedAt: now, AddedBy: userID, Version: 1}
	roles := BuiltinRoles(org.ID, now)
	for i := range roles {
		if roles[i].ID == AdminRoleID {
			roles[i].Members = 1
		}
	}
	if err := s.store.CreateOrg(ctx, org, roles, owner); err != nil {
		return Org{}, fmt.Errorf("create org: %w", err)
	}
	return org, nil
}

// ListOrgs lists the organisations userID belongs to.
func (s *Service) ListOrgs(ctx context.Context, userID string, p Page) ([]Org, string, error) {
	return s.store.ListOrgsOfUser(ctx, userID, p)
}

// GetOrg returns one organisation.
func (s *Service) GetOrg(ctx context.Context, orgID string) (Org, error) {
	return s.store.GetOrg(ctx, orgID)
}

// OrgPatch changes an organisation; nil fields stay as they are. Features are
// merged: a null value removes the flag.
type OrgPatch struct {
	Name     *string          `json:"name"`
	Features map[string]*bool `json:"features"`
}

// UpdateOrg applies patch; ifMatch, when set, must equal the current version.
func (s *Service) UpdateOrg(ctx context.Context, orgID string, patch OrgPatch, ifMatch *int64) (Org, error) {
	var problems []fault.FieldError
	if patch.Name != nil {
		if fe := checkName("name", *patch.Name); fe != nil {
			problems = append(problems, *fe)
		}
	}
	for k := range patch.Features {
		if len(k) > maxFeatureName || !featureKey.MatchString(k) {
			problems = append(problems, fault.FieldError{Field: "features." + k, Message: "must be a dotted lower-case name such as provider.gcp"})
		}
	}
	if patch.Name == nil && patch.Features == nil {
		problems = append(problems, fault.FieldError{Field: "body", Message: "names nothing to change"})
	}
	if len(problems) > 0 {
		return Org{}, fault.Validation(problems...)
	}
	org, err := s.store.GetOrg(ctx, orgID)
	if err != nil {
		return Org{}, err
	}
	if err := checkVersion(ifMatch, org.Version); err != nil {
		return Org{}, err
	}
	prev := org.Version
	if patch.Name != nil {
		org.Name = *patch.Name
	}
	features := make(map[string]bool, len(org.Features))
	for k, v := range org.Features {
		features[k] = v
	}
	for k, v := range patch.Features {
		if v == nil {
			delete(features, k)
		} else {
			features[k] = *v
		}
	}
	if len(features) > maxFeatures {
		return Org{}, fault.Field("features", "at most %d flags", maxFeatures)
	}
	org.Features = features
	org.Version++
	org.UpdatedAt = s.now()
	if err := s.store.UpdateOrg(ctx, org, prev); err != nil {
		return Org{}, fmt.Errorf("update org %s: %w", orgID, err)
	}
	return org, nil
}

func checkVersion(ifMatch *int64, current int64) error {
	if ifMatch != nil && *ifMatch != current {
		return fault.PreconditionFailedf("version_mismatch", "the resource is at version %d, not %d", current, *ifMatch).With("currentVersion", current)
	}
	return nil
}

// MemberRole returns userID's role in orgID; NotFound when not a member.
func (s *Service) MemberRole(ctx context.Context, orgID, userID string) (Role, error) {
	m, err := s.store.GetMember(ctx, orgID, userID)
	if err != nil {
		return Role{}, err
	}
	r, err := s.store.GetRole(ctx, orgID, m.RoleID)
	if err != nil {
		return Role{}, fmt.Errorf("role %s of member %s: %w", m.RoleID, userID, err)
	}
	return r, nil
}

// OrgExists reports whether an organisation exists.
func (s *Service) OrgExists(ctx context.Context, orgID string) (bool, error) {
	_, err := s.store.GetOrg(ctx, orgID)
	if fault.KindOf(err) == fault.NotFound {
		return false, nil
	}
	return err == nil, err
}

// RoleInput creates or replaces a role's fields.
type RoleInput struct {
	Name        *string               `json:"name"`
	Description *string               `json:"description"`
	Permissions map[string]GrantInput `json:"permissions"`
}

func (in RoleInput) validate(creating bool) (Permissions, error) {
	var problems []fault.FieldError
	if in.Name == nil && creating {
		problems = append(problems, fault.FieldError{Field: "name", Message: "is required"})
	}
	if in.Name != nil {
		if fe := checkName("name", *in.Name); fe != nil {
			problems = append(problems, *fe)
		}
	}
	if in.Description != nil && utf8.RuneCountInString(*in.Description) > maxDescLen {
		problems = append(problems, fault.FieldError{Field: "description", Message: fmt.Sprintf("at most %d characters", maxDescLen)})
	}
	var perms Permissions
	if in.Permissions != nil || creating {
		var pp []fault.FieldError
		perms, pp = ParsePermissions("permissions", in.Permissions)
		problems = append(problems, pp...)
	}
	if len(problems) > 0 {
		return nil, fault.Validation(problems...)
	}
	return perms, nil
}

func checkGrantable(caller Caller, perms Permissions) error {
	if ok, excess := caller.Role.Permissions.Covers(perms); !ok {
		return fault.Forbiddenf("privilege_escalation", "a role can only grant what your own role holds; yours lacks %s", excess)
	}
	return nil
}

// ListRoles lists the roles of an organisation.
func (s *Service) ListRoles(ctx context.Context, orgID string, p Page) ([]Role, string, error) {
	return s.store.ListRoles(ctx, orgID, p)
}

// GetRole returns one role.
func (s *Service) GetRole(ctx context.Context, orgID, roleID string) (Role, error) {
	return s.store.GetRole(ctx, orgID, roleID)
}

// CreateRole adds a custom role. A new role grants only what it lists.
func (s *Service) CreateRole(ctx context.Context, caller Caller, orgID string, in RoleInput) (Role, error) {
	perms, err := in.validate(true)
	if err != nil {
		return Role{}, err
	}
	if err := checkGrantable(caller, perms); err != nil {
		return Role{}, err
	}
	now := s.now()
	r := Role{OrgID: orgID, ID: ids.New(ids.Role), Name: *in.Name, Permissions: perms, Version: 1, CreatedAt: now, UpdatedAt: now}
	if in.Description != nil {
		r.Description = *in.Description
	}
	if err := s.store.CreateRole(ctx, r); err != nil {
		return Role{}, fmt.Errorf("create role: %w", err)
	}
	return r, nil
}

// UpdateRole changes a custom role; built-in roles cannot change.
func (s *Service) UpdateRole(ctx context.Context, caller Caller, orgID, roleID string, in RoleInput, ifMatch *int64) (Role, error) {
	perms, err := in.validate(false)
	if err != nil {
		return Role{}, err
	}
	if in.Name == nil && in.Description == nil && in.Permissions == nil {
		return Role{}, fault.Field("body", "names nothing to change")
	}
	prev, err := s.store.GetRole(ctx, orgID, roleID)
	if err != nil {
		return Role{}, err
	}
	if prev.Builtin {
		return Role{}, fault.Conflictf("role_builtin", "the built-in role %s cannot be changed", prev.Name)
	}
	if err := checkVersion(ifMatch, prev.Version); err != nil {
		return Role{}, err
	}
	// Editing a role is granting its permissions anew: the caller must hold
	// all of them, old and new.
	if err := checkGrantable(caller, prev.Permissions); err != nil {
		return Role{}, err
	}
	r := prev
	if in.Name != nil {
		r.Name = *in.Name
	}
	if in.Description != nil {
		r.Description = *in.Description
	}
	if perms != nil {
		if err := checkGrantable(caller, perms); err != nil {
			return Role{}, err
		}
		r.Permissions = perms
	}
	r.Version++
	r.UpdatedAt = s.now()
	if err := s.store.UpdateRole(ctx, r, prev); err != nil {
		return Role{}, fmt.Errorf("update role %s: %w", roleID, err)
	}
	return r, nil
}

// DeleteRole removes a custom role nobody holds.
func (s *Service) DeleteRole(ctx context.Context, orgID, roleID string, ifMatch *int64) error {
	r, err := s.store.GetRole(ctx, orgID, roleID)
	if err != nil {
		return err
	}
	if r.Builtin {
		return fault.Conflictf("role_builtin", "the built-in role %s cannot be deleted", r.Name)
	}
	if err := checkVersion(ifMatch, r.Version); err != nil {
		return err
	}
	if r.Members > 0 {
		return fault.Conflictf("role_in_use", "%d member(s) hold this role; move them to another role first", r.Members).With("memberCount", r.Members)
	}
	return s.store.DeleteRole(ctx, r)
}

// ListMembers lists the members of an organisation.
func (s *Service) ListMembers(ctx context.Context, orgID string, p Page) ([]Member, string, error) {
	return s.store.ListMembers(ctx, orgID, p)
}

// PutMember adds userID with roleID, or moves them to roleID. Adding needs
// team.create besides the route's team.update; the role handed out must be
// covered by the caller's own.
func (s *Service) PutMember(ctx context.Context, caller Caller, orgID, userID, roleID string, ifMatch *int64) (Member, bool, error) {
	if !ids.ValidRole(roleID) {
		return Member{}, false, fault.Field("roleId", "is not a role id")
	}
	role, err := s.store.GetRole(ctx, orgID, roleID)
	if fault.KindOf(err) == fault.NotFound {
		return Member{}, false, fault.Field("roleId", "no such role in this organisation")
	}
	if err != nil {
		return Member{}, false, err
	}
	if err := checkGrantable(caller, role.Permissions); err != nil {
		return Member{}, false, err
	}
	now := s.now()
	prev, err := s.store.GetMember(ctx, orgID, userID)
	switch {
	case fault.KindOf(err) == fault.NotFound:
		if ifMatch != nil {
			return Member{}, false, fault.PreconditionFailedf("version_mismatch", "the member does not exist")
		}
		if !caller.Role.Allows(Team, Create) {
			return Member{}, false, fault.Forbiddenf("permission_denied", "adding a member needs team.create")
		}
		m := Member{OrgID: orgID, UserID: userID, RoleID: roleID, AddedAt: now, AddedBy: caller.UserID, Version: 1}
		if err := s.store.AddMember(ctx, m); err != nil {
			return Member{}, false, fmt.Errorf("add member %s: %w", userID, err)
		}
		return m, true, nil
	case err != nil:
		return Member{}, false, err
	}
	if err := checkVersion(ifMatch, prev.Version); err != nil {
		return Member{}, false, err
	}
	if prev.RoleID == roleID {
		return prev, false, nil
	}
	// Moving someone also takes their old role away: only who could grant
	// it may do that (else a team manager could demote an Admin).
	if prev.UserID != caller.UserID {
		old, err := s.store.GetRole(ctx, orgID, prev.RoleID)
		if err != nil {
			return Member{}, false, err
		}
		if err := checkGrantable(caller, old.Permissions); err != nil {
			return Member{}, false, err
		}
	}
	m := prev
	m.RoleID = roleID
	m.Version++
	if err := s.store.ChangeMemberRole(ctx, m, prev); err != nil {
		return Member{}, false, fmt.Errorf("change role of member %s: %w", userID, err)
	}
	return m, false, nil
}

// RemoveMember removes userID from the organisation; never the last Admin.
func (s *Service) RemoveMember(ctx context.Context, caller Caller, orgID, userID string, ifMatch *int64) error {
	m, err := s.store.GetMember(ctx, orgID, userID)
	if err != nil {
		return err
	}
	if err := checkVersion(ifMatch, m.Version); err != nil {
		return err
	}
	// Removing someone takes away their role: only who could grant it may.
	if m.UserID != caller.UserID {
		role, err := s.store.GetRole(ctx, orgID, m.RoleID)
		if err != nil {
			return err
		}
		if err := checkGrantable(caller, role.Permissions); err != nil {
			return err
		}
	}
	return s.store.RemoveMember(ctx, m)
}
