package groups

import (
	"context"
	"errors"
	"time"

	"github.com/dflow-sh/cloud-accounts/shared/awserr"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"

	"github.com/dflow-sh/cloud-accounts/shared/awsperms"
	"github.com/dflow-sh/cloud-accounts/shared/fault"
	"github.com/dflow-sh/cloud-accounts/shared/sgrules"
)

// AWSGroupName is the EC2 group name of a dFlow group: EC2 keeps group names
// unique per VPC, which makes a second CreateSecurityGroup for the same
// dFlow group fail instead of making a twin.
func AWSGroupName(id string) string { return "dflow-" + id }

// maxApplyPasses bounds read-diff-apply passes lost to concurrent changes.
const maxApplyPasses = 3

// errStale: EC2 no longer holds what the diff was computed from.
var errStale = errors.New("security group rules changed while being applied")

func filter(name string, values ...string) types.Filter {
	return types.Filter{Name: aws.String(name), Values: values}
}

// resolveVPC checks a VPC given by the caller exists, or finds the region's
// default VPC.
func resolveVPC(ctx context.Context, api EC2API, region string, vpcID *string) (string, error) {
	in := &ec2.DescribeVpcsInput{Filters: []types.Filter{filter("is-default", "true")}}
	if vpcID != nil {
		in = &ec2.DescribeVpcsInput{VpcIds: []string{*vpcID}}
	}
	out, err := api.DescribeVpcs(ctx, in)
	if awserr.Code(err) == "InvalidVpcID.NotFound" {
		return "", fault.Unprocessablef(CodeVPCNotFound, "VPC %s does not exist in region %s of the linked account", *vpcID, region).With("vpcId", *vpcID)
	}
	if err != nil {
		return "", classify(err, "ec2:DescribeVpcs", region)
	}
	if len(out.Vpcs) == 0 {
		if vpcID != nil {
			return "", fault.Unprocessablef(CodeVPCNotFound, "VPC %s does not exist in region %s of the linked account", *vpcID, region).With("vpcId", *vpcID)
		}
		return "", fault.Unprocessablef(CodeNoDefaultVPC, "region %s of the linked account has no default VPC: give vpcId", region)
	}
	return aws.ToString(out.Vpcs[0].VpcId), nil
}

// describeGroups pages through DescribeSecurityGroups.
func describeGroups(ctx context.Context, api EC2API, region string, in *ec2.DescribeSecurityGroupsInput) ([]types.SecurityGroup, error) {
	var all []types.SecurityGroup
	p := ec2.NewDescribeSecurityGroupsPaginator(api, in)
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return nil, classify(err, "ec2:DescribeSecurityGroups", region)
		}
		all = append(all, page.SecurityGroups...)
	}
	return all, nil
}

// findTagged lists the AWS groups tagged as g's: normally one, none before
// creation. Only the tags dFlow sets at creation are trusted.
func findTagged(ctx context.Context, api EC2API, g Group) ([]string, error) {
	found, err := describeGroups(ctx, api, g.Region, &ec2.DescribeSecurityGroupsInput{Filters: []types.Filter{
		filter("tag:"+GroupTagKey, g.ID),
		filter("tag:"+awsperms.OrgTagKey, g.OrgID),
		filter("vpc-id", g.VPCID),
	}})
	if err != nil {
		return nil, err
	}
	out := make([]string, 0, len(found))
	for _, sg := range found {
		out = append(out, aws.ToString(sg.GroupId))
	}
	return out, nil
}

// exists reports whether the AWS group id still exists.
func exists(ctx context.Context, api EC2API, region, id string) (bool, error) {
	_, err := api.DescribeSecurityGroups(ctx, &ec2.DescribeSecurityGroupsInput{GroupIds: []string{id}})
	switch awserr.Code(err) {
	case "":
		if err != nil {
			return false, classify(err, "ec2:DescribeSecurityGroups", region)
		}
		return true, nil
	case "InvalidGroup.NotFound", "InvalidGroupId.NotFound":
		return false, nil
	}
	return false, classify(err, "ec2:DescribeSecurityGroups", region)
}

