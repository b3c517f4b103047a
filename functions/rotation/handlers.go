package main

import (
	"context"
	"log/slog"
	"time"

	"github.com/dflow-sh/cloud-accounts/shared/api"
	"github.com/dflow-sh/cloud-accounts/shared/dynamo"
	"github.com/dflow-sh/cloud-accounts/shared/fault"
	"github.com/dflow-sh/cloud-accounts/shared/health"
	"github.com/dflow-sh/cloud-accounts/shared/links"
	"github.com/dflow-sh/cloud-accounts/shared/platform"
	"github.com/dflow-sh/cloud-accounts/shared/rotation"
	"github.com/dflow-sh/cloud-accounts/shared/tenancy"
)

type handlers struct {
	links    *links.Service
	rotation *rotation.Service
	health   *health.Service
	store    *dynamo.Store
	now      func() time.Time
	log      *slog.Logger
}

const base = "/v1/orgs/{orgId}/accounts/{accountId}"

// Routes is the function's route table.
func (h *handlers) Routes() []api.Route {
	rotate := api.Allow(tenancy.CloudProviderAccounts, tenancy.Rotate)
	return []api.Route{
		{Key: "POST " + base + "/rotate", Permission: rotate, Action: "accounts.rotate", Idempotent: true, Handler: h.rotate},
		{Key: "GET " + base + "/rotations", Permission: rotate, Handler: h.list},
	}
}

// Jobs are the function's scheduled work.
func (h *handlers) Jobs() map[string]platform.Job {
	return map[string]platform.Job{
		// Rotates what is due, then finishes grace-period deletions and
		// half-way rotations.
		"rotation-sweep": func(ctx context.Context) (any, error) {
			sum, err := h.rotation.Sweep(ctx, h.now(), rotation.SweepDeps{Due: h.store, Links: h.links})
			// A link whose scheduled rotation failed says so itself.
			for _, e := range sum.Errors {
				msg := "the scheduled rotation failed (" + e.Code + "): " + e.Message
				if werr := h.links.Warn(context.WithoutCancel(ctx), e.OrgID, e.AccountID, "rotation_failed", msg); werr != nil {
					h.log.WarnContext(ctx, "rotation failure not recorded on the link", "orgId", e.OrgID, "accountId", e.AccountID, "error", werr.Error())
				}
			}
			return sum, err
		},
		"health-sweep": func(ctx context.Context) (any, error) { return h.health.Sweep(ctx) },
	}
}

// view is what clients see of a rotation: no secret-version ids or key
// hashes, only masked key ids.
type view struct {
	ID                  string          `json:"id"`
	Reason              string          `json:"reason"`
	Step                string          `json:"step"`
	Outcome             string          `json:"outcome,omitempty"`
	NewKeyMasked        string          `json:"newKeyMasked,omitempty"`
	OldKeyMasked        string          `json:"oldKeyMasked,omitempty"`
	StartedAt           time.Time       `json:"startedAt"`
	PromotedAt          *time.Time      `json:"promotedAt,omitempty"`
	OldKeyDeactivatedAt *time.Time      `json:"oldKeyDeactivatedAt,omitempty"`
	RetireAfter         *time.Time      `json:"retireAfter,omitempty"`
	OldKeyDeletedAt     *time.Time      `json:"oldKeyDeletedAt,omitempty"`
	FinishedAt          *time.Time      `json:"finishedAt,omitempty"`
	LastError           *rotation.Error `json:"lastError,omitempty"`
	Warnings            []links.Warning `json:"warnings"`
}

func viewOf(r rotation.Rotation) view {
	w := r.Warnings
	if w == nil {
		w = []links.Warning{}
	}
	return view{
		ID: r.ID, Reason: r.Reason, Step: r.Step, Outcome: r.Outcome,
		NewKeyMasked: r.NewKeyMasked, OldKeyMasked: r.OldKeyMasked, StartedAt: r.StartedAt,
		PromotedAt: r.PromotedAt, OldKeyDeactivatedAt: r.OldKeyDeactivatedAt, RetireAfter: r.RetireAfter,
		OldKeyDeletedAt: r.OldKeyDeletedAt, FinishedAt: r.FinishedAt, LastError: r.LastError, Warnings: w,
	}
}

func (h *handlers) rotate(ctx context.Context, r *api.Request) (*api.Response, error) {
	var in struct {
		Reason *string `json:"reason"`
	}
	if err := r.Decode(&in); err != nil {
		return nil, err
	}
	if in.Reason == nil {
		return nil, fault.Field("reason", `is required: "scheduled", "manual" or "leak"`)
	}
	l, rec, err := h.links.Resolve(ctx, r.OrgID, r.Param("accountId"))
	if err != nil {
		return nil, err
	}
	rot, err := h.rotation.Start(ctx, l, rec, *in.Reason, r.ID)
	if rot.ID != "" {
		r.SetAuditTarget("/v1/orgs/" + r.OrgID + "/accounts/" + l.ID + "/rotations/" + rot.ID)
	}
	if rot.Outcome == rotation.OutcomeCompromised {
		// No new key could be made after a leak: the old one was
		// deactivated anyway, and the link says so.
		msg := "the leaked key was deactivated but no new key could be made; link new credentials"
		if merr := h.links.MarkCompromised(context.WithoutCancel(ctx), l, "key_compromised", msg); merr != nil {
			return nil, merr
		}
		return api.Accepted(viewOf(rot)), nil
	}
	if err != nil {
		if rot.ID == "" || fault.KindOf(err) != fault.Unavailable {
			return nil, err
		}
		// The journal stopped half-way on a passing failure: the sweep (or
		// a retry) resumes it; the key dFlow uses still works.
	}
	return api.Accepted(viewOf(rot)), nil
}

func (h *handlers) list(ctx context.Context, r *api.Request) (*api.Response, error) {
	if _, _, err := h.links.Resolve(ctx, r.OrgID, r.Param("accountId")); err != nil {
		return nil, err
	}
	scope := "orgs/" + r.OrgID + "/accounts/" + r.Param("accountId") + "/rotations"
	page, err := r.Page(scope)
	if err != nil {
		return nil, err
	}
	items, next, err := h.rotation.List(ctx, r.OrgID, r.Param("accountId"), page)
	if err != nil {
		return nil, err
	}
	views := make([]view, 0, len(items))
	for _, it := range items {
		views = append(views, viewOf(it))
	}
	return api.Listed(scope, views, next), nil
}

// RotateSecretStep answers Secrets Manager's rotation events with the same
// journaled steps.
func (h *handlers) RotateSecretStep(ctx context.Context, secretID, token, step string) error {
	_, err := h.rotation.HandleSecretsManagerStep(ctx, secretID, token, step)
	return err
}
