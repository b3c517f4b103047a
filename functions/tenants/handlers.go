package main

import (
	"context"

	"github.com/dflow-sh/cloud-accounts/shared/api"
	"github.com/dflow-sh/cloud-accounts/shared/audit"
	"github.com/dflow-sh/cloud-accounts/shared/fault"
	"github.com/dflow-sh/cloud-accounts/shared/platform"
	"github.com/dflow-sh/cloud-accounts/shared/tenancy"
)

// auditLog reads the audit trail.
type auditLog interface {
	ListAudit(ctx context.Context, orgID string, p tenancy.Page) ([]audit.Event, string, error)
}

type handlers struct {
	tenancy *tenancy.Service
	audit   auditLog
}

func routes(p *platform.Platform) []api.Route {
	h := &handlers{tenancy: p.Tenancy, audit: p.Store}
	allow := api.Allow
	return []api.Route{
		{Key: "POST /v1/orgs", Permission: api.AnyUser(), Action: "orgs.create", Idempotent: true, Handler: h.createOrg},
		{Key: "GET /v1/orgs", Permission: api.AnyUser(), Handler: h.listOrgs},
		{Key: "GET /v1/orgs/{orgId}", Permission: api.AnyMember(), Handler: h.getOrg},
		{Key: "PATCH /v1/orgs/{orgId}", Permission: api.AdminOnly(), Action: "orgs.update", Handler: h.updateOrg},

		{Key: "GET /v1/orgs/{orgId}/roles", Permission: allow(tenancy.Roles, tenancy.Read), Handler: h.listRoles},
		{Key: "POST /v1/orgs/{orgId}/roles", Permission: allow(tenancy.Roles, tenancy.Create), Action: "roles.create", Idempotent: true, Handler: h.createRole},
		{Key: "GET /v1/orgs/{orgId}/roles/{roleId}", Permission: allow(tenancy.Roles, tenancy.Read), Handler: h.getRole},
		{Key: "PATCH /v1/orgs/{orgId}/roles/{roleId}", Permission: allow(tenancy.Roles, tenancy.Update), Action: "roles.update", Handler: h.updateRole},
		{Key: "DELETE /v1/orgs/{orgId}/roles/{roleId}", Permission: allow(tenancy.Roles, tenancy.Delete), Action: "roles.delete", Handler: h.deleteRole},

		{Key: "GET /v1/orgs/{orgId}/members", Permission: allow(tenancy.Team, tenancy.Read), Handler: h.listMembers},
		{Key: "PUT /v1/orgs/{orgId}/members/{userId}", Permission: allow(tenancy.Team, tenancy.Update), Action: "members.put", Handler: h.putMember},
		{Key: "DELETE /v1/orgs/{orgId}/members/{userId}", Permission: allow(tenancy.Team, tenancy.Delete), Action: "members.delete", Handler: h.deleteMember},

		{Key: "GET /v1/orgs/{orgId}/audit", Permission: allow(tenancy.Audit, tenancy.Read), Handler: h.listAudit},
	}
}

func (h *handlers) createOrg(ctx context.Context, r *api.Request) (*api.Response, error) {
	var in struct {
		Name *string `json:"name"`
	}
	if err := r.Decode(&in); err != nil {
		return nil, err
	}
	name := ""
	if in.Name != nil {
		name = *in.Name
	}
	org, err := h.tenancy.CreateOrg(ctx, r.UserID, name)
	if err != nil {
		return nil, err
	}
	r.OrgID = org.ID
	r.SetAuditTarget("/v1/orgs/" + org.ID)
	return api.Created("/v1/orgs/"+org.ID, org).WithVersion(org.Version), nil
}

func (h *handlers) listOrgs(ctx context.Context, r *api.Request) (*api.Response, error) {
	scope := "orgs-of/" + r.UserID
	page, err := r.Page(scope)
	if err != nil {
		return nil, err
	}
	orgs, next, err := h.tenancy.ListOrgs(ctx, r.UserID, page)
	if err != nil {
		return nil, err
	}
	return api.Listed(scope, orgs, next), nil
}

func (h *handlers) getOrg(ctx context.Context, r *api.Request) (*api.Response, error) {
	org, err := h.tenancy.GetOrg(ctx, r.OrgID)
	if err != nil {
		return nil, err
	}
	return api.OK(org).WithVersion(org.Version), nil
}

