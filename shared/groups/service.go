package groups

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/dflow-sh/cloud-accounts/shared/awserr"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"

	"github.com/dflow-sh/cloud-accounts/shared/fault"
	"github.com/dflow-sh/cloud-accounts/shared/ids"
	"github.com/dflow-sh/cloud-accounts/shared/partition"
	"github.com/dflow-sh/cloud-accounts/shared/sgrules"
	"github.com/dflow-sh/cloud-accounts/shared/tenancy"
)

// maxReconciles bounds how often one request re-applies a group that a
// concurrent change moved to a newer version.
const maxReconciles = 3

// Create validates the request, writes the group (pending) with its account's
// usage item, then creates the AWS group and applies the rules, and returns
// the group in_sync.
//
// Before anything is written, failures are plain errors (validation, 404
// account_not_found, 422 vpc_not_found / no_default_vpc, AWS faults while
// resolving the VPC). After, a failure leaves the group with status failed
// and lastError, and is returned together with that group (its ID set) and
// the group's id in the fault's extra member securityGroupId.
func (s *Service) Create(ctx context.Context, caller tenancy.Caller, orgID, requestID string, in Input) (Group, error) {
	var p problems
	name, desc, accountID, region := "", DefaultDescription, "", ""
	if in.Name == nil {
		p.add("name", "is required")
	} else {
		name = *in.Name
		checkName(&p, name)
	}
	if in.Description != nil {
		desc = *in.Description
		checkDescription(&p, desc)
	}
	if in.AccountID == nil {
		p.add("accountId", "is required")
	} else if accountID = *in.AccountID; !ids.Valid(ids.Account, accountID) {
		p.add("accountId", "must be the id of a linked account (acc_…)")
	}
	if in.Region == nil {
		p.add("region", "is required")
	} else if region = *in.Region; !partition.ValidRegion(region) {
		p.add("region", "must be an AWS region code such as eu-west-1")
	}
	if in.VPCID != nil && !vpcIDPattern.MatchString(*in.VPCID) {
		p.add("vpcId", "must be a VPC id like vpc-0123456789abcdef0")
	}
	inbound := parseDirection(&p, sgrules.FieldInbound, in.InboundRules)
	outbound := sgrules.DefaultEgress()
	if in.OutboundRules != nil {
		outbound = parseDirection(&p, sgrules.FieldOutbound, in.OutboundRules)
	}
	if err := p.err(); err != nil {
		return Group{}, err
	}

	link, err := s.accounts.Link(ctx, orgID, accountID)
	if err != nil {
		return Group{}, err
	}
	if rp, ok := partition.ForRegion(region); ok && link.Partition != "" && rp.ID != link.Partition {
		return Group{}, fault.Field("region", "must be a region of the account's partition %s", link.Partition)
	}
	api, err := s.accounts.EC2(ctx, link, region)
	if err != nil {
		return Group{}, clientError(err, region)
	}
	vpc, err := resolveVPC(ctx, api, region, in.VPCID)
	if err != nil {
		return Group{}, err
	}

	now := s.now()
	g := Group{
		OrgID: orgID, ID: ids.New(ids.Group), Name: name, Description: desc,
		AccountID: accountID, Region: region, VPCID: vpc,
		InboundRules: inbound, OutboundRules: outbound, Status: StatusPending,
		Version: 1, CreatedAt: now, CreatedBy: caller.UserID, UpdatedAt: now,
	}
	if err := s.store.CreateSecurityGroup(ctx, g); err != nil {
		return Group{}, err
	}
	return s.reconcile(ctx, api, g, requestID)
}

// reconcile makes AWS hold g (creating the AWS group if need be) and marks
// the group in_sync. When a concurrent change moved the group to a newer
// version meanwhile, it applies that one too, so AWS ends with the newest
// rules whichever request finishes last.
func (s *Service) reconcile(ctx context.Context, api EC2API, g Group, requestID string) (Group, error) {
	for attempt := 1; ; attempt++ {
		if err := s.ensureAWSGroup(ctx, api, &g); err != nil {
			return s.fail(ctx, g, requestID, err)
		}
		if err := s.applyRules(ctx, api, g); err != nil {
			return s.fail(ctx, g, requestID, err)
		}
		g.Status, g.LastError = StatusInSync, nil
		err := s.store.SetSecurityGroupStatus(ctx, g)
		if err == nil {
			return view(g), nil
		}
		if !fault.Is(err, CodeConcurrent) || attempt >= maxReconciles {
			return view(g), withGroup(err, g)
		}
		next, err := s.store.GetSecurityGroup(ctx, g.OrgID, g.ID)
		if err != nil {
			return view(g), err
		}
		next.AWSGroupID = cmpOr(next.AWSGroupID, g.AWSGroupID)
		g = next
	}
}

