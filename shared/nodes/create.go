package nodes

import (
	"context"
	"crypto/sha256"
	"encoding/base32"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"

	"github.com/dflow-sh/cloud-accounts/shared/awsperms"
	"github.com/dflow-sh/cloud-accounts/shared/discovery"
	"github.com/dflow-sh/cloud-accounts/shared/fault"
	"github.com/dflow-sh/cloud-accounts/shared/ids"
	"github.com/dflow-sh/cloud-accounts/shared/links"
	"github.com/dflow-sh/cloud-accounts/shared/tenancy"
)

// ResumeAfter is how long a node must have been left in provisioning with
// no instance recorded before a retry of its request launches it again
// (after looking for its instance by tag). Younger nodes may still have a
// launch in flight: the retry answers with the node as it is.
const ResumeAfter = 2 * time.Minute

var b32 = base32.StdEncoding.WithPadding(base32.NoPadding)

// NodeID is the id of the node a request creates: derived from the
// organisation, the user and the request's idempotency key, so a retry of
// the request (a lost response, a 5xx) finds the node the first attempt
// made instead of making another. An empty key gives a fresh random id.
func NodeID(orgID, userID, requestKey string) string {
	if requestKey == "" {
		return ids.New(ids.Node)
	}
	sum := sha256.Sum256([]byte(orgID + "\x00" + userID + "\x00" + requestKey))
	return ids.Node + "_" + strings.ToLower(b32.EncodeToString(sum[:]))[:26]
}

// plan is everything RunInstances needs beyond the node record.
type plan struct {
	rootDevice  string
	awsGroupIDs []string
	keyName     string
	userData    string
}

// Create checks the request and launches a node; the node comes back in
// status provisioning with its instance id (the API answers 202).
//
// requestKey is the client's Idempotency-Key (or, without one, the API
// request id): it names the node (see NodeID) and tags the instance
// (dflow:request). A second Create with the same key returns the first's
// node; if that node was left without an instance for ResumeAfter, the
// launch is resumed, and its instance is looked up by tag first, so one
// node never starts two instances.
//
// Failures before the instance is launched, and AWS's refusals of the
// launch, leave the node failed with lastError (and its usage released);
// a launch whose outcome is unknown leaves it in provisioning with
// lastError, for the next Get or Reconcile to attach its instance or fail
// it after the grace period.
func (s *Service) Create(ctx context.Context, caller tenancy.Caller, orgID, requestKey string, in Input) (Node, error) {
	if err := in.check(); err != nil {
		return Node{}, err
	}
	id := NodeID(orgID, caller.UserID, requestKey)
	existing, err := s.store.GetNode(ctx, orgID, id)
	switch {
	case err == nil:
		return s.retry(ctx, existing, in)
	case !fault.Is(err, CodeNotFound):
		return Node{}, err
	}
	limit := caller.Role.Permissions[tenancy.WorkerNodes].CreateLimit

	link, err := s.accounts.Link(ctx, orgID, in.AccountID)
	if err != nil {
		return Node{}, err
	}
	if !link.Allows(in.Environment) {
		return Node{}, fault.Unprocessablef(CodeEnvironmentNotAllowed, "the linked account does not serve environment %s", in.Environment).With("environments", link.Environments)
	}
	api, err := s.accounts.EC2(ctx, link, in.Region)
	if err != nil {
		return Node{}, err
	}
	now := s.now()
	n := Node{
		OrgID: orgID, ID: id, Name: in.Name, Environment: in.Environment, AccountID: in.AccountID,
		Region: in.Region, InstanceType: in.InstanceType, DiskGiB: in.DiskGiB, SSHKeyID: in.SSHKeyID,
		SecurityGroupIDs: slices.Clone(in.SecurityGroupIDs), Status: Provisioning, RequestID: requestKey,
		Version: 1, CreatedAt: now, CreatedBy: caller.UserID, UpdatedAt: now,
	}
	pl, err := s.prepare(ctx, api, link, &n, in)
	if err != nil {
		return Node{}, err
	}
	n.Connection = connection(n)
	if err := s.store.CreateNode(ctx, n, limit); err != nil {
		switch {
		case fault.Is(err, CodeCreateLimitReached):
			e, _ := fault.As(err)
			return Node{}, e.With("limit", limit)
		case fault.Is(err, CodeExists):
			// A concurrent attempt of the same request won: it launches.
			cur, gerr := s.store.GetNode(ctx, orgID, id)
			if gerr != nil {
				return Node{}, gerr
			}
			return cur, nil
		}
		return Node{}, fmt.Errorf("create node %s: %w", id, err)
	}
	return s.launch(ctx, api, n, pl, true)
}