// ensureAWSGroup makes sure g has an AWS group and that its id is recorded:
// the recorded one if it still exists, else one tagged as g's (made by an
// attempt that lost the answer or crashed before recording), else a new one.
// A group this call creates is deleted again if its id cannot be recorded.
func (s *Service) ensureAWSGroup(ctx context.Context, api EC2API, g *Group) error {
	if g.AWSGroupID != "" {
		ok, err := exists(ctx, api, g.Region, g.AWSGroupID)
		if err != nil || ok {
			return err
		}
		s.log.WarnContext(ctx, "aws security group deleted outside dFlow; recreating", "securityGroupId", g.ID, "awsGroupId", g.AWSGroupID)
	}
	tagged, err := findTagged(ctx, api, *g)
	if err != nil {
		return err
	}
	created := false
	var id string
	if len(tagged) > 0 {
		id = tagged[0]
	} else {
		if id, created, err = s.createAWSGroup(ctx, api, *g); err != nil {
			return err
		}
	}
	if id == g.AWSGroupID {
		return nil
	}
	if err := s.store.SetSecurityGroupAWSID(ctx, g.OrgID, g.ID, id, g.AWSGroupID); err != nil {
		if created {
			s.rollbackAWSGroup(ctx, api, *g, id)
		}
		return err
	}
	g.AWSGroupID = id
	return nil
}

// createAWSGroup creates g's AWS group, tagged at creation as dFlow's policy
// requires. If EC2 says the name is taken, the group is ours from an attempt
// whose answer was lost: it is looked up by name.
func (s *Service) createAWSGroup(ctx context.Context, api EC2API, g Group) (string, bool, error) {
	name := AWSGroupName(g.ID)
	out, err := api.CreateSecurityGroup(ctx, &ec2.CreateSecurityGroupInput{
		GroupName:   aws.String(name),
		Description: aws.String(g.Description),
		VpcId:       aws.String(g.VPCID),
		TagSpecifications: []types.TagSpecification{{
			ResourceType: types.ResourceTypeSecurityGroup,
			Tags: []types.Tag{
				{Key: aws.String(awsperms.ManagedTagKey), Value: aws.String(awsperms.ManagedTagValue)},
				{Key: aws.String(awsperms.OrgTagKey), Value: aws.String(g.OrgID)},
				{Key: aws.String(GroupTagKey), Value: aws.String(g.ID)},
				{Key: aws.String(NameTagKey), Value: aws.String(g.Name)},
			},
		}},
	})
	if err == nil {
		return aws.ToString(out.GroupId), true, nil
	}
	if awserr.Code(err) != "InvalidGroup.Duplicate" {
		cerr := classify(err, "ec2:CreateSecurityGroup", g.Region)
		if fault.KindOf(cerr) == fault.Unavailable {
			// The answer may be lost rather than the call: if EC2 made the
			// group, carry on with it now rather than on the next sync.
			if tagged, ferr := findTagged(ctx, api, g); ferr == nil && len(tagged) > 0 {
				return tagged[0], true, nil
			}
		}
		return "", false, cerr
	}
	found, derr := describeGroups(ctx, api, g.Region, &ec2.DescribeSecurityGroupsInput{Filters: []types.Filter{
		filter("group-name", name), filter("vpc-id", g.VPCID),
	}})
	if derr != nil {
		return "", false, derr
	}
	for _, sg := range found {
		if tagValue(sg.Tags, GroupTagKey) == g.ID {
			return aws.ToString(sg.GroupId), false, nil
		}
	}
	return "", false, fault.Conflictf(CodeNameTaken, "a security group named %s that dFlow did not tag exists in VPC %s", name, g.VPCID)
}

func tagValue(tags []types.Tag, key string) string {
	for _, t := range tags {
		if aws.ToString(t.Key) == key {
			return aws.ToString(t.Value)
		}
	}
	return ""
}

// rollbackAWSGroup deletes an AWS group whose id could not be recorded. If
// that fails too, the group keeps its dflow:group tag and the record (which
// exists: it was written first) finds it on the next sync or delete.
func (s *Service) rollbackAWSGroup(ctx context.Context, api EC2API, g Group, id string) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	if _, err := api.DeleteSecurityGroup(ctx, &ec2.DeleteSecurityGroupInput{GroupId: aws.String(id)}); err != nil {
		s.log.ErrorContext(ctx, "aws security group left unrecorded: rollback failed", "securityGroupId", g.ID,
			"awsGroupId", id, "error", err.Error())
	}
}

// ruleIDs maps each rule EC2 holds to its security group rule id, by
// direction (true: egress) and identity.
type ruleIDs map[bool]map[sgrules.Key]string

