package discovery

import (
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/binary"
	"strings"
	"sync"
	"time"

	"github.com/dflow-sh/cloud-accounts/shared/awserr"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/aws/aws-sdk-go-v2/service/iam"
	"github.com/aws/aws-sdk-go-v2/service/ssm"

	"github.com/dflow-sh/cloud-accounts/shared/awsperms"
	"github.com/dflow-sh/cloud-accounts/shared/fault"
)

// Statuses of a permission check.
const (
	// StatusAllowed: AWS authorised the action (DryRunOperation, or a
	// read-only call that succeeded).
	StatusAllowed = "allowed"
	// StatusDenied: AWS refused it (UnauthorizedOperation, AccessDenied).
	StatusDenied = "denied"
	// StatusError: AWS answered something that proves neither (a made-up
	// resource not found, throttling, an outage); Code and Message say what.
	StatusError = "error"
	// StatusUnchecked: the action cannot be checked without side effects
	// (IAM has no dry run), or there is nothing to check it against yet
	// (no dFlow-managed instance, group or key pair in the region).
	StatusUnchecked = "unchecked"
)

// PermissionCheck is the outcome of one action in one region (Region is
// empty for global IAM actions, checked once).
type PermissionCheck struct {
	Action  string `json:"action"`
	Feature string `json:"feature"`
	Region  string `json:"region,omitempty"`
	Status  string `json:"status"`
	// Code is AWS's error code, or dFlow's (region_not_enabled,
	// no_managed_resource, no_dry_run…), for statuses other than allowed.
	Code    string `json:"code,omitempty"`
	Message string `json:"message,omitempty"`
}

// PermissionsReport is the answer of PermissionsCheck.
type PermissionsReport struct {
	Items []PermissionCheck `json:"items"`
	// Missing lists the actions denied in at least one region, in
	// awsperms.Needed's order.
	Missing []string `json:"missing"`
	// Policy grants exactly the missing actions; absent when none are.
	Policy   *awsperms.Policy `json:"policy,omitempty"`
	CachedAt time.Time        `json:"cachedAt"`
}

// Codes of checks that were not made against AWS.
const (
	codeNoManagedResource = "no_managed_resource"
	codeNoDryRun          = "no_dry_run"
	codeNoIAMClient       = "no_iam_client"
	codeNoCheck           = "no_check"
	codeLookupFailed      = "lookup_failed"
)

type outcome struct {
	status, code, message string
	// fatal is set when AWS rejected the credentials themselves.
	fatal error
}

