package rotation

import (
	"context"
	"strings"

	"github.com/dflow-sh/cloud-accounts/shared/fault"
	"github.com/dflow-sh/cloud-accounts/shared/links"
)

// Steps of a Secrets Manager rotation event.
const (
	SMCreateSecret = "createSecret"
	SMSetSecret    = "setSecret"
	SMTestSecret   = "testSecret"
	SMFinishSecret = "finishSecret"
)

// HandleSecretsManagerStep answers one event of Secrets Manager's own
// rotation of a link's secret with the same steps: createSecret creates
// the key and stores it as AWSPENDING under the event's token, setSecret
// does nothing (the key exists in IAM already), testSecret tests it, and
// finishSecret promotes it and deactivates the old key, which the sweep
// deletes after the grace period. The journal's id comes from the token,
// so a repeated event finds its rotation and does nothing twice.
func (s *Service) HandleSecretsManagerStep(ctx context.Context, secretID, token, step string) (Rotation, error) {
	orgID, linkID, name, ok := parseSecretID(secretID)
	if !ok {
		return Rotation{}, fault.Unprocessablef(CodeSecretUnknown, "the secret is not a linked account's")
	}
	if l := len(token); l < 32 || l > 64 {
		return Rotation{}, fault.Field("ClientRequestToken", "must be 32 to 64 characters")
	}
	switch step {
	case SMCreateSecret, SMSetSecret, SMTestSecret, SMFinishSecret:
	default:
		return Rotation{}, fault.Field("Step", "must be createSecret, setSecret, testSecret or finishSecret")
	}
	link, rec, err := s.store.GetLink(ctx, orgID, linkID)
	if err != nil {
		return Rotation{}, err
	}
	if rec.SecretName != name {
		return Rotation{}, fault.Unprocessablef(CodeSecretUnknown, "the secret is not the link's")
	}
	user, err := checkLink(link)
	if err != nil {
		return Rotation{}, err
	}
	id := idForToken(token)
	r, err := s.store.GetRotation(ctx, orgID, linkID, id)
	switch {
	case err == nil:
		now := s.now()
		if !r.Finished() {
			if err := s.store.AcquireRotationLease(ctx, orgID, linkID, id, now, now.Add(s.cfg.LeaseTTL)); err != nil {
				return r, err
			}
		}
	case fault.KindOf(err) == fault.NotFound && step == SMCreateSecret:
		now := s.now()
		r = Rotation{
			ID: id, OrgID: orgID, LinkID: linkID, Reason: ReasonSecretsManager, Step: StepCreate, Token: token,
			StartedAt: now, NextAttemptAt: now.Add(s.cfg.LeaseTTL), Warnings: []links.Warning{}, Version: 1, UpdatedAt: now,
		}
		if err := s.begin(ctx, &r); err != nil {
			return Rotation{}, err
		}
	default:
		return Rotation{}, err
	}
	if r.Finished() {
		return r, nil
	}
	x := &run{r: &r, link: link, rec: rec, user: user}
	switch step {
	case SMCreateSecret:
		// The lease stays with the rotation until finishSecret (or expiry).
		return r, s.advance(ctx, x, StepTest)
	case SMSetSecret:
		return r, nil
	case SMTestSecret:
		if r.Step == StepCreate {
			return r, fault.Conflictf(CodeStepUnknown, "testSecret came before createSecret finished")
		}
		return r, s.advance(ctx, x, StepPromote)
	}
	defer s.release(ctx, &r)
	return r, s.advance(ctx, x, "")
}

// parseSecretID reads org and link from a secret name or ARN:
// <prefix>/orgs/<org>/accounts/<link>, an ARN ending "-" and 6 characters.
func parseSecretID(id string) (orgID, linkID, name string, ok bool) {
	name = id
	if strings.HasPrefix(id, "arn:") {
		i := strings.Index(id, ":secret:")
		if i < 0 {
			return "", "", "", false
		}
		name = id[i+len(":secret:"):]
		if len(name) < 8 || name[len(name)-7] != '-' {
			return "", "", "", false
		}
		name = name[:len(name)-7]
	}
	i := strings.LastIndex(name, "/orgs/")
	if i < 0 {
		return "", "", "", false
	}
	parts := strings.Split(name[i+1:], "/")
	if len(parts) != 4 || parts[0] != "orgs" || parts[2] != "accounts" || parts[1] == "" || parts[3] == "" {
		return "", "", "", false
	}
	return parts[1], parts[3], name, true
}
