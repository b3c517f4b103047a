package main

import (
	"context"
	"strings"

	"github.com/dflow-sh/cloud-accounts/shared/api"
	"github.com/dflow-sh/cloud-accounts/shared/awsperms"
	"github.com/dflow-sh/cloud-accounts/shared/fault"
	"github.com/dflow-sh/cloud-accounts/shared/links"
	"github.com/dflow-sh/cloud-accounts/shared/partition"
	"github.com/dflow-sh/cloud-accounts/shared/tenancy"
)

// setupConfig is what the setup route tells customers about dFlow.
type setupConfig struct {
	// principal is the dFlow principal customers' roles trust, in partition:
	// the one this deployment runs in (roles can only be assumed there).
	principal string
	partition partition.Partition
	// templateURL is where the generic role template is published (see
	// cmd/role-template), for quick-create links.
	templateURL string
}

type handlers struct {
	links   *links.Service
	tenancy *tenancy.Service
	setup   setupConfig
}

// Routes is the function's route table.
func (h *handlers) Routes() []api.Route {
	read := api.Allow(tenancy.CloudProviderAccounts, tenancy.Read)
	return []api.Route{
		{Key: "GET /v1/orgs/{orgId}/providers", Permission: read, Handler: h.providers},
		// The setup reveals the external id: only who may link sees it.
		{Key: "GET /v1/orgs/{orgId}/providers/aws/setup", Permission: api.Allow(tenancy.CloudProviderAccounts, tenancy.Create), Handler: h.awsSetup},
		{Key: "POST /v1/orgs/{orgId}/accounts", Permission: api.Allow(tenancy.CloudProviderAccounts, tenancy.Create), Action: "accounts.link", Idempotent: true, Handler: h.create},
		{Key: "GET /v1/orgs/{orgId}/accounts", Permission: read, Handler: h.list},
		{Key: "GET /v1/orgs/{orgId}/accounts/{accountId}", Permission: read, Handler: h.get},
		{Key: "PATCH /v1/orgs/{orgId}/accounts/{accountId}", Permission: api.Allow(tenancy.CloudProviderAccounts, tenancy.Update), Action: "accounts.update", Handler: h.update},
		{Key: "PUT /v1/orgs/{orgId}/accounts/{accountId}/credentials", Permission: api.Allow(tenancy.CloudProviderAccounts, tenancy.Update), Action: "accounts.credentials.replace", Handler: h.replaceCredentials},
		{Key: "POST /v1/orgs/{orgId}/accounts/{accountId}/validate", Permission: read, Action: "accounts.validate", Handler: h.validate},
		{Key: "DELETE /v1/orgs/{orgId}/accounts/{accountId}", Permission: api.Allow(tenancy.CloudProviderAccounts, tenancy.Delete), Action: "accounts.unlink", Handler: h.delete},
	}
}

func (h *handlers) providers(ctx context.Context, r *api.Request) (*api.Response, error) {
	org, err := h.tenancy.GetOrg(ctx, r.OrgID)
	if err != nil {
		return nil, err
	}
	return api.OK(map[string]any{"items": links.Catalog(org.Feature)}), nil
}

func (h *handlers) awsSetup(ctx context.Context, r *api.Request) (*api.Response, error) {
	p := h.setup.partition
	if partID := r.Query("partition"); partID != "" {
		asked, ok := partition.ByID(partID)
		if !ok {
			return nil, fault.Field("partition", `must be "aws", "aws-us-gov" or "aws-cn"`)
		}
		if asked.ID != p.ID {
			return nil, fault.Unprocessablef("partition_not_supported", "this dFlow installation runs in partition %s and cannot assume roles in %s", p.ID, asked.ID)
		}
	}
	principal := h.setup.principal
	externalID, err := h.links.ExternalID(ctx, r.OrgID)
	if err != nil {
		return nil, err
	}
	tpl, err := awsperms.RoleTemplate(p, principal, externalID)
	if err != nil {
		return nil, err
	}
	var quickCreate *string
	if h.setup.templateURL != "" {
		u := awsperms.QuickCreateURL(p, p.DefaultRegion, h.setup.templateURL, roleStackName, map[string]string{awsperms.ExternalIDParameter: externalID})
		quickCreate = &u
	}
	return api.OK(map[string]any{
		"provider":            links.ProviderAWS,
		"partition":           p.ID,
		"externalId":          externalID,
		"principalArn":        principal,
		"trustPolicy":         awsperms.TrustPolicy(p, principal, externalID),
		"permissionsPolicy":   awsperms.PermissionsPolicy(p, false),
		"accessKeyUserPolicy": awsperms.PermissionsPolicy(p, true),
		"cloudFormation": map[string]any{
			"stackName":      roleStackName,
			"template":       tpl,
			"quickCreateUrl": quickCreate,
		},
	}), nil
}

