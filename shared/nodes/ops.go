package nodes

import (
	"context"
	"fmt"
	"slices"

	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"

	"github.com/dflow-sh/cloud-accounts/shared/fault"
	"github.com/dflow-sh/cloud-accounts/shared/ids"
	"github.com/dflow-sh/cloud-accounts/shared/tenancy"
)

// List pages through an organisation's nodes, as stored (no AWS call).
// Holders of a role with workerNodes.readScope "own" see only the nodes
// they created.
func (s *Service) List(ctx context.Context, caller tenancy.Caller, orgID string, f Filter, p tenancy.Page) ([]Node, string, error) {
	var bad problems
	if f.Status != "" && !slices.Contains(Statuses, f.Status) {
		bad.add("status", "must be one of %v", Statuses)
	}
	if f.AccountID != "" && !ids.Valid(ids.Account, f.AccountID) {
		bad.add("accountId", "must be a linked account id (acc_…)")
	}
	if f.Environment != "" && !envName.MatchString(f.Environment) {
		bad.add("environment", "must be an environment name such as production or staging")
	}
	if len(bad) > 0 {
		return nil, "", fault.Validation(bad...)
	}
	f.CreatedBy = scopeOwn(caller)
	return s.store.ListNodes(ctx, orgID, f, p)
}

// Get returns a node, refreshed from EC2 when it is not final (the record
// is updated when EC2 says something new). A refresh that fails answers
// with the record as stored. Another user's node is 404 under read scope
// "own", as is another organisation's.
func (s *Service) Get(ctx context.Context, caller tenancy.Caller, orgID, nodeID string) (Node, error) {
	n, err := s.visible(ctx, caller, orgID, nodeID)
	if err != nil || !n.Active() {
		return n, err
	}
	r, err := s.refresh(ctx, n)
	if err != nil {
		s.log.WarnContext(ctx, "refresh node", "node", n.ID, "error", err.Error())
		return n, nil
	}
	return r.node, nil
}

func (s *Service) visible(ctx context.Context, caller tenancy.Caller, orgID, nodeID string) (Node, error) {
	if !ids.Valid(ids.Node, nodeID) {
		return Node{}, ErrNotFound
	}
	n, err := s.store.GetNode(ctx, orgID, nodeID)
	if err != nil {
		return Node{}, err
	}
	if !visible(caller, n) {
		return Node{}, ErrNotFound
	}
	return n, nil
}

// refreshed is the outcome of a refresh.
type refreshed struct {
	node     Node
	updated  bool
	attached bool // an instance was found by tag and recorded
	failed   bool // marked failed: no instance after the grace period
}

// refresh reads the node's instance from EC2 (by id, or by the node tag
// when no id was recorded) and records what changed.
func (s *Service) refresh(ctx context.Context, n Node) (refreshed, error) {
	link, err := s.accounts.Link(ctx, n.OrgID, n.AccountID)
	if err != nil {
		return refreshed{node: n}, err
	}
	api, err := s.accounts.EC2(ctx, link, n.Region)
	if err != nil {
		return refreshed{node: n}, err
	}
	return s.refreshWith(ctx, api, n)
}

func (s *Service) refreshWith(ctx context.Context, api EC2API, n Node) (refreshed, error) {
	next := n
	out := refreshed{node: n}
	if n.InstanceID == "" {
		inst, err := byNodeTag(ctx, api, n.Region, n.OrgID, n.ID)
		if err != nil {
			return out, err
		}
		switch {
		case inst != nil:
			observe(&next, inst)
			next.LastError = nil
			out.attached = true
		case n.Status == Provisioning && s.now().Sub(n.UpdatedAt) >= s.grace:
			next.Status = Failed
			next.LastError = &NodeError{Code: CodeLaunchNotConfirmed, Message: "no instance of the node appeared in EC2 within the grace period", At: s.now()}
			out.failed = true
		case n.Status != Provisioning:
			// Not launched and not launching (e.g. stopped with no id
			// cannot happen): nothing to follow.
			next.Status = Terminated
		default:
			return out, nil
		}
	} else {
		inst, err := byID(ctx, api, n.Region, n.InstanceID)
		if err != nil {
			return out, err
		}
		changed := observe(&next, inst)
		if next.LastError != nil && next.LastError.Code == CodeRefreshFailed {
			// The sweep's last failure is over.
			next.LastError, changed = nil, true
		}
		if !changed {
			return out, nil
		}
	}
	saved, err := s.save(ctx, next, n)
	if err != nil {
		return out, err
	}
	out.node, out.updated = saved, true
	return out, nil
}

// save writes next over prev (bumping the version). A concurrent change
// wins: the caller gets the record as it now is.
func (s *Service) save(ctx context.Context, next, prev Node) (Node, error) {
	next.Version = prev.Version + 1
	next.UpdatedAt = s.now()
	next.Connection = connection(next)
	err := s.store.UpdateNode(ctx, next, prev)
	if fault.Is(err, ErrConcurrent.Code) {
		return s.store.GetNode(ctx, prev.OrgID, prev.ID)
	}
	if err != nil {
		return prev, fmt.Errorf("update node %s: %w", prev.ID, err)
	}
	return next, nil
}