// retry answers a second Create of the same request.
func (s *Service) retry(ctx context.Context, n Node, in Input) (Node, error) {
	if n.Name != in.Name || n.AccountID != in.AccountID || n.Region != in.Region || n.InstanceType != in.InstanceType ||
		n.Environment != in.Environment || n.SSHKeyID != in.SSHKeyID || n.DiskGiB != in.DiskGiB {
		return Node{}, fault.Conflictf(CodeExists, "this request key already created a different worker node").With("nodeId", n.ID)
	}
	if n.Status != Provisioning || n.InstanceID != "" || s.now().Sub(n.UpdatedAt) < ResumeAfter {
		return n, nil
	}
	link, err := s.accounts.Link(ctx, n.OrgID, n.AccountID)
	if err != nil {
		return Node{}, err
	}
	api, err := s.accounts.EC2(ctx, link, n.Region)
	if err != nil {
		return Node{}, err
	}
	// The launch uses what the first attempt chose and recorded.
	in.Image, in.SubnetID = ImageInput{ID: n.ImageID}, n.SubnetID
	pl, err := s.prepare(ctx, api, link, &Node{OrgID: n.OrgID, Region: n.Region, InstanceType: n.InstanceType, DiskGiB: n.DiskGiB, SSHKeyID: n.SSHKeyID}, in)
	if err != nil {
		return Node{}, err
	}
	// Claim the launch: of concurrent retries only one gets past here.
	claimed := n
	claimed.Version++
	claimed.UpdatedAt = s.now()
	if err := s.store.UpdateNode(ctx, claimed, n); err != nil {
		if fault.Is(err, ErrConcurrent.Code) {
			return s.store.GetNode(ctx, n.OrgID, n.ID)
		}
		return Node{}, err
	}
	return s.launch(ctx, api, claimed, pl, false)
}

// prepare runs the checks that need AWS and fills in what they find
// (image, OS, VPC, subnet) on n.
func (s *Service) prepare(ctx context.Context, api EC2API, link links.Link, n *Node, in Input) (plan, error) {
	region := n.Region
	archs, err := offered(ctx, api, region, in.InstanceType)
	if err != nil {
		return plan{}, err
	}
	im, err := s.image(ctx, api, link, region, in.Image, archs)
	if err != nil {
		return plan{}, err
	}
	if im.minGiB > in.DiskGiB {
		return plan{}, fault.Field("diskGiB", "must be at least %d: the image's root snapshot is that large", im.minGiB)
	}
	n.ImageID, n.OS = im.id, im.os
	groups, vpc, err := s.resolveGroups(ctx, n.OrgID, in)
	if err != nil {
		return plan{}, err
	}
	subnet, err := pickSubnet(ctx, api, region, vpc, in.SubnetID)
	if err != nil {
		return plan{}, err
	}
	n.VPCID, n.SubnetID = vpc, subnet
	keyName, err := s.keys.EnsureImported(ctx, n.OrgID, in.SSHKeyID, link, region)
	if err != nil {
		return plan{}, err
	}
	return plan{rootDevice: im.rootDevice, awsGroupIDs: groups, keyName: keyName, userData: in.UserData}, nil
}

// offered returns the architectures of an instance type offered in region.
func offered(ctx context.Context, api EC2API, region, name string) ([]string, error) {
	out, err := api.DescribeInstanceTypeOfferings(ctx, &ec2.DescribeInstanceTypeOfferingsInput{
		LocationType: types.LocationTypeRegion,
		Filters:      []types.Filter{filter("instance-type", name)},
	})
	if err != nil {
		return nil, classify(err, "ec2:DescribeInstanceTypeOfferings", region)
	}
	if !slices.ContainsFunc(out.InstanceTypeOfferings, func(o types.InstanceTypeOffering) bool { return string(o.InstanceType) == name }) {
		return nil, notOffered(name, region)
	}
	it, err := api.DescribeInstanceTypes(ctx, &ec2.DescribeInstanceTypesInput{InstanceTypes: []types.InstanceType{types.InstanceType(name)}})
	if notFound(err, "InvalidInstanceType") {
		return nil, notOffered(name, region)
	}
	if err != nil {
		return nil, classify(err, "ec2:DescribeInstanceTypes", region)
	}
	var archs []string
	for _, t := range it.InstanceTypes {
		if t.ProcessorInfo == nil {
			continue
		}
		for _, a := range t.ProcessorInfo.SupportedArchitectures {
			if s := string(a); s == discovery.ArchX86 || s == discovery.ArchARM {
				archs = append(archs, s)
			}
		}
	}
	if len(archs) == 0 {
		return nil, notOffered(name, region)
	}
	return archs, nil
}