const roleStackName = "dflow-access"

func (h *handlers) create(ctx context.Context, r *api.Request) (*api.Response, error) {
	var in links.LinkInput
	if err := r.Decode(&in); err != nil {
		return nil, err
	}
	l, err := h.links.Create(ctx, r.Caller(), r.OrgID, r.ID, in)
	if err != nil {
		return nil, err
	}
	loc := "/v1/orgs/" + r.OrgID + "/accounts/" + l.ID
	r.SetAuditTarget(loc)
	return api.Created(loc, l).WithVersion(l.Version), nil
}

func (h *handlers) list(ctx context.Context, r *api.Request) (*api.Response, error) {
	f := links.Filter{Provider: r.Query("provider"), Environment: r.Query("environment")}
	// The filters are part of the list a cursor belongs to.
	scope := "orgs/" + r.OrgID + "/accounts?" + strings.Join([]string{f.Provider, f.Environment}, "&")
	page, err := r.Page(scope)
	if err != nil {
		return nil, err
	}
	items, next, err := h.links.List(ctx, r.OrgID, f, page)
	if err != nil {
		return nil, err
	}
	return api.Listed(scope, items, next), nil
}

func (h *handlers) get(ctx context.Context, r *api.Request) (*api.Response, error) {
	l, err := h.links.Get(ctx, r.OrgID, r.Param("accountId"))
	if err != nil {
		return nil, err
	}
	return api.OK(l).WithVersion(l.Version), nil
}

func (h *handlers) update(ctx context.Context, r *api.Request) (*api.Response, error) {
	var in links.PatchInput
	if err := r.Decode(&in); err != nil {
		return nil, err
	}
	ifMatch, err := r.IfMatch()
	if err != nil {
		return nil, err
	}
	l, err := h.links.Update(ctx, r.OrgID, r.Param("accountId"), in, ifMatch)
	if err != nil {
		return nil, err
	}
	return api.OK(l).WithVersion(l.Version), nil
}

func (h *handlers) replaceCredentials(ctx context.Context, r *api.Request) (*api.Response, error) {
	var in links.CredentialsInput
	if err := r.Decode(&in); err != nil {
		return nil, err
	}
	ifMatch, err := r.IfMatch()
	if err != nil {
		return nil, err
	}
	l, err := h.links.ReplaceCredentials(ctx, r.OrgID, r.Param("accountId"), r.ID, in, ifMatch)
	if err != nil {
		return nil, err
	}
	return api.OK(l).WithVersion(l.Version), nil
}

func (h *handlers) validate(ctx context.Context, r *api.Request) (*api.Response, error) {
	l, err := h.links.Validate(ctx, r.OrgID, r.Param("accountId"), r.ID)
	if err != nil {
		return nil, err
	}
	return api.OK(l).WithVersion(l.Version), nil
}

func (h *handlers) delete(ctx context.Context, r *api.Request) (*api.Response, error) {
	ifMatch, err := r.IfMatch()
	if err != nil {
		return nil, err
	}
	if err := h.links.Delete(ctx, r.OrgID, r.Param("accountId"), ifMatch); err != nil {
		return nil, err
	}
	return api.NoContent(), nil
}
