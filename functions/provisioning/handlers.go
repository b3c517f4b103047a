package main

import (
	"context"
	"slices"

	"github.com/dflow-sh/cloud-accounts/shared/access"
	"github.com/dflow-sh/cloud-accounts/shared/api"
	"github.com/dflow-sh/cloud-accounts/shared/fault"
	"github.com/dflow-sh/cloud-accounts/shared/groups"
	"github.com/dflow-sh/cloud-accounts/shared/keypairs"
	"github.com/dflow-sh/cloud-accounts/shared/nodes"
	"github.com/dflow-sh/cloud-accounts/shared/platform"
	"github.com/dflow-sh/cloud-accounts/shared/tenancy"
)

type handlers struct {
	keys   *keypairs.Service
	groups *groups.Service
	nodes  *nodes.Service
}

const (
	keysPath   = "/v1/orgs/{orgId}/ssh-keys"
	groupsPath = "/v1/orgs/{orgId}/security-groups"
	nodesPath  = "/v1/orgs/{orgId}/worker-nodes"
)

// Routes is the function's route table.
func (h *handlers) Routes() []api.Route {
	allow := api.Allow
	return []api.Route{
		{Key: "POST " + keysPath, Permission: allow(tenancy.SSHKeys, tenancy.Create), Action: "sshKeys.create", Idempotent: true, Handler: h.createKey},
		{Key: "GET " + keysPath, Permission: allow(tenancy.SSHKeys, tenancy.Read), Handler: h.listKeys},
		{Key: "GET " + keysPath + "/{keyId}", Permission: allow(tenancy.SSHKeys, tenancy.Read), Handler: h.getKey},
		{Key: "DELETE " + keysPath + "/{keyId}", Permission: allow(tenancy.SSHKeys, tenancy.Delete), Action: "sshKeys.delete", Handler: h.deleteKey},

		{Key: "POST " + groupsPath, Permission: allow(tenancy.SecurityGroups, tenancy.Create), Action: "securityGroups.create", Idempotent: true, Handler: h.createGroup},
		{Key: "GET " + groupsPath, Permission: allow(tenancy.SecurityGroups, tenancy.Read), Handler: h.listGroups},
		{Key: "GET " + groupsPath + "/{groupId}", Permission: allow(tenancy.SecurityGroups, tenancy.Read), Handler: h.getGroup},
		{Key: "PATCH " + groupsPath + "/{groupId}", Permission: allow(tenancy.SecurityGroups, tenancy.Update), Action: "securityGroups.update", Handler: h.updateGroup},
		{Key: "POST " + groupsPath + "/{groupId}/sync", Permission: allow(tenancy.SecurityGroups, tenancy.Update), Action: "securityGroups.sync", Handler: h.syncGroup},
		{Key: "DELETE " + groupsPath + "/{groupId}", Permission: allow(tenancy.SecurityGroups, tenancy.Delete), Action: "securityGroups.delete", Handler: h.deleteGroup},

		{Key: "POST " + nodesPath, Permission: allow(tenancy.WorkerNodes, tenancy.Create), Action: "workerNodes.create", Idempotent: true, Handler: h.createNode},
		{Key: "GET " + nodesPath, Permission: allow(tenancy.WorkerNodes, tenancy.Read), Handler: h.listNodes},
		{Key: "GET " + nodesPath + "/{nodeId}", Permission: allow(tenancy.WorkerNodes, tenancy.Read), Handler: h.getNode},
		{Key: "POST " + nodesPath + "/{nodeId}/actions", Permission: allow(tenancy.WorkerNodes, tenancy.Update), Action: "workerNodes.action", Handler: h.nodeAction},
		{Key: "DELETE " + nodesPath + "/{nodeId}", Permission: allow(tenancy.WorkerNodes, tenancy.Delete), Action: "workerNodes.delete", Handler: h.deleteNode},
	}
}

// Jobs are the function's scheduled work.
func (h *handlers) Jobs() map[string]platform.Job {
	return map[string]platform.Job{
		"reconcile-nodes": func(ctx context.Context) (any, error) { return h.nodes.Reconcile(ctx) },
	}
}