// PermissionsCheck checks every action of awsperms.Needed the link needs
// (the IAM rotation actions only for access-key links) in each requested
// region (none: the link's default region; "all": every region of the
// partition), IAM actions once. EC2 actions are called with DryRun, on
// inputs shaped like dFlow's real calls so the tag conditions of the
// generated policy apply: RunInstances, CreateSecurityGroup and
// ImportKeyPair carry dflow:managed=true TagSpecifications, and the actions
// the policy limits to dFlow's resources are tried on a dflow:managed=true
// instance, group or key pair of the region — "unchecked" when there is
// none, since with a made-up id AWS answers NotFound (or Malformed) before
// it checks permissions, which proves nothing. CreateTags is only ever
// granted with a create call, so it is judged by RunInstances' tagged dry
// run. SSM and the read-only IAM actions are called for real; the mutating
// IAM ones are "unchecked" (no dry run). Not cached: a check is asked for
// after changing the policy.
func (s *Service) PermissionsCheck(ctx context.Context, t Target, c Clients, regions []string) (PermissionsReport, error) {
	if err := t.check(); err != nil {
		return PermissionsReport{}, err
	}
	if len(regions) == 0 {
		regions = []string{t.defaultRegion()}
	}
	sel, err := s.selectRegions(t, regions)
	if err != nil {
		return PermissionsReport{}, err
	}
	enabled, err := s.enabledRegions(ctx, t, c, sel)
	if err != nil {
		return PermissionsReport{}, err
	}
	var regional, global []awsperms.Action
	for _, a := range awsperms.Needed {
		switch {
		case a.Feature == awsperms.FeatureRotation && !t.AccessKeyUser:
		case strings.HasPrefix(a.Name, "iam:"):
			global = append(global, a)
		default:
			regional = append(regional, a)
		}
	}

	sem := make(chan struct{}, s.concurrency)
	perRegion := make([][]outcome, len(sel))
	fatal := make([]error, len(sel))
	var globalOut []outcome
	var wg sync.WaitGroup
	for i, region := range sel {
		if !enabled[region] {
			e := notEnabled(region)
			perRegion[i] = repeat(len(regional), outcome{status: StatusError, code: e.Code, message: e.Detail})
			continue
		}
		wg.Go(func() { perRegion[i], fatal[i] = s.checkRegion(ctx, t, c, region, sem, regional) })
	}
	if len(global) > 0 {
		wg.Go(func() { globalOut = s.checkIAM(ctx, c, sem, global) })
	}
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return PermissionsReport{}, err
	}
	tried := 0
	for _, r := range sel {
		if enabled[r] {
			tried++
		}
	}
	if err := allRejected(tried, fatal); err != nil {
		return PermissionsReport{}, err
	}

	rep := PermissionsReport{Items: []PermissionCheck{}, Missing: []string{}, CachedAt: s.now()}
	var missing []awsperms.Action
	add := func(a awsperms.Action, region string, o outcome) {
		rep.Items = append(rep.Items, PermissionCheck{Action: a.Name, Feature: a.Feature, Region: region, Status: o.status, Code: o.code, Message: o.message})
		if o.status == StatusDenied && (len(missing) == 0 || missing[len(missing)-1].Name != a.Name) {
			missing = append(missing, a)
		}
	}
	for _, a := range awsperms.Needed {
		if i := indexOf(regional, a.Name); i >= 0 {
			for r, region := range sel {
				add(a, region, perRegion[r][i])
			}
		} else if i := indexOf(global, a.Name); i >= 0 {
			add(a, "", globalOut[i])
		}
	}
	for _, a := range missing {
		rep.Missing = append(rep.Missing, a.Name)
	}
	if len(missing) > 0 {
		p := awsperms.PolicyFor(t.Partition, missing)
		rep.Policy = &p
	}
	return rep, nil
}

func indexOf(actions []awsperms.Action, name string) int {
	for i, a := range actions {
		if a.Name == name {
			return i
		}
	}
	return -1
}

func repeat(n int, o outcome) []outcome {
	out := make([]outcome, n)
	for i := range out {
		out[i] = o
	}
	return out
}

// regionCheck is what the checks of one region share.
type regionCheck struct {
	region string
	ec2    EC2API
	ssm    SSMAPI
	// Resources the checks use, found before they run.
	imageID, subnetID, vpcID string
	instanceID               string
	instanceLookup           error
	group                    *types.SecurityGroup
	groupRules               []types.SecurityGroupRule
	groupLookup              error
	keyPairID                string
	keyLookup                error
}

// checkRegion runs the regional checks of one region; the second result is
// set when AWS rejected the credentials there.
func (s *Service) checkRegion(ctx context.Context, t Target, c Clients, region string, sem chan struct{}, actions []awsperms.Action) ([]outcome, error) {
	out := make([]outcome, len(actions))
	ec2API, err := c.EC2(ctx, region)
	if err == nil {
		var ssmAPI SSMAPI
		ssmAPI, err = c.SSM(ctx, region)
		if err == nil {
			return s.runRegionChecks(ctx, t, c, &regionCheck{region: region, ec2: ec2API, ssm: ssmAPI}, sem, actions)
		}
	}
	e := clientError(err, "aws", region)
	o := outcome{status: StatusError, code: CodeProviderError, message: "no AWS client for the region"}
	if f, ok := fault.As(e); ok && f.Kind != fault.Internal {
		o.code, o.message = f.Code, f.Detail
	}
	if fault.Is(e, CodeAuthFailed) {
		o.fatal = e
	}
	for i := range out {
		out[i] = o
	}
	return out, o.fatal
}