func (h *handlers) updateOrg(ctx context.Context, r *api.Request) (*api.Response, error) {
	var in tenancy.OrgPatch
	if err := r.Decode(&in); err != nil {
		return nil, err
	}
	ifMatch, err := r.IfMatch()
	if err != nil {
		return nil, err
	}
	org, err := h.tenancy.UpdateOrg(ctx, r.OrgID, in, ifMatch)
	if err != nil {
		return nil, err
	}
	return api.OK(org).WithVersion(org.Version), nil
}

func (h *handlers) listRoles(ctx context.Context, r *api.Request) (*api.Response, error) {
	scope := "orgs/" + r.OrgID + "/roles"
	page, err := r.Page(scope)
	if err != nil {
		return nil, err
	}
	roles, next, err := h.tenancy.ListRoles(ctx, r.OrgID, page)
	if err != nil {
		return nil, err
	}
	return api.Listed(scope, roles, next), nil
}

func (h *handlers) createRole(ctx context.Context, r *api.Request) (*api.Response, error) {
	var in tenancy.RoleInput
	if err := r.Decode(&in); err != nil {
		return nil, err
	}
	role, err := h.tenancy.CreateRole(ctx, r.Caller(), r.OrgID, in)
	if err != nil {
		return nil, err
	}
	loc := "/v1/orgs/" + r.OrgID + "/roles/" + role.ID
	r.SetAuditTarget(loc)
	return api.Created(loc, role).WithVersion(role.Version), nil
}

func (h *handlers) getRole(ctx context.Context, r *api.Request) (*api.Response, error) {
	role, err := h.tenancy.GetRole(ctx, r.OrgID, r.Param("roleId"))
	if err != nil {
		return nil, err
	}
	return api.OK(role).WithVersion(role.Version), nil
}

func (h *handlers) updateRole(ctx context.Context, r *api.Request) (*api.Response, error) {
	var in tenancy.RoleInput
	if err := r.Decode(&in); err != nil {
		return nil, err
	}
	ifMatch, err := r.IfMatch()
	if err != nil {
		return nil, err
	}
	role, err := h.tenancy.UpdateRole(ctx, r.Caller(), r.OrgID, r.Param("roleId"), in, ifMatch)
	if err != nil {
		return nil, err
	}
	return api.OK(role).WithVersion(role.Version), nil
}

func (h *handlers) deleteRole(ctx context.Context, r *api.Request) (*api.Response, error) {
	ifMatch, err := r.IfMatch()
	if err != nil {
		return nil, err
	}
	if err := h.tenancy.DeleteRole(ctx, r.OrgID, r.Param("roleId"), ifMatch); err != nil {
		return nil, err
	}
	return api.NoContent(), nil
}

func (h *handlers) listMembers(ctx context.Context, r *api.Request) (*api.Response, error) {
	scope := "orgs/" + r.OrgID + "/members"
	page, err := r.Page(scope)
	if err != nil {
		return nil, err
	}
	members, next, err := h.tenancy.ListMembers(ctx, r.OrgID, page)
	if err != nil {
		return nil, err
	}
	return api.Listed(scope, members, next), nil
}

func (h *handlers) putMember(ctx context.Context, r *api.Request) (*api.Response, error) {
	var in struct {
		RoleID *string `json:"roleId"`
	}
	if err := r.Decode(&in); err != nil {
		return nil, err
	}
	if in.RoleID == nil {
		return nil, fault.Field("roleId", "is required")
	}
	ifMatch, err := r.IfMatch()
	if err != nil {
		return nil, err
	}
	m, created, err := h.tenancy.PutMember(ctx, r.Caller(), r.OrgID, r.Param("userId"), *in.RoleID, ifMatch)
	if err != nil {
		return nil, err
	}
	if created {
		return api.Created("/v1/orgs/"+r.OrgID+"/members/"+m.UserID, m).WithVersion(m.Version), nil
	}
	return api.OK(m).WithVersion(m.Version), nil
}

func (h *handlers) deleteMember(ctx context.Context, r *api.Request) (*api.Response, error) {
	ifMatch, err := r.IfMatch()
	if err != nil {
		return nil, err
	}
	if err := h.tenancy.RemoveMember(ctx, r.Caller(), r.OrgID, r.Param("userId"), ifMatch); err != nil {
		return nil, err
	}
	return api.NoContent(), nil
}

func (h *handlers) listAudit(ctx context.Context, r *api.Request) (*api.Response, error) {
	scope := "orgs/" + r.OrgID + "/audit"
	page, err := r.Page(scope)
	if err != nil {
		return nil, err
	}
	events, next, err := h.audit.ListAudit(ctx, r.OrgID, page)
	if err != nil {
		return nil, err
	}
	return api.Listed(scope, events, next), nil
}