func notOffered(name, region string) error {
	return fault.Unprocessablef(CodeInstanceTypeNotOffered, "instance type %s is not offered in region %s", name, region).With("instanceType", name)
}

type imageInfo struct {
	id, os, rootDevice string
	minGiB             int
}

func (s *Service) image(ctx context.Context, api EC2API, link links.Link, region string, in ImageInput, archs []string) (imageInfo, error) {
	id := in.ID
	if id == "" {
		found, err := s.images.Images(ctx, link, region, in.OS, archs[0])
		if err != nil {
			return imageInfo{}, err
		}
		for _, im := range found {
			if in.Version == "" || im.Version == in.Version {
				id = im.ID
				break
			}
		}
		if id == "" {
			v := in.Version
			if v == "" {
				v = "any version"
			}
			return imageInfo{}, fault.Unprocessablef(CodeImageNotFound, "no current %s image (%s, %s) in region %s", in.OS, v, archs[0], region)
		}
	}
	out, err := api.DescribeImages(ctx, &ec2.DescribeImagesInput{ImageIds: []string{id}})
	if notFound(err, "InvalidAMIID.NotFound", "InvalidAMIID.Malformed", "InvalidAMIID.Unavailable") {
		return imageInfo{}, imageNotFound(id, region)
	}
	if err != nil {
		return imageInfo{}, classify(err, "ec2:DescribeImages", region)
	}
	var im *types.Image
	for i := range out.Images {
		if aws.ToString(out.Images[i].ImageId) == id {
			im = &out.Images[i]
		}
	}
	if im == nil || im.State != types.ImageStateAvailable {
		return imageInfo{}, imageNotFound(id, region)
	}
	if !slices.Contains(archs, string(im.Architecture)) {
		return imageInfo{}, fault.Unprocessablef(CodeImageArchitectureMismatch, "image %s is for %s; the instance type runs %s", id, im.Architecture, strings.Join(archs, ", ")).
			With("imageArchitecture", string(im.Architecture)).With("instanceTypeArchitectures", archs)
	}
	info := imageInfo{id: id, os: in.OS, rootDevice: aws.ToString(im.RootDeviceName)}
	if info.os == "" {
		info.os = osOf(aws.ToString(im.Name))
	}
	if info.rootDevice == "" {
		info.rootDevice = "/dev/xvda"
	}
	for _, m := range im.BlockDeviceMappings {
		if aws.ToString(m.DeviceName) == info.rootDevice && m.Ebs != nil {
			info.minGiB = int(aws.ToInt32(m.Ebs.VolumeSize))
		}
	}
	return info, nil
}

func imageNotFound(id, region string) error {
	return fault.Unprocessablef(CodeImageNotFound, "image %s is not available in region %s", id, region).With("imageId", id)
}

// osOf recognises the official images' names (see discovery); other
// images have no known OS.
func osOf(name string) string {
	switch {
	case strings.HasPrefix(name, "ubuntu/") || strings.HasPrefix(name, "ubuntu-"):
		return discovery.OSUbuntu
	case strings.HasPrefix(name, "debian-"):
		return discovery.OSDebian
	case strings.HasPrefix(name, "al2023-") || strings.HasPrefix(name, "amzn"):
		return discovery.OSAmazonLinux
	}
	return ""
}