// Action starts, stops or reboots a node's instance. Asking for the state
// a node is already in (start a running node, stop a stopped one) is not
// an error; asking what its state forbids is 409 invalid_state.
func (s *Service) Action(ctx context.Context, caller tenancy.Caller, orgID, nodeID, action string) (Node, error) {
	if action != ActionStart && action != ActionStop && action != ActionReboot {
		return Node{}, fault.Field("action", "must be start, stop or reboot")
	}
	n, err := s.visible(ctx, caller, orgID, nodeID)
	if err != nil {
		return Node{}, err
	}
	if n.Active() {
		if r, rerr := s.refresh(ctx, n); rerr == nil {
			n = r.node
		}
	}
	if n.InstanceID == "" || Final(n.Status) || n.Status == Terminating {
		return n, invalidState(n, action)
	}
	link, err := s.accounts.Link(ctx, orgID, n.AccountID)
	if err != nil {
		return n, err
	}
	api, err := s.accounts.EC2(ctx, link, n.Region)
	if err != nil {
		return n, err
	}
	ids := []string{n.InstanceID}
	var changes []types.InstanceStateChange
	switch action {
	case ActionStart:
		switch n.Status {
		case Running, Provisioning:
			return n, nil
		case Stopping:
			return n, invalidState(n, action)
		}
		out, err := api.StartInstances(ctx, &ec2.StartInstancesInput{InstanceIds: ids})
		if err != nil {
			return n, classify(err, "ec2:StartInstances", n.Region)
		}
		changes = out.StartingInstances
	case ActionStop:
		switch n.Status {
		case Stopped, Stopping:
			return n, nil
		}
		out, err := api.StopInstances(ctx, &ec2.StopInstancesInput{InstanceIds: ids})
		if err != nil {
			return n, classify(err, "ec2:StopInstances", n.Region)
		}
		changes = out.StoppingInstances
	case ActionReboot:
		if n.Status != Running {
			return n, invalidState(n, action)
		}
		if _, err := api.RebootInstances(ctx, &ec2.RebootInstancesInput{InstanceIds: ids}); err != nil {
			return n, classify(err, "ec2:RebootInstances", n.Region)
		}
		return n, nil
	}
	n, err = s.applyChanges(ctx, n, changes)
	if err != nil {
		return n, err
	}
	return s.settle(ctx, api, n), nil
}

// settle reads the instance once more after a state change: a change EC2
// made at once (moto always does) shows at once.
func (s *Service) settle(ctx context.Context, api EC2API, n Node) Node {
	r, err := s.refreshWith(ctx, api, n)
	if err != nil {
		s.log.WarnContext(ctx, "refresh node after action", "node", n.ID, "error", err.Error())
		return n
	}
	return r.node
}

func (s *Service) applyChanges(ctx context.Context, n Node, changes []types.InstanceStateChange) (Node, error) {
	next := n
	for _, c := range changes {
		if c.CurrentState != nil && c.InstanceId != nil && *c.InstanceId == n.InstanceID {
			if st := statusOf(c.CurrentState.Name); st != "" {
				next.Status = st
			}
		}
	}
	if next.Status == Terminated {
		next.PublicIP = ""
	}
	if next.Status == n.Status {
		return n, nil
	}
	return s.save(ctx, next, n)
}

func invalidState(n Node, action string) error {
	return fault.Conflictf(CodeInvalidState, "a %s node cannot %s", n.Status, action).With("nodeStatus", n.Status)
}

// Delete terminates a node's instance. The node stays, terminating then
// terminated (its usage of the account and groups released then); deleting
// a terminated or failed node changes nothing. A node whose instance was
// never recorded or found is terminated at once: should its launch still
// succeed, the reconciler terminates that instance.
func (s *Service) Delete(ctx context.Context, caller tenancy.Caller, orgID, nodeID string) (Node, error) {
	n, err := s.visible(ctx, caller, orgID, nodeID)
	if err != nil || Final(n.Status) {
		return n, err
	}
	link, err := s.accounts.Link(ctx, orgID, n.AccountID)
	if err != nil {
		return n, err
	}
	api, err := s.accounts.EC2(ctx, link, n.Region)
	if err != nil {
		return n, err
	}
	if n.InstanceID == "" {
		inst, err := byNodeTag(ctx, api, n.Region, n.OrgID, n.ID)
		if err != nil {
			return n, err
		}
		if inst == nil {
			next := n
			next.Status = Terminated
			return s.save(ctx, next, n)
		}
		next := n
		observe(&next, inst)
		if n, err = s.save(ctx, next, n); err != nil {
			return n, err
		}
		if Final(n.Status) {
			return n, nil
		}
	}
	out, err := api.TerminateInstances(ctx, &ec2.TerminateInstancesInput{InstanceIds: []string{n.InstanceID}})
	if notFound(err, "InvalidInstanceID.NotFound") {
		next := n
		next.Status = Terminated
		return s.save(ctx, next, n)
	}
	if err != nil {
		return n, classify(err, "ec2:TerminateInstances", n.Region)
	}
	next := n
	next.Status = Terminating
	for _, c := range out.TerminatingInstances {
		if c.CurrentState != nil && c.CurrentState.Name == types.InstanceStateNameTerminated {
			next.Status = Terminated
		}
	}
	if next.Status == Terminated {
		next.PublicIP = ""
	}
	if next.Status != n.Status {
		if n, err = s.save(ctx, next, n); err != nil {
			return n, err
		}
	}
	if n.Status == Terminated {
		return n, nil
	}
	return s.settle(ctx, api, n), nil
}
