package main

import (
	"context"
	"strconv"
	"strings"

	"github.com/dflow-sh/cloud-accounts/shared/access"
	"github.com/dflow-sh/cloud-accounts/shared/api"
	"github.com/dflow-sh/cloud-accounts/shared/discovery"
	"github.com/dflow-sh/cloud-accounts/shared/fault"
	"github.com/dflow-sh/cloud-accounts/shared/links"
	"github.com/dflow-sh/cloud-accounts/shared/partition"
	"github.com/dflow-sh/cloud-accounts/shared/tenancy"
)

type handlers struct {
	links     *links.Service
	broker    *access.Broker
	discovery *discovery.Service
}

const base = "/v1/orgs/{orgId}/accounts/{accountId}"

// Routes is the function's route table.
func (h *handlers) Routes() []api.Route {
	read := api.Allow(tenancy.CloudProviderAccounts, tenancy.Read)
	r := func(key string, fn func(context.Context, *api.Request, *linked) (any, error)) api.Route {
		return api.Route{Key: key, Permission: read, Handler: h.through(fn)}
	}
	return []api.Route{
		r("GET "+base+"/regions", h.regions),
		r("GET "+base+"/regions/{region}/availability-zones", h.zones),
		r("GET "+base+"/regions/{region}/vpcs", h.vpcs),
		r("GET "+base+"/regions/{region}/subnets", h.subnets),
		r("GET "+base+"/regions/{region}/security-groups", h.securityGroups),
		r("GET "+base+"/regions/{region}/key-pairs", h.keyPairs),
		r("GET "+base+"/regions/{region}/instance-types", h.instanceTypes),
		r("GET "+base+"/regions/{region}/images", h.images),
		r("GET "+base+"/inventory", h.inventory),
		// A read that is a POST (it takes a body); audited like any POST.
		{Key: "POST " + base + "/permissions-check", Permission: read, Action: "accounts.permissions.check", Handler: h.through(h.permissions)},
	}
}

// linked is the link a request acts through, with its clients.
type linked struct {
	link    links.Link
	target  discovery.Target
	clients *clients
	refresh bool
}

// through resolves the link inside the caller's organisation, runs fn, and
// records AWS's rejection of the link's credentials on the link.
func (h *handlers) through(fn func(context.Context, *api.Request, *linked) (any, error)) api.HandlerFunc {
	return func(ctx context.Context, r *api.Request) (*api.Response, error) {
		refresh, err := boolQuery(r, "refresh")
		if err != nil {
			return nil, err
		}
		l, rec, err := h.links.Resolve(ctx, r.OrgID, r.Param("accountId"))
		if err != nil {
			return nil, err
		}
		p, ok := partition.ByID(l.Partition)
		if !ok {
			return nil, fault.Unprocessablef("partition_not_supported", "the link's partition %q is unknown", l.Partition)
		}
		lk := &linked{
			link: l, refresh: refresh,
			target: discovery.Target{
				LinkID: l.ID, Partition: p, DefaultRegion: l.DefaultRegion,
				AccessKeyUser: l.Credentials.Type == links.TypeAccessKey,
			},
			clients: &clients{broker: h.broker, link: l, rec: rec, requestID: r.ID},
		}
		out, err := fn(ctx, r, lk)
		if err != nil {
			return nil, h.rejected(ctx, lk, rec, err)
		}
		return api.OK(out), nil
	}
}

// rejected marks the link unhealthy when AWS refused its credentials, and
// answers 422 provider_auth_failed.
func (h *handlers) rejected(ctx context.Context, lk *linked, rec links.Record, err error) error {
	if !fault.Is(err, "provider_auth_failed") && !fault.Is(err, "credentials_invalid") {
		return err
	}
	e, _ := fault.As(err)
	code, _ := e.Extra["awsErrorCode"].(string)
	if code == "" {
		code = e.Code
	}
	h.broker.Forget(lk.link, rec)
	if merr := h.links.MarkUnhealthy(context.WithoutCancel(ctx), lk.link, code, e.Detail); merr != nil {
		return merr
	}
	out := fault.Unprocessablef("provider_auth_failed", "AWS rejected the linked account's credentials: %s", e.Detail).With("awsErrorCode", code)
	out.Err = err
	return out
}

func boolQuery(r *api.Request, name string) (bool, error) {
	switch r.Query(name) {
	case "", "false":
		return false, nil
	case "true":
		return true, nil
	}
	return false, fault.Field(name, `must be "true" or "false"`)
}

func intQuery(r *api.Request, name string) (int, error) {
	s := r.Query(name)
	if s == "" {
		return 0, nil
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 0 {
		return 0, fault.Field(name, "must be a whole number")
	}
	return n, nil
}

func (h *handlers) regions(ctx context.Context, r *api.Request, lk *linked) (any, error) {
	return h.discovery.Regions(ctx, lk.target, lk.clients, lk.refresh)
}

func (h *handlers) zones(ctx context.Context, r *api.Request, lk *linked) (any, error) {
	return h.discovery.AvailabilityZones(ctx, lk.target, lk.clients, r.Param("region"), lk.refresh)
}

func (h *handlers) vpcs(ctx context.Context, r *api.Request, lk *linked) (any, error) {
	return h.discovery.VPCs(ctx, lk.target, lk.clients, r.Param("region"), lk.refresh)
}

func (h *handlers) subnets(ctx context.Context, r *api.Request, lk *linked) (any, error) {
	return h.discovery.Subnets(ctx, lk.target, lk.clients, r.Param("region"), r.Query("vpcId"), lk.refresh)
}

func (h *handlers) securityGroups(ctx context.Context, r *api.Request, lk *linked) (any, error) {
	return h.discovery.SecurityGroups(ctx, lk.target, lk.clients, r.Param("region"), r.Query("vpcId"), lk.refresh)
}

func (h *handlers) keyPairs(ctx context.Context, r *api.Request, lk *linked) (any, error) {
	return h.discovery.KeyPairs(ctx, lk.target, lk.clients, r.Param("region"), lk.refresh)
}

func (h *handlers) instanceTypes(ctx context.Context, r *api.Request, lk *linked) (any, error) {
	vcpus, err := intQuery(r, "minVcpus")
	if err != nil {
		return nil, err
	}
	mem, err := intQuery(r, "minMemoryMiB")
	if err != nil {
		return nil, err
	}
	f := discovery.InstanceTypeFilter{Arch: r.Query("arch"), MinVCPUs: vcpus, MinMemoryMiB: mem}
	return h.discovery.InstanceTypes(ctx, lk.target, lk.clients, r.Param("region"), f, lk.refresh)
}

func (h *handlers) images(ctx context.Context, r *api.Request, lk *linked) (any, error) {
	return h.discovery.Images(ctx, lk.target, lk.clients, r.Param("region"), r.Query("os"), r.Query("arch"), lk.refresh)
}

func (h *handlers) inventory(ctx context.Context, r *api.Request, lk *linked) (any, error) {
	return h.discovery.Inventory(ctx, lk.target, lk.clients, regionList(r.Query("regions")))
}

// regionList reads ?regions=all|r1,r2 (absent means all).
func regionList(s string) []string {
	if s == "" || s == "all" {
		return nil
	}
	return strings.Split(s, ",")
}

func (h *handlers) permissions(ctx context.Context, r *api.Request, lk *linked) (any, error) {
	var in struct {
		Regions []string `json:"regions"`
	}
	if err := r.Decode(&in); err != nil {
		return nil, err
	}
	return h.discovery.PermissionsCheck(ctx, lk.target, lk.clients, in.Regions)
}