// fail records why a change could not be applied and returns the group with
// the cause. A newer version's own request reports for itself, so a record
// that moved on is left alone.
func (s *Service) fail(ctx context.Context, g Group, requestID string, cause error) (Group, error) {
	code, msg := lastError(cause)
	if code == codeInternal {
		s.log.ErrorContext(ctx, "security group change failed", "securityGroupId", g.ID, "requestId", requestID, "error", cause.Error())
	}
	g.Status = StatusFailed
	g.LastError = &Error{Code: code, Message: msg, At: s.now(), RequestID: requestID}
	wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	if err := s.store.SetSecurityGroupStatus(wctx, g); err != nil && !fault.Is(err, CodeConcurrent) {
		s.log.ErrorContext(ctx, "record security group failure", "securityGroupId", g.ID, "error", err.Error())
	}
	return view(g), withGroup(cause, g)
}

// withGroup adds the group's id to a fault, so a client learns which record
// a failed request left behind.
func withGroup(err error, g Group) error {
	if fe, ok := fault.As(err); ok {
		return fe.With("securityGroupId", g.ID)
	}
	return fmt.Errorf("security group %s: %w", g.ID, err)
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// view is a group as readers see it: lists never null, warnings computed.
func view(g Group) Group {
	if g.InboundRules == nil {
		g.InboundRules = []sgrules.Rule{}
	}
	if g.OutboundRules == nil {
		g.OutboundRules = []sgrules.Rule{}
	}
	g.Warnings = sgrules.Warnings(g.Rules())
	if g.Warnings == nil {
		g.Warnings = []sgrules.Warning{}
	}
	return g
}

func (s *Service) get(ctx context.Context, orgID, id string) (Group, error) {
	if !ids.Valid(ids.Group, id) {
		return Group{}, ErrNotFound
	}
	return s.store.GetSecurityGroup(ctx, orgID, id)
}

// Get returns a group and how AWS differs from it. Failing to read AWS does
// not fail the request: the drift is then null and DriftError says why.
func (s *Service) Get(ctx context.Context, orgID, id string) (Detail, error) {
	g, err := s.get(ctx, orgID, id)
	if err != nil {
		return Detail{}, err
	}
	d := Detail{Group: view(g)}
	d.Drift, d.DriftError = s.drift(ctx, g)
	return d, nil
}

// List pages through an organisation's groups, optionally of one account
// and/or region. It does not read AWS.
func (s *Service) List(ctx context.Context, orgID string, f Filter, p tenancy.Page) ([]Group, string, error) {
	var pr problems
	if f.AccountID != "" && !ids.Valid(ids.Account, f.AccountID) {
		pr.add("accountId", "must be the id of a linked account (acc_…)")
	}
	if f.Region != "" && !partition.ValidRegion(f.Region) {
		pr.add("region", "must be an AWS region code such as eu-west-1")
	}
	if err := pr.err(); err != nil {
		return nil, "", err
	}
	gs, next, err := s.store.ListSecurityGroups(ctx, orgID, f, p)
	if err != nil {
		return nil, "", err
	}
	for i := range gs {
		gs[i] = view(gs[i])
	}
	return gs, next, nil
}

func checkVersion(ifMatch *int64, current int64) error {
	if ifMatch != nil && *ifMatch != current {
		return fault.PreconditionFailedf("version_mismatch", "the security group is at version %d, not %d", current, *ifMatch).With("currentVersion", current)
	}
	return nil
}

// Update changes a group's name, description or rules. New rules are stored
// first, then the difference between them and what AWS holds is applied;
// its failure leaves the group failed (stored rules kept, drift showing what
// is missing) and is returned with the group, as for Create. The
// description of an EC2 group cannot change: a different one is refused.
func (s *Service) Update(ctx context.Context, orgID, id, requestID string, in Patch, ifMatch *int64) (Group, error) {
	prev, err := s.get(ctx, orgID, id)
	if err != nil {
		return Group{}, err
	}
	var p problems
	if in.Name == nil && in.Description == nil && in.InboundRules == nil && in.OutboundRules == nil {
		p.add("body", "names nothing to change")
	}
	g := prev
	if in.Name != nil {
		checkName(&p, *in.Name)
		g.Name = *in.Name
	}
	if in.Description != nil && *in.Description != prev.Description {
		p.add("description", "cannot be changed: EC2 security group descriptions are fixed at creation (create a new group instead)")
	}
	if in.InboundRules != nil {
		g.InboundRules = parseDirection(&p, sgrules.FieldInbound, in.InboundRules)
	}
	if in.OutboundRules != nil {
		g.OutboundRules = parseDirection(&p, sgrules.FieldOutbound, in.OutboundRules)
	}
	if err := p.err(); err != nil {
		return Group{}, err
	}
	if err := checkVersion(ifMatch, prev.Version); err != nil {
		return Group{}, err
	}
	// Rules sent again unchanged on an in_sync group need no AWS call (a
	// PATCH is not a sync); anything else is applied, pending until then.
	apply := (in.InboundRules != nil || in.OutboundRules != nil) && (rulesChanged(prev, g) || prev.Status != StatusInSync)
	if apply {
		g.Status = StatusPending
	}
	g.Version++
	g.UpdatedAt = s.now()
	if err := s.store.UpdateSecurityGroup(ctx, g, prev); err != nil {
		return Group{}, err
	}
	if !apply {
		return view(g), nil
	}
	api, err := s.client(ctx, g)
	if err != nil {
		return s.fail(ctx, g, requestID, err)
	}
	return s.reconcile(ctx, api, g, requestID)
}

func rulesChanged(a, b Group) bool {
	return !slices.Equal(a.InboundRules, b.InboundRules) || !slices.Equal(a.OutboundRules, b.OutboundRules)
}

func (s *Service) client(ctx context.Context, g Group) (EC2API, error) {
	link, err := s.accounts.Link(ctx, g.OrgID, g.AccountID)
	if err != nil {
		return nil, err
	}
	api, err := s.accounts.EC2(ctx, link, g.Region)
	if err != nil {
		return nil, clientError(err, g.Region)
	}
	return api, nil
}

// Sync brings AWS back to the rules dFlow holds, creating the AWS group if
// it does not exist (never created, or deleted outside dFlow), and returns
// the group with a fresh drift check. A failure is recorded and returned
// with the group, as for Create.
func (s *Service) Sync(ctx context.Context, orgID, id, requestID string) (Detail, error) {
	g, err := s.get(ctx, orgID, id)
	if err != nil {
		return Detail{}, err
	}
	api, err := s.client(ctx, g)
	if err != nil {
		g, err = s.fail(ctx, g, requestID, err)
		return Detail{Group: g}, err
	}
	if g, err = s.reconcile(ctx, api, g, requestID); err != nil {
		return Detail{Group: g}, err
	}
	d := Detail{Group: g}
	d.Drift, d.DriftError = s.drift(ctx, g)
	return d, nil
}

// Users lists the worker nodes using a group.
func (s *Service) Users(ctx context.Context, orgID, groupID string) ([]string, error) {
	return s.store.SecurityGroupUsers(ctx, orgID, groupID)
}

func inUse(nodes []string) error {
	return fault.Conflictf(CodeInUse, "%d worker node(s) use this security group; detach or delete them first", len(nodes)).With("nodeIds", nodes)
}

// Delete removes a group no worker node uses: the AWS group (every one
// tagged as this group's, in case a create was interrupted before recording
// it), then the record, its name claim and its account's usage item. The
// group is marked while this runs, so no node can start using it in between;
// a failure unmarks it and the group stays as it was.
func (s *Service) Delete(ctx context.Context, orgID, id string, ifMatch *int64) error {
	g, err := s.get(ctx, orgID, id)
	if err != nil {
		return err
	}
	if err := checkVersion(ifMatch, g.Version); err != nil {
		return err
	}
	users, err := s.store.SecurityGroupUsers(ctx, orgID, id)
	if err != nil {
		return err
	}
	if len(users) > 0 {
		return inUse(users)
	}
	if err := s.store.SetSecurityGroupDeleting(ctx, g, true); err != nil {
		return err
	}
	if err := s.deleteMarked(ctx, g); err != nil {
		uctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		if uerr := s.store.SetSecurityGroupDeleting(uctx, g, false); uerr != nil {
			s.log.ErrorContext(ctx, "unmark security group after failed delete", "securityGroupId", g.ID, "error", uerr.Error())
		}
		return err
	}
	return nil
}

func (s *Service) deleteMarked(ctx context.Context, g Group) error {
	// Marked: no new user can appear, so this answer is final.
	users, err := s.store.SecurityGroupUsers(ctx, g.OrgID, g.ID)
	if err != nil {
		return err
	}
	if len(users) > 0 {
		return inUse(users)
	}
	link, err := s.accounts.Link(ctx, g.OrgID, g.AccountID)
	switch {
	case fault.KindOf(err) == fault.NotFound:
		// The usage item keeps a link with groups from being removed, so
		// this is an older record: nothing in AWS is reachable any more.
		s.log.WarnContext(ctx, "deleting a security group whose account is no longer linked", "securityGroupId", g.ID, "awsGroupId", g.AWSGroupID)
	case err != nil:
		return err
	default:
		api, err := s.accounts.EC2(ctx, link, g.Region)
		if err != nil {
			return clientError(err, g.Region)
		}
		if err := deleteAWSGroups(ctx, api, g); err != nil {
			return err
		}
	}
	return s.store.DeleteSecurityGroup(ctx, g)
}

func deleteAWSGroups(ctx context.Context, api EC2API, g Group) error {
	targets, err := findTagged(ctx, api, g)
	if err != nil {
		return err
	}
	if g.AWSGroupID != "" && !slices.Contains(targets, g.AWSGroupID) {
		targets = append(targets, g.AWSGroupID)
	}
	for _, id := range targets {
		_, err := api.DeleteSecurityGroup(ctx, &ec2.DeleteSecurityGroupInput{GroupId: aws.String(id)})
		switch awserr.Code(err) {
		case "InvalidGroup.NotFound", "InvalidGroupId.NotFound":
			continue
		}
		if err != nil {
			return classify(err, "ec2:DeleteSecurityGroup", g.Region)
		}
	}
	return nil
}