// resolveGroups checks the groups belong to the account and region, all in
// one VPC, and returns their AWS ids and the VPC.
func (s *Service) resolveGroups(ctx context.Context, orgID string, in Input) ([]string, string, error) {
	refs, err := s.groups.Resolve(ctx, orgID, in.SecurityGroupIDs)
	if err != nil {
		return nil, "", err
	}
	byID := make(map[string]GroupRef, len(refs))
	for _, r := range refs {
		byID[r.ID] = r
	}
	var awsIDs []string
	vpc := ""
	for i, id := range in.SecurityGroupIDs {
		r, ok := byID[id]
		if !ok {
			return nil, "", fault.Unprocessablef(CodeSecurityGroupNotFound, "no security group %s in the organisation", id).With("field", fmt.Sprintf("securityGroupIds[%d]", i))
		}
		switch {
		case r.AccountID != in.AccountID:
			return nil, "", groupMismatch(id, "belongs to another linked account")
		case r.Region != in.Region:
			return nil, "", groupMismatch(id, "is in region "+r.Region)
		case r.AWSGroupID == "":
			return nil, "", fault.Unprocessablef(CodeSecurityGroupNotFound, "security group %s has no AWS group yet; sync it first", id).With("securityGroupId", id)
		case vpc != "" && r.VPCID != vpc:
			return nil, "", groupMismatch(id, "is in another VPC than "+in.SecurityGroupIDs[0])
		}
		vpc = r.VPCID
		awsIDs = append(awsIDs, r.AWSGroupID)
	}
	return awsIDs, vpc, nil
}

func groupMismatch(id, why string) error {
	return fault.Unprocessablef(CodeSecurityGroupMismatch, "security group %s %s", id, why).With("securityGroupId", id)
}

// pickSubnet checks the subnet asked for is in the groups' VPC, or picks
// one there: a default subnet first, then the one with the most free
// addresses.
func pickSubnet(ctx context.Context, api EC2API, region, vpc, want string) (string, error) {
	in := &ec2.DescribeSubnetsInput{Filters: []types.Filter{filter("vpc-id", vpc)}}
	if want != "" {
		in = &ec2.DescribeSubnetsInput{SubnetIds: []string{want}}
	}
	var subnets []types.Subnet
	p := ec2.NewDescribeSubnetsPaginator(api, in)
	for p.HasMorePages() {
		out, err := p.NextPage(ctx)
		if notFound(err, "InvalidSubnetID.NotFound", "InvalidSubnetID.Malformed") {
			break
		}
		if err != nil {
			return "", classify(err, "ec2:DescribeSubnets", region)
		}
		subnets = append(subnets, out.Subnets...)
	}
	if want != "" {
		if len(subnets) == 0 {
			return "", fault.Unprocessablef(CodeSubnetNotFound, "no subnet %s in region %s", want, region).With("subnetId", want)
		}
		if got := aws.ToString(subnets[0].VpcId); got != vpc {
			return "", fault.Unprocessablef(CodeSubnetMismatch, "subnet %s is in VPC %s, the security groups in VPC %s", want, got, vpc).With("subnetId", want)
		}
		return want, nil
	}
	subnets = slices.DeleteFunc(subnets, func(s types.Subnet) bool { return s.State != types.SubnetStateAvailable })
	if len(subnets) == 0 {
		return "", fault.Unprocessablef(CodeSubnetNotFound, "VPC %s of the security groups has no available subnet in region %s", vpc, region)
	}
	slices.SortFunc(subnets, func(a, b types.Subnet) int {
		da, db := aws.ToBool(a.DefaultForAz), aws.ToBool(b.DefaultForAz)
		switch {
		case da != db && da:
			return -1
		case da != db:
			return 1
		}
		if c := aws.ToInt32(b.AvailableIpAddressCount) - aws.ToInt32(a.AvailableIpAddressCount); c != 0 {
			return int(c)
		}
		return strings.Compare(aws.ToString(a.SubnetId), aws.ToString(b.SubnetId))
	})
	return aws.ToString(subnets[0].SubnetId), nil
}

// tags are the tags of a node's instance and root volume.
func tags(n Node) []types.Tag {
	kv := [][2]string{
		{"Name", n.Name},
		{awsperms.ManagedTagKey, awsperms.ManagedTagValue},
		{awsperms.OrgTagKey, n.OrgID},
		{EnvironmentTagKey, n.Environment},
		{awsperms.NodeTagKey, n.ID},
	}
	if n.RequestID != "" {
		// Tag values are at most 256 characters.
		kv = append(kv, [2]string{RequestTagKey, truncate(n.RequestID, 256)})
	}
	out := make([]types.Tag, len(kv))
	for i, t := range kv {
		out[i] = types.Tag{Key: aws.String(t[0]), Value: aws.String(t[1])}
	}
	return out
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n]
}