// needs refuses a caller whose role lacks any of the grants: using a link,
// a key or a group needs read on it too.
func needs(r *api.Request, grants ...[2]string) error {
	for _, g := range grants {
		c, a := tenancy.Collection(g[0]), tenancy.Action(g[1])
		if !r.Role.Allows(c, a) {
			return fault.Forbiddenf("permission_denied", "your role %q lacks %s.%s", r.Role.Name, c, a).With("permission", g[0]+"."+g[1])
		}
	}
	return nil
}

var (
	readAccounts = [2]string{string(tenancy.CloudProviderAccounts), string(tenancy.Read)}
	readKeys     = [2]string{string(tenancy.SSHKeys), string(tenancy.Read)}
	readGroups   = [2]string{string(tenancy.SecurityGroups), string(tenancy.Read)}
)

func ctxOf(ctx context.Context, r *api.Request) context.Context {
	return access.WithRequestID(ctx, r.ID)
}

// --- SSH keys

func (h *handlers) createKey(ctx context.Context, r *api.Request) (*api.Response, error) {
	var in keypairs.Input
	if err := r.Decode(&in); err != nil {
		return nil, err
	}
	k, err := h.keys.Register(ctx, r.Caller(), r.OrgID, in)
	if err != nil {
		return nil, err
	}
	loc := "/v1/orgs/" + r.OrgID + "/ssh-keys/" + k.ID
	r.SetAuditTarget(loc)
	return api.Created(loc, k).WithVersion(k.Version), nil
}

func (h *handlers) listKeys(ctx context.Context, r *api.Request) (*api.Response, error) {
	scope := "orgs/" + r.OrgID + "/ssh-keys"
	page, err := r.Page(scope)
	if err != nil {
		return nil, err
	}
	items, next, err := h.keys.List(ctx, r.OrgID, page)
	if err != nil {
		return nil, err
	}
	return api.Listed(scope, items, next), nil
}

func (h *handlers) getKey(ctx context.Context, r *api.Request) (*api.Response, error) {
	k, err := h.keys.Get(ctx, r.OrgID, r.Param("keyId"))
	if err != nil {
		return nil, err
	}
	return api.OK(k).WithVersion(k.Version), nil
}

func (h *handlers) deleteKey(ctx context.Context, r *api.Request) (*api.Response, error) {
	ifMatch, err := r.IfMatch()
	if err != nil {
		return nil, err
	}
	if err := h.keys.Delete(ctxOf(ctx, r), r.OrgID, r.Param("keyId"), ifMatch); err != nil {
		return nil, err
	}
	return api.NoContent(), nil
}

// --- Security groups

func (h *handlers) createGroup(ctx context.Context, r *api.Request) (*api.Response, error) {
	if err := needs(r, readAccounts); err != nil {
		return nil, err
	}
	var in groups.Input
	if err := r.Decode(&in); err != nil {
		return nil, err
	}
	g, err := h.groups.Create(ctxOf(ctx, r), r.Caller(), r.OrgID, r.ID, in)
	if err != nil {
		return nil, err
	}
	loc := "/v1/orgs/" + r.OrgID + "/security-groups/" + g.ID
	r.SetAuditTarget(loc)
	return api.Created(loc, g).WithVersion(g.Version), nil
}

func (h *handlers) listGroups(ctx context.Context, r *api.Request) (*api.Response, error) {
	f := groups.Filter{AccountID: r.Query("accountId"), Region: r.Query("region")}
	scope := "orgs/" + r.OrgID + "/security-groups?" + f.AccountID + "&" + f.Region
	page, err := r.Page(scope)
	if err != nil {
		return nil, err
	}
	items, next, err := h.groups.List(ctx, r.OrgID, f, page)
	if err != nil {
		return nil, err
	}
	return api.Listed(scope, items, next), nil
}

func (h *handlers) getGroup(ctx context.Context, r *api.Request) (*api.Response, error) {
	g, err := h.groups.Get(ctxOf(ctx, r), r.OrgID, r.Param("groupId"))
	if err != nil {
		return nil, err
	}
	return api.OK(g).WithVersion(g.Version), nil
}