func (s *Service) runRegionChecks(ctx context.Context, t Target, c Clients, rc *regionCheck, sem chan struct{}, actions []awsperms.Action) ([]outcome, error) {
	s.findFixtures(ctx, t, c, rc, sem)
	out := make([]outcome, len(actions))
	var wg sync.WaitGroup
	for i, a := range actions {
		check, ok := regionalChecks[a.Name]
		if !ok {
			continue // derived below, or unknown
		}
		wg.Go(func() {
			if err := call(ctx, sem, func() error { out[i] = check(ctx, rc); return nil }); err != nil {
				out[i] = outcome{status: StatusError, code: CodeProviderError, message: err.Error()}
			}
		})
	}
	wg.Wait()
	for i, a := range actions {
		if _, ok := regionalChecks[a.Name]; ok {
			continue
		}
		if j := indexOf(actions, "ec2:RunInstances"); a.Name == "ec2:CreateTags" && j >= 0 {
			out[i] = createTagsOutcome(out[j])
			continue
		}
		out[i] = outcome{status: StatusUnchecked, code: codeNoCheck, message: "dFlow has no check for this action yet"}
	}
	var fatal error
	for i := range out {
		if out[i].fatal != nil {
			fatal = s.recheck(ctx, t, c, rc.region, out[i].fatal)
			break
		}
	}
	return out, fatal
}

// findFixtures looks up what the checks act on: an image and a subnet to
// launch with, and the region's dFlow-managed instance, security group and
// key pair, if any. A failed lookup leaves its checks unchecked.
func (s *Service) findFixtures(ctx context.Context, t Target, c Clients, rc *regionCheck, sem chan struct{}) {
	managed := types.Filter{Name: aws.String("tag:" + awsperms.ManagedTagKey), Values: []string{awsperms.ManagedTagValue}}
	var wg sync.WaitGroup
	wg.Go(func() {
		_ = call(ctx, sem, func() error {
			if l, err := s.Images(ctx, t, c, rc.region, OSAmazonLinux, ArchX86, false); err == nil && len(l.Items) > 0 {
				rc.imageID = l.Items[0].ID
			}
			return nil
		})
	})
	wg.Go(func() {
		_ = call(ctx, sem, func() error {
			out, err := rc.ec2.DescribeSubnets(ctx, &ec2.DescribeSubnetsInput{MaxResults: aws.Int32(5)})
			if err != nil || len(out.Subnets) == 0 {
				return nil
			}
			pick := out.Subnets[0]
			for _, n := range out.Subnets {
				if aws.ToBool(n.DefaultForAz) {
					pick = n
					break
				}
			}
			rc.subnetID, rc.vpcID = aws.ToString(pick.SubnetId), aws.ToString(pick.VpcId)
			return nil
		})
	})
	wg.Go(func() {
		rc.instanceLookup = call(ctx, sem, func() error {
			out, err := rc.ec2.DescribeInstances(ctx, &ec2.DescribeInstancesInput{MaxResults: aws.Int32(5), Filters: []types.Filter{managed, {
				Name: aws.String("instance-state-name"), Values: []string{"pending", "running", "stopping", "stopped"},
			}}})
			if err != nil {
				return err
			}
			for _, r := range out.Reservations {
				for _, in := range r.Instances {
					rc.instanceID = aws.ToString(in.InstanceId)
					return nil
				}
			}
			return nil
		})
	})
	wg.Go(func() {
		rc.groupLookup = call(ctx, sem, func() error {
			out, err := rc.ec2.DescribeSecurityGroups(ctx, &ec2.DescribeSecurityGroupsInput{MaxResults: aws.Int32(5), Filters: []types.Filter{managed}})
			if err != nil || len(out.SecurityGroups) == 0 {
				return err
			}
			rc.group = &out.SecurityGroups[0]
			return nil
		})
		if rc.group == nil {
			return
		}
		rc.groupLookup = call(ctx, sem, func() error {
			out, err := rc.ec2.DescribeSecurityGroupRules(ctx, &ec2.DescribeSecurityGroupRulesInput{
				Filters: []types.Filter{{Name: aws.String("group-id"), Values: []string{aws.ToString(rc.group.GroupId)}}},
			})
			if err != nil {
				return err
			}
			rc.groupRules = out.SecurityGroupRules
			return nil
		})
	})
	wg.Go(func() {
		rc.keyLookup = call(ctx, sem, func() error {
			out, err := rc.ec2.DescribeKeyPairs(ctx, &ec2.DescribeKeyPairsInput{Filters: []types.Filter{managed}})
			if err != nil || len(out.KeyPairs) == 0 {
				return err
			}
			rc.keyPairID = aws.ToString(out.KeyPairs[0].KeyPairId)
			return nil
		})
	})
	wg.Wait()
}