// readRules reads the AWS group's rules with DescribeSecurityGroupRules.
func readRules(ctx context.Context, api EC2API, region, awsGroupID string) (sgrules.Rules, ruleIDs, error) {
	var all []types.SecurityGroupRule
	p := ec2.NewDescribeSecurityGroupRulesPaginator(api, &ec2.DescribeSecurityGroupRulesInput{
		Filters: []types.Filter{filter("group-id", awsGroupID)},
	})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return sgrules.Rules{}, nil, classify(err, "ec2:DescribeSecurityGroupRules", region)
		}
		all = append(all, page.SecurityGroupRules...)
	}
	ids := ruleIDs{false: {}, true: {}}
	for _, x := range all {
		one := sgrules.FromSecurityGroupRules([]types.SecurityGroupRule{x})
		for _, r := range one.Inbound {
			ids[false][r.Key()] = aws.ToString(x.SecurityGroupRuleId)
		}
		for _, r := range one.Outbound {
			ids[true][r.Key()] = aws.ToString(x.SecurityGroupRuleId)
		}
	}
	return sgrules.FromSecurityGroupRules(all), ids, nil
}

// applyRules brings the AWS group's rules to g's: read, diff, apply only the
// difference. EC2 answering that a rule to add exists or a rule to remove
// does not means someone changed the group meanwhile: read and diff again.
func (s *Service) applyRules(ctx context.Context, api EC2API, g Group) error {
	revokeFirst := false
	for pass := 0; pass < maxApplyPasses; pass++ {
		have, ids, err := readRules(ctx, api, g.Region, g.AWSGroupID)
		if err != nil {
			return err
		}
		c := sgrules.Diff(g.Rules(), have)
		if c.Empty() {
			return nil
		}
		err = s.applyChange(ctx, api, g, c, ids, revokeFirst)
		switch {
		case err == nil:
			return nil
		case errors.Is(err, errStale):
			continue
		case awserr.Code(err) == "RulesPerSecurityGroupLimitExceeded" && !revokeFirst && len(c.RevokeIngress)+len(c.RevokeEgress) > 0:
			// No room for the new rules beside the old ones: revoke first
			// (traffic both allow may drop for a moment).
			revokeFirst = true
			continue
		}
		return err
	}
	return fault.Conflictf(CodeConcurrent, "the group's rules in AWS kept changing while dFlow applied its own; sync the group again")
}

// applyChange applies c: authorize, redescribe, then revoke (revoke first
// when asked). Descriptions change with ModifySecurityGroupRules by rule id.
func (s *Service) applyChange(ctx context.Context, api EC2API, g Group, c sgrules.Change, ids ruleIDs, revokeFirst bool) error {
	id, region := aws.String(g.AWSGroupID), g.Region
	authorize := func() error {
		if len(c.AuthorizeIngress) > 0 {
			_, err := api.AuthorizeSecurityGroupIngress(ctx, &ec2.AuthorizeSecurityGroupIngressInput{GroupId: id, IpPermissions: sgrules.ToIPPermissions(c.AuthorizeIngress)})
			if err := stale(err, "InvalidPermission.Duplicate", "ec2:AuthorizeSecurityGroupIngress", region); err != nil {
				return err
			}
		}
		if len(c.AuthorizeEgress) > 0 {
			_, err := api.AuthorizeSecurityGroupEgress(ctx, &ec2.AuthorizeSecurityGroupEgressInput{GroupId: id, IpPermissions: sgrules.ToIPPermissions(c.AuthorizeEgress)})
			if err := stale(err, "InvalidPermission.Duplicate", "ec2:AuthorizeSecurityGroupEgress", region); err != nil {
				return err
			}
		}
		return nil
	}
	revoke := func() error {
		if len(c.RevokeIngress) > 0 {
			out, err := api.RevokeSecurityGroupIngress(ctx, &ec2.RevokeSecurityGroupIngressInput{GroupId: id, IpPermissions: sgrules.ToIPPermissions(c.RevokeIngress)})
			if err := stale(err, "InvalidPermission.NotFound", "ec2:RevokeSecurityGroupIngress", region); err != nil {
				return err
			}
			// In a default VPC EC2 answers success and lists what it did
			// not find.
			if out != nil && len(out.UnknownIpPermissions) > 0 {
				return errStale
			}
		}
		if len(c.RevokeEgress) > 0 {
			out, err := api.RevokeSecurityGroupEgress(ctx, &ec2.RevokeSecurityGroupEgressInput{GroupId: id, IpPermissions: sgrules.ToIPPermissions(c.RevokeEgress)})
			if err := stale(err, "InvalidPermission.NotFound", "ec2:RevokeSecurityGroupEgress", region); err != nil {
				return err
			}
			if out != nil && len(out.UnknownIpPermissions) > 0 {
				return errStale
			}
		}
		return nil
	}
	redescribe := func() error {
		var reqs []types.SecurityGroupRuleUpdate
		for _, d := range []struct {
			egress bool
			rules  []sgrules.Rule
		}{{false, c.RedescribeIngress}, {true, c.RedescribeEgress}} {
			for _, r := range d.rules {
				ruleID, ok := ids[d.egress][r.Key()]
				if !ok {
					return errStale
				}
				reqs = append(reqs, types.SecurityGroupRuleUpdate{SecurityGroupRuleId: aws.String(ruleID), SecurityGroupRule: ruleRequest(r)})
			}
		}
		if len(reqs) == 0 {
			return nil
		}
		_, err := api.ModifySecurityGroupRules(ctx, &ec2.ModifySecurityGroupRulesInput{GroupId: id, SecurityGroupRules: reqs})
		return stale(err, "InvalidSecurityGroupRuleId.NotFound", "ec2:ModifySecurityGroupRules", region)
	}
	steps := []func() error{authorize, redescribe, revoke}
	if revokeFirst {
		steps = []func() error{revoke, authorize, redescribe}
	}
	for _, step := range steps {
		if err := step(); err != nil {
			return err
		}
	}
	return nil
}