func runInput(n Node, pl plan) *ec2.RunInstancesInput {
	in := &ec2.RunInstancesInput{
		ImageId:      aws.String(n.ImageID),
		InstanceType: types.InstanceType(n.InstanceType),
		MinCount:     aws.Int32(1),
		MaxCount:     aws.Int32(1),
		KeyName:      aws.String(pl.keyName),
		SubnetId:     aws.String(n.SubnetID),
		// The node id: AWS then returns the first launch's instance for a
		// repeated call, for as long as it remembers the token.
		ClientToken:      aws.String(n.ID),
		SecurityGroupIds: pl.awsGroupIDs,
		MetadataOptions: &types.InstanceMetadataOptionsRequest{
			HttpTokens:   types.HttpTokensStateRequired,
			HttpEndpoint: types.InstanceMetadataEndpointStateEnabled,
		},
		BlockDeviceMappings: []types.BlockDeviceMapping{{
			DeviceName: aws.String(pl.rootDevice),
			Ebs: &types.EbsBlockDevice{
				VolumeSize:          aws.Int32(int32(n.DiskGiB)),
				VolumeType:          types.VolumeTypeGp3,
				Encrypted:           aws.Bool(true),
				DeleteOnTermination: aws.Bool(true),
			},
		}},
		TagSpecifications: []types.TagSpecification{
			{ResourceType: types.ResourceTypeInstance, Tags: tags(n)},
			{ResourceType: types.ResourceTypeVolume, Tags: tags(n)},
		},
	}
	if pl.userData != "" {
		in.UserData = aws.String(pl.userData)
	}
	return in
}

// launch starts the node's instance unless it already has one (found by
// its tag), and records it. fresh is true for a node just written: no
// instance can exist for it yet.
func (s *Service) launch(ctx context.Context, api EC2API, n Node, pl plan, fresh bool) (Node, error) {
	inst, err := byNodeTag(ctx, api, n.Region, n.OrgID, n.ID)
	if err != nil {
		return n, s.launchFailed(ctx, n, err, fresh)
	}
	if inst == nil {
		out, rerr := api.RunInstances(ctx, runInput(n, pl))
		if rerr != nil {
			return n, s.launchFailed(ctx, n, classify(rerr, "ec2:RunInstances", n.Region), rejected(rerr))
		}
		if len(out.Instances) == 0 {
			return n, s.launchFailed(ctx, n, fmt.Errorf("run instances for %s: no instance in the answer", n.ID), false)
		}
		inst = &out.Instances[0]
	}
	next := n
	observe(&next, inst)
	next.LastError = nil
	next.Version++
	next.UpdatedAt = s.now()
	if err := s.store.UpdateNode(ctx, next, n); err != nil {
		// The instance carries the node's tag: Get or Reconcile attach it.
		s.log.ErrorContext(ctx, "record launched instance", "node", n.ID, "instance", next.InstanceID, "error", err.Error())
		next.Version = n.Version
	}
	return next, nil
}

// launchFailed records a failed launch. certain: no instance can exist, so
// the node fails (releasing its usage); otherwise it stays provisioning,
// with the error, until its instance is found or the grace period ends.
// It returns cause for the caller.
func (s *Service) launchFailed(ctx context.Context, n Node, cause error, certain bool) error {
	next := n
	next.LastError = nodeError(cause, CodeLaunchFailed, s.now())
	if certain {
		next.Status = Failed
	}
	next.Version++
	next.UpdatedAt = s.now()
	if err := s.store.UpdateNode(ctx, next, n); err != nil {
		// Left in provisioning: the reconciler fails it after the grace.
		s.log.ErrorContext(ctx, "record failed launch", "node", n.ID, "error", err.Error(), "cause", cause.Error())
	}
	return cause
}

// nodeError describes err for clients: a fault's code and detail, or
// fallback with a generic message (internal errors are not shown).
func nodeError(err error, fallback string, at time.Time) *NodeError {
	if e, ok := fault.As(err); ok && e.Kind != fault.Internal {
		return &NodeError{Code: e.Code, Message: e.Detail, At: at}
	}
	return &NodeError{Code: fallback, Message: "an internal error interrupted the operation; it is retried or reported", At: at}
}