func (h *handlers) updateGroup(ctx context.Context, r *api.Request) (*api.Response, error) {
	var in groups.Patch
	if err := r.Decode(&in); err != nil {
		return nil, err
	}
	ifMatch, err := r.IfMatch()
	if err != nil {
		return nil, err
	}
	g, err := h.groups.Update(ctxOf(ctx, r), r.OrgID, r.Param("groupId"), r.ID, in, ifMatch)
	if err != nil {
		return nil, err
	}
	return api.OK(g).WithVersion(g.Version), nil
}

func (h *handlers) syncGroup(ctx context.Context, r *api.Request) (*api.Response, error) {
	g, err := h.groups.Sync(ctxOf(ctx, r), r.OrgID, r.Param("groupId"), r.ID)
	if err != nil {
		return nil, err
	}
	return api.OK(g).WithVersion(g.Version), nil
}

func (h *handlers) deleteGroup(ctx context.Context, r *api.Request) (*api.Response, error) {
	ifMatch, err := r.IfMatch()
	if err != nil {
		return nil, err
	}
	if err := h.groups.Delete(ctxOf(ctx, r), r.OrgID, r.Param("groupId"), ifMatch); err != nil {
		return nil, err
	}
	return api.NoContent(), nil
}

// --- Worker nodes

func (h *handlers) createNode(ctx context.Context, r *api.Request) (*api.Response, error) {
	if err := needs(r, readAccounts, readKeys, readGroups); err != nil {
		return nil, err
	}
	var in nodes.Input
	if err := r.Decode(&in); err != nil {
		return nil, err
	}
	// The node id comes from the Idempotency-Key, so a retried request
	// finds the node (and instance) its first attempt made.
	key := r.Header("Idempotency-Key")
	if key == "" {
		key = r.ID
	}
	n, err := h.nodes.Create(ctxOf(ctx, r), r.Caller(), r.OrgID, key, in)
	if n.ID != "" {
		r.SetAuditTarget("/v1/orgs/" + r.OrgID + "/worker-nodes/" + n.ID)
	}
	if err != nil {
		return nil, err
	}
	return api.Accepted(n).WithHeader("Location", "/v1/orgs/"+r.OrgID+"/worker-nodes/"+n.ID).WithVersion(n.Version), nil
}

func (h *handlers) listNodes(ctx context.Context, r *api.Request) (*api.Response, error) {
	f := nodes.Filter{Environment: r.Query("environment"), AccountID: r.Query("accountId"), Status: r.Query("status")}
	scope := "orgs/" + r.OrgID + "/worker-nodes?" + f.Environment + "&" + f.AccountID + "&" + f.Status
	page, err := r.Page(scope)
	if err != nil {
		return nil, err
	}
	items, next, err := h.nodes.List(ctx, r.Caller(), r.OrgID, f, page)
	if err != nil {
		return nil, err
	}
	return api.Listed(scope, items, next), nil
}

func (h *handlers) getNode(ctx context.Context, r *api.Request) (*api.Response, error) {
	n, err := h.nodes.Get(ctxOf(ctx, r), r.Caller(), r.OrgID, r.Param("nodeId"))
	if err != nil {
		return nil, err
	}
	return api.OK(n).WithVersion(n.Version), nil
}

func (h *handlers) nodeAction(ctx context.Context, r *api.Request) (*api.Response, error) {
	var in struct {
		Action *string `json:"action"`
	}
	if err := r.Decode(&in); err != nil {
		return nil, err
	}
	if in.Action == nil || !slices.Contains([]string{"start", "stop", "reboot"}, *in.Action) {
		return nil, fault.Field("action", `must be "start", "stop" or "reboot"`)
	}
	n, err := h.nodes.Action(ctxOf(ctx, r), r.Caller(), r.OrgID, r.Param("nodeId"), *in.Action)
	if err != nil {
		return nil, err
	}
	return api.Accepted(n).WithVersion(n.Version), nil
}

func (h *handlers) deleteNode(ctx context.Context, r *api.Request) (*api.Response, error) {
	n, err := h.nodes.Delete(ctxOf(ctx, r), r.Caller(), r.OrgID, r.Param("nodeId"))
	if err != nil {
		return nil, err
	}
	return api.Accepted(n).WithVersion(n.Version), nil
}