// dryRun judges the answer to a DryRun call: DryRunOperation means AWS
// authorised it. A success (an endpoint that ignores DryRun, as moto does
// for some reads) means it was authorised too.
func dryRun(err error, action, region string) outcome {
	if err == nil || awserr.Code(err) == codeDryRunOperation {
		return outcome{status: StatusAllowed}
	}
	return refused(err, action, region)
}

// realCall judges a read-only call made for real.
func realCall(err error, action, region string) outcome {
	if err == nil {
		return outcome{status: StatusAllowed}
	}
	return refused(err, action, region)
}

func refused(err error, action, region string) outcome {
	code := awserr.Code(err)
	if deniedCodes[code] {
		return outcome{status: StatusDenied, code: code, message: "AWS refused " + action}
	}
	e := classify(err, action, region)
	o := outcome{status: StatusError, code: code, message: clip(awsMessage(err))}
	if f, ok := fault.As(e); ok && f.Kind != fault.Internal {
		o.code, o.message = f.Code, f.Detail
		if f.Code == CodeAuthFailed {
			o.fatal = e
		}
	}
	if o.code == "" {
		o.code = CodeProviderError
	}
	return o
}

func clip(s string) string {
	const limit = 300
	if len(s) > limit {
		return s[:limit] + "…"
	}
	return s
}

func createTagsOutcome(run outcome) outcome {
	switch run.status {
	case StatusAllowed:
		return outcome{status: StatusAllowed, message: "authorised with RunInstances' dflow:managed TagSpecifications (dFlow tags only on create)"}
	case StatusDenied:
		return outcome{status: StatusDenied, code: run.code, message: "RunInstances with dflow:managed TagSpecifications was refused; AWS does not say whether ec2:RunInstances or ec2:CreateTags is the missing one"}
	}
	return outcome{status: run.status, code: run.code, message: "judged by RunInstances' tagged dry run, which did not conclude: " + run.message}
}

func noManaged(kind string, lookup error) outcome {
	if lookup != nil {
		return outcome{status: StatusUnchecked, code: codeLookupFailed, message: "could not look for a dFlow-managed " + kind + ": " + clip(awserr.Code(lookup)+" "+awsMessage(lookup))}
	}
	return outcome{status: StatusUnchecked, code: codeNoManagedResource,
		message: "no " + kind + " tagged " + awsperms.ManagedTagKey + "=" + awsperms.ManagedTagValue + " in this region to check against: the policy grants this action on dFlow's own " + kind + "s only"}
}

func tagSpec(rt types.ResourceType) types.TagSpecification {
	return types.TagSpecification{ResourceType: rt, Tags: []types.Tag{{Key: aws.String(awsperms.ManagedTagKey), Value: aws.String(awsperms.ManagedTagValue)}}}
}

// Inputs of the dry runs: a name and address range that match nothing of
// the customer's (192.0.2.0/24 is TEST-NET-1, RFC 5737; port 9 is discard).
const (
	checkName        = "dflow-permission-check"
	checkDescription = "dFlow permission check (dry run)"
	checkCIDR        = "192.0.2.0/24"
	checkPort        = 9
	checkType        = types.InstanceTypeT3Micro
)

func checkPermission() []types.IpPermission {
	return []types.IpPermission{{
		IpProtocol: aws.String("tcp"), FromPort: aws.Int32(checkPort), ToPort: aws.Int32(checkPort),
		IpRanges: []types.IpRange{{CidrIp: aws.String(checkCIDR), Description: aws.String(checkDescription)}},
	}}
}

// checkPublicKey is an OpenSSH ed25519 public key made from a fixed seed;
// its private half is never used.
var checkPublicKey = func() []byte {
	pub := ed25519.NewKeyFromSeed(make([]byte, ed25519.SeedSize)).Public().(ed25519.PublicKey)
	var wire []byte
	for _, part := range [][]byte{[]byte("ssh-ed25519"), pub} {
		wire = binary.BigEndian.AppendUint32(wire, uint32(len(part)))
		wire = append(wire, part...)
	}
	return []byte("ssh-ed25519 " + base64.StdEncoding.EncodeToString(wire) + " " + checkName)
}()