// stale maps the AWS code meaning "the group changed under us" to errStale
// and classifies anything else.
func stale(err error, code, action, region string) error {
	if err == nil {
		return nil
	}
	if awserr.Code(err) == code {
		return errStale
	}
	return classify(err, action, region)
}

// ruleRequest is a rule as ModifySecurityGroupRules takes it. The
// description is always sent: empty removes it.
func ruleRequest(r sgrules.Rule) *types.SecurityGroupRuleRequest {
	p := sgrules.ToIPPermissions([]sgrules.Rule{r})[0]
	req := &types.SecurityGroupRuleRequest{
		IpProtocol:  p.IpProtocol,
		FromPort:    aws.Int32(int32(r.FromPort)),
		ToPort:      aws.Int32(int32(r.ToPort)),
		Description: aws.String(r.Description),
	}
	switch {
	case r.CIDRv4 != "":
		req.CidrIpv4 = aws.String(r.CIDRv4)
	case r.CIDRv6 != "":
		req.CidrIpv6 = aws.String(r.CIDRv6)
	case r.SourceGroupID != "":
		req.ReferencedGroupId = aws.String(r.SourceGroupID)
	case r.PrefixListID != "":
		req.PrefixListId = aws.String(r.PrefixListID)
	}
	return req
}

// drift compares g's rules with the AWS group's. It never fails: what
// stopped the comparison is returned as the drift error.
func (s *Service) drift(ctx context.Context, g Group) ([]sgrules.DriftItem, *Error) {
	at := s.now()
	if g.AWSGroupID == "" {
		return nil, &Error{Code: CodeNotCreated, Message: "the group does not exist in AWS yet: sync it to create it", At: at}
	}
	failed := func(err error) ([]sgrules.DriftItem, *Error) {
		code, msg := lastError(err)
		if code == codeInternal {
			s.log.ErrorContext(ctx, "security group drift check", "securityGroupId", g.ID, "error", err.Error())
			msg = "the group's rules could not be read from AWS"
		}
		return nil, &Error{Code: code, Message: msg, At: at}
	}
	link, err := s.accounts.Link(ctx, g.OrgID, g.AccountID)
	if err != nil {
		return failed(err)
	}
	api, err := s.accounts.EC2(ctx, link, g.Region)
	if err != nil {
		return failed(clientError(err, g.Region))
	}
	ok, err := exists(ctx, api, g.Region, g.AWSGroupID)
	if err != nil {
		return failed(err)
	}
	if !ok {
		return nil, &Error{Code: CodeAWSGroupMissing, Message: "the AWS group " + g.AWSGroupID + " was deleted outside dFlow: sync the group to recreate it, or delete it", At: at}
	}
	have, _, err := readRules(ctx, api, g.Region, g.AWSGroupID)
	if err != nil {
		return failed(err)
	}
	d := sgrules.Drift(g.Rules(), have)
	if d == nil {
		d = []sgrules.DriftItem{}
	}
	return d, nil
}