// ruleOf finds a rule of the group in one direction.
func (rc *regionCheck) ruleOf(egress bool) *types.SecurityGroupRule {
	for i, r := range rc.groupRules {
		if aws.ToBool(r.IsEgress) == egress {
			return &rc.groupRules[i]
		}
	}
	return nil
}

var dry = aws.Bool(true)

// regionalChecks checks each regional action; CreateTags is derived from
// RunInstances.
var regionalChecks = map[string]func(context.Context, *regionCheck) outcome{
	"ec2:DescribeRegions": func(ctx context.Context, rc *regionCheck) outcome {
		_, err := rc.ec2.DescribeRegions(ctx, &ec2.DescribeRegionsInput{DryRun: dry})
		return dryRun(err, "ec2:DescribeRegions", rc.region)
	},
	"ec2:DescribeAvailabilityZones": func(ctx context.Context, rc *regionCheck) outcome {
		_, err := rc.ec2.DescribeAvailabilityZones(ctx, &ec2.DescribeAvailabilityZonesInput{DryRun: dry})
		return dryRun(err, "ec2:DescribeAvailabilityZones", rc.region)
	},
	"ec2:DescribeVpcs": func(ctx context.Context, rc *regionCheck) outcome {
		_, err := rc.ec2.DescribeVpcs(ctx, &ec2.DescribeVpcsInput{DryRun: dry})
		return dryRun(err, "ec2:DescribeVpcs", rc.region)
	},
	"ec2:DescribeSubnets": func(ctx context.Context, rc *regionCheck) outcome {
		_, err := rc.ec2.DescribeSubnets(ctx, &ec2.DescribeSubnetsInput{DryRun: dry})
		return dryRun(err, "ec2:DescribeSubnets", rc.region)
	},
	"ec2:DescribeSecurityGroups": func(ctx context.Context, rc *regionCheck) outcome {
		_, err := rc.ec2.DescribeSecurityGroups(ctx, &ec2.DescribeSecurityGroupsInput{DryRun: dry, MaxResults: aws.Int32(5)})
		return dryRun(err, "ec2:DescribeSecurityGroups", rc.region)
	},
	"ec2:DescribeSecurityGroupRules": func(ctx context.Context, rc *regionCheck) outcome {
		_, err := rc.ec2.DescribeSecurityGroupRules(ctx, &ec2.DescribeSecurityGroupRulesInput{DryRun: dry})
		return dryRun(err, "ec2:DescribeSecurityGroupRules", rc.region)
	},
	"ec2:DescribeKeyPairs": func(ctx context.Context, rc *regionCheck) outcome {
		_, err := rc.ec2.DescribeKeyPairs(ctx, &ec2.DescribeKeyPairsInput{DryRun: dry})
		return dryRun(err, "ec2:DescribeKeyPairs", rc.region)
	},
	"ec2:DescribeInstanceTypes": func(ctx context.Context, rc *regionCheck) outcome {
		_, err := rc.ec2.DescribeInstanceTypes(ctx, &ec2.DescribeInstanceTypesInput{DryRun: dry, InstanceTypes: []types.InstanceType{checkType}})
		return dryRun(err, "ec2:DescribeInstanceTypes", rc.region)
	},
	"ec2:DescribeInstanceTypeOfferings": func(ctx context.Context, rc *regionCheck) outcome {
		_, err := rc.ec2.DescribeInstanceTypeOfferings(ctx, &ec2.DescribeInstanceTypeOfferingsInput{DryRun: dry, MaxResults: aws.Int32(5)})
		return dryRun(err, "ec2:DescribeInstanceTypeOfferings", rc.region)
	},
	"ec2:DescribeImages": func(ctx context.Context, rc *regionCheck) outcome {
		_, err := rc.ec2.DescribeImages(ctx, &ec2.DescribeImagesInput{DryRun: dry, Owners: []string{"self"}})
		return dryRun(err, "ec2:DescribeImages", rc.region)
	},
	"ec2:DescribeInstances": func(ctx context.Context, rc *regionCheck) outcome {
		_, err := rc.ec2.DescribeInstances(ctx, &ec2.DescribeInstancesInput{DryRun: dry})
		return dryRun(err, "ec2:DescribeInstances", rc.region)
	},
	"ec2:DescribeVolumes": func(ctx context.Context, rc *regionCheck) outcome {
		_, err := rc.ec2.DescribeVolumes(ctx, &ec2.DescribeVolumesInput{DryRun: dry, MaxResults: aws.Int32(5)})
		return dryRun(err, "ec2:DescribeVolumes", rc.region)
	},
	"ec2:DescribeTags": func(ctx context.Context, rc *regionCheck) outcome {
		_, err := rc.ec2.DescribeTags(ctx, &ec2.DescribeTagsInput{DryRun: dry})
		return dryRun(err, "ec2:DescribeTags", rc.region)
	},
	"ec2:DescribeAccountAttributes": func(ctx context.Context, rc *regionCheck) outcome {
		_, err := rc.ec2.DescribeAccountAttributes(ctx, &ec2.DescribeAccountAttributesInput{DryRun: dry})
		return dryRun(err, "ec2:DescribeAccountAttributes", rc.region)
	},
	"ssm:GetParameters": func(ctx context.Context, rc *regionCheck) outcome {
		// Missing names come back in InvalidParameters, not as an error.
		_, err := rc.ssm.GetParameters(ctx, &ssm.GetParametersInput{Names: []string{osTable[OSAmazonLinux].ssm(ArchX86)[0].name}})
		return realCall(err, "ssm:GetParameters", rc.region)
	},
	"ssm:GetParametersByPath": func(ctx context.Context, rc *regionCheck) outcome {
		_, err := rc.ssm.GetParametersByPath(ctx, &ssm.GetParametersByPathInput{Path: aws.String("/aws/service/ami-amazon-linux-latest"), MaxResults: aws.Int32(1)})
		return realCall(err, "ssm:GetParametersByPath", rc.region)
	},
	"ec2:RunInstances": func(ctx context.Context, rc *regionCheck) outcome {
		if rc.imageID == "" {
			return outcome{status: StatusUnchecked, code: codeLookupFailed, message: "no Amazon Linux image found in the region to launch from"}
		}
		in := &ec2.RunInstancesInput{
			DryRun: dry, ImageId: aws.String(rc.imageID), InstanceType: checkType,
			MinCount: aws.Int32(1), MaxCount: aws.Int32(1),
			TagSpecifications: []types.TagSpecification{tagSpec(types.ResourceTypeInstance), tagSpec(types.ResourceTypeVolume)},
		}
		if rc.subnetID != "" {
			in.SubnetId = aws.String(rc.subnetID)
		}
		_, err := rc.ec2.RunInstances(ctx, in)
		return dryRun(err, "ec2:RunInstances", rc.region)
	},
	"ec2:StartInstances": instanceCheck("ec2:StartInstances", func(ctx context.Context, api EC2API, id []string) error {
		_, err := api.StartInstances(ctx, &ec2.StartInstancesInput{DryRun: dry, InstanceIds: id})
		return err
	}),
	"ec2:StopInstances": instanceCheck("ec2:StopInstances", func(ctx context.Context, api EC2API, id []string) error {
		_, err := api.StopInstances(ctx, &ec2.StopInstancesInput{DryRun: dry, InstanceIds: id})
		return err
	}),
	"ec2:RebootInstances": instanceCheck("ec2:RebootInstances", func(ctx context.Context, api EC2API, id []string) error {
		_, err := api.RebootInstances(ctx, &ec2.RebootInstancesInput{DryRun: dry, InstanceIds: id})
		return err
	}),
	"ec2:TerminateInstances": instanceCheck("ec2:TerminateInstances", func(ctx context.Context, api EC2API, id []string) error {
		_, err := api.TerminateInstances(ctx, &ec2.TerminateInstancesInput{DryRun: dry, InstanceIds: id})
		return err
	}),
	"ec2:CreateSecurityGroup": func(ctx context.Context, rc *regionCheck) outcome {
		in := &ec2.CreateSecurityGroupInput{
			DryRun: dry, GroupName: aws.String(checkName), Description: aws.String(checkDescription),
			TagSpecifications: []types.TagSpecification{tagSpec(types.ResourceTypeSecurityGroup)},
		}
		if rc.vpcID != "" {
			in.VpcId = aws.String(rc.vpcID)
		}
		_, err := rc.ec2.CreateSecurityGroup(ctx, in)
		return dryRun(err, "ec2:CreateSecurityGroup", rc.region)
	},
	"ec2:DeleteSecurityGroup": groupCheck("ec2:DeleteSecurityGroup", func(ctx context.Context, rc *regionCheck, id *string) (bool, error) {
		_, err := rc.ec2.DeleteSecurityGroup(ctx, &ec2.DeleteSecurityGroupInput{DryRun: dry, GroupId: id})
		return true, err
	}),
	"ec2:AuthorizeSecurityGroupIngress": groupCheck("ec2:AuthorizeSecurityGroupIngress", func(ctx context.Context, rc *regionCheck, id *string) (bool, error) {
		_, err := rc.ec2.AuthorizeSecurityGroupIngress(ctx, &ec2.AuthorizeSecurityGroupIngressInput{DryRun: dry, GroupId: id, IpPermissions: checkPermission()})
		return true, err
	}),
	"ec2:AuthorizeSecurityGroupEgress": groupCheck("ec2:AuthorizeSecurityGroupEgress", func(ctx context.Context, rc *regionCheck, id *string) (bool, error) {
		_, err := rc.ec2.AuthorizeSecurityGroupEgress(ctx, &ec2.AuthorizeSecurityGroupEgressInput{DryRun: dry, GroupId: id, IpPermissions: checkPermission()})
		return true, err
	}),
	// Revoking a rule the group has (by rule id) avoids
	// InvalidPermission.NotFound; without one, the check rule is named.
	"ec2:RevokeSecurityGroupIngress": groupCheck("ec2:RevokeSecurityGroupIngress", func(ctx context.Context, rc *regionCheck, id *string) (bool, error) {
		in := &ec2.RevokeSecurityGroupIngressInput{DryRun: dry, GroupId: id, IpPermissions: checkPermission()}
		if r := rc.ruleOf(false); r != nil {
			in.IpPermissions, in.SecurityGroupRuleIds = nil, []string{aws.ToString(r.SecurityGroupRuleId)}
		}
		_, err := rc.ec2.RevokeSecurityGroupIngress(ctx, in)
		return true, err
	}),
	"ec2:RevokeSecurityGroupEgress": groupCheck("ec2:RevokeSecurityGroupEgress", func(ctx context.Context, rc *regionCheck, id *string) (bool, error) {
		in := &ec2.RevokeSecurityGroupEgressInput{DryRun: dry, GroupId: id, IpPermissions: checkPermission()}
		if r := rc.ruleOf(true); r != nil {
			in.IpPermissions, in.SecurityGroupRuleIds = nil, []string{aws.ToString(r.SecurityGroupRuleId)}
		}
		_, err := rc.ec2.RevokeSecurityGroupEgress(ctx, in)
		return true, err
	}),
	// Modifying needs a rule id: an existing rule is "changed" to itself.
	"ec2:ModifySecurityGroupRules": groupCheck("ec2:ModifySecurityGroupRules", func(ctx context.Context, rc *regionCheck, id *string) (bool, error) {
		r := rc.ruleOf(false)
		if r == nil {
			r = rc.ruleOf(true)
		}
		if r == nil {
			return false, nil
		}
		req := &types.SecurityGroupRuleRequest{
			IpProtocol: r.IpProtocol, FromPort: r.FromPort, ToPort: r.ToPort,
			CidrIpv4: r.CidrIpv4, CidrIpv6: r.CidrIpv6, PrefixListId: r.PrefixListId, Description: r.Description,
		}
		if r.ReferencedGroupInfo != nil {
			req.ReferencedGroupId = r.ReferencedGroupInfo.GroupId
		}
		_, err := rc.ec2.ModifySecurityGroupRules(ctx, &ec2.ModifySecurityGroupRulesInput{
			DryRun: dry, GroupId: id,
			SecurityGroupRules: []types.SecurityGroupRuleUpdate{{SecurityGroupRuleId: r.SecurityGroupRuleId, SecurityGroupRule: req}},
		})
		return true, err
	}),
	"ec2:ImportKeyPair": func(ctx context.Context, rc *regionCheck) outcome {
		_, err := rc.ec2.ImportKeyPair(ctx, &ec2.ImportKeyPairInput{
			DryRun: dry, KeyName: aws.String(checkName), PublicKeyMaterial: checkPublicKey,
			TagSpecifications: []types.TagSpecification{tagSpec(types.ResourceTypeKeyPair)},
		})
		return dryRun(err, "ec2:ImportKeyPair", rc.region)
	},
	"ec2:DeleteKeyPair": func(ctx context.Context, rc *regionCheck) outcome {
		if rc.keyPairID == "" {
			return noManaged("key pair", rc.keyLookup)
		}
		_, err := rc.ec2.DeleteKeyPair(ctx, &ec2.DeleteKeyPairInput{DryRun: dry, KeyPairId: aws.String(rc.keyPairID)})
		return dryRun(err, "ec2:DeleteKeyPair", rc.region)
	},
}

func instanceCheck(action string, run func(context.Context, EC2API, []string) error) func(context.Context, *regionCheck) outcome {
	return func(ctx context.Context, rc *regionCheck) outcome {
		if rc.instanceID == "" {
			return noManaged("instance", rc.instanceLookup)
		}
		return dryRun(run(ctx, rc.ec2, []string{rc.instanceID}), action, rc.region)
	}
}

func groupCheck(action string, run func(context.Context, *regionCheck, *string) (bool, error)) func(context.Context, *regionCheck) outcome {
	return func(ctx context.Context, rc *regionCheck) outcome {
		if rc.group == nil {
			return noManaged("security group", rc.groupLookup)
		}
		ran, err := run(ctx, rc, rc.group.GroupId)
		if !ran {
			o := noManaged("security group", rc.groupLookup)
			if rc.groupLookup == nil {
				o.message = "dFlow's security group in this region has no rule to modify"
			}
			return o
		}
		return dryRun(err, action, rc.region)
	}
}

// checkIAM checks the global IAM actions once: the read-only ones for real
// (when the Clients give an IAM client), the mutating ones not at all.
func (s *Service) checkIAM(ctx context.Context, c Clients, sem chan struct{}, actions []awsperms.Action) []outcome {
	out := make([]outcome, len(actions))
	var api IAMAPI
	var clientErr error
	if ic, ok := c.(IAMClients); ok {
		api, clientErr = ic.IAM(ctx)
	}
	keyID := ""
	for i, a := range actions {
		switch {
		case a.Name == "iam:CreateAccessKey" || a.Name == "iam:UpdateAccessKey" || a.Name == "iam:DeleteAccessKey":
			out[i] = outcome{status: StatusUnchecked, code: codeNoDryRun, message: "IAM has no dry run: checking would change the user's access keys"}
		case clientErr != nil:
			out[i] = outcome{status: StatusError, code: CodeProviderError, message: "no IAM client for the link"}
		case api == nil:
			out[i] = outcome{status: StatusUnchecked, code: codeNoIAMClient, message: "the link's clients give no IAM client"}
		case a.Name == "iam:GetUser":
			_ = call(ctx, sem, func() error {
				_, err := api.GetUser(ctx, &iam.GetUserInput{})
				out[i] = realCall(err, a.Name, "")
				return nil
			})
		case a.Name == "iam:ListAccessKeys":
			_ = call(ctx, sem, func() error {
				res, err := api.ListAccessKeys(ctx, &iam.ListAccessKeysInput{})
				out[i] = realCall(err, a.Name, "")
				if err == nil && len(res.AccessKeyMetadata) > 0 {
					keyID = aws.ToString(res.AccessKeyMetadata[0].AccessKeyId)
				}
				return nil
			})
		case a.Name == "iam:GetAccessKeyLastUsed":
			if keyID == "" {
				out[i] = outcome{status: StatusUnchecked, code: codeLookupFailed, message: "no access key of the user could be listed to ask about"}
				continue
			}
			_ = call(ctx, sem, func() error {
				_, err := api.GetAccessKeyLastUsed(ctx, &iam.GetAccessKeyLastUsedInput{AccessKeyId: aws.String(keyID)})
				out[i] = realCall(err, a.Name, "")
				return nil
			})
		default:
			out[i] = outcome{status: StatusUnchecked, code: codeNoCheck, message: "dFlow has no check for this action yet"}
		}
	}
	return out
}
