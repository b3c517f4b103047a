package nodes

import (
	"context"
	"errors"
	"slices"
	"strings"

	"github.com/dflow-sh/cloud-accounts/shared/awserr"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/aws/smithy-go"

	"github.com/dflow-sh/cloud-accounts/shared/awsperms"
	"github.com/dflow-sh/cloud-accounts/shared/fault"
)

// EC2API is every EC2 call the node use-cases make.
type EC2API interface {
	RunInstances(ctx context.Context, in *ec2.RunInstancesInput, optFns ...func(*ec2.Options)) (*ec2.RunInstancesOutput, error)
	DescribeInstances(ctx context.Context, in *ec2.DescribeInstancesInput, optFns ...func(*ec2.Options)) (*ec2.DescribeInstancesOutput, error)
	StartInstances(ctx context.Context, in *ec2.StartInstancesInput, optFns ...func(*ec2.Options)) (*ec2.StartInstancesOutput, error)
	StopInstances(ctx context.Context, in *ec2.StopInstancesInput, optFns ...func(*ec2.Options)) (*ec2.StopInstancesOutput, error)
	RebootInstances(ctx context.Context, in *ec2.RebootInstancesInput, optFns ...func(*ec2.Options)) (*ec2.RebootInstancesOutput, error)
	TerminateInstances(ctx context.Context, in *ec2.TerminateInstancesInput, optFns ...func(*ec2.Options)) (*ec2.TerminateInstancesOutput, error)
	DescribeImages(ctx context.Context, in *ec2.DescribeImagesInput, optFns ...func(*ec2.Options)) (*ec2.DescribeImagesOutput, error)
	DescribeSubnets(ctx context.Context, in *ec2.DescribeSubnetsInput, optFns ...func(*ec2.Options)) (*ec2.DescribeSubnetsOutput, error)
	DescribeInstanceTypeOfferings(ctx context.Context, in *ec2.DescribeInstanceTypeOfferingsInput, optFns ...func(*ec2.Options)) (*ec2.DescribeInstanceTypeOfferingsOutput, error)
	DescribeInstanceTypes(ctx context.Context, in *ec2.DescribeInstanceTypesInput, optFns ...func(*ec2.Options)) (*ec2.DescribeInstanceTypesOutput, error)
}

var _ EC2API = (*ec2.Client)(nil)

// Codes of the faults for AWS's answers, the same as shared/discovery's.
const (
	CodeAuthFailed       = awserr.CodeAuthFailed
	CodePermissionDenied = awserr.CodePermissionDenied
	CodeRegionNotEnabled = awserr.CodeRegionNotEnabled
	CodeThrottled        = awserr.CodeThrottled
	CodeUnavailable      = awserr.CodeUnavailable
	codeProviderError    = awserr.CodeProviderError
)

// classify turns the error of an EC2 call into a domain fault wrapping it,
// as shared/discovery does (whose classify is not exported), plus the
// answers of the instance calls: capacity and quotas (422/503), and an
// instance in the wrong state (409 invalid_state). Details never quote AWS.
func classify(err error, action, region string) error {
	return awserr.Classify(err, action, region, func(code string, err error) *fault.Error {
		switch code {
		case "IncorrectInstanceState":
			return fault.Conflictf(CodeInvalidState, "the instance cannot do that in its current state")
		case "InsufficientInstanceCapacity", "Unsupported":
			return fault.Unavailablef(30, CodeCapacity, "AWS has no capacity for this instance type in region %s just now; try again later or choose another type", region)
		case "InstanceLimitExceeded", "VcpuLimitExceeded", "MaxSpotInstanceCountExceeded":
			return fault.Unprocessablef(CodeInstanceLimit, "the linked account has reached its instance quota in region %s", region)
		}
		return nil
	})
}

// rejected reports whether AWS answered a RunInstances with a refusal, so
// that no instance can have started; anything else (no answer, a 5xx, an
// error of our own before the request left) leaves the outcome unknown.
func rejected(err error) bool {
	var ae smithy.APIError
	return errors.As(err, &ae) && ae.ErrorFault() == smithy.FaultClient && ae.ErrorCode() != "" &&
		ae.ErrorCode() != "RequestLimitExceeded" && !awserr.IsTransient(err)
}

func notFound(err error, codes ...string) bool {
	c := awserr.Code(err)
	return c != "" && slices.Contains(codes, c)
}

// statusOf maps an EC2 instance state to a node status.
func statusOf(s types.InstanceStateName) string {
	switch s {
	case types.InstanceStateNamePending:
		return Provisioning
	case types.InstanceStateNameRunning:
		return Running
	case types.InstanceStateNameStopping:
		return Stopping
	case types.InstanceStateNameStopped:
		return Stopped
	case types.InstanceStateNameShuttingDown:
		return Terminating
	case types.InstanceStateNameTerminated:
		return Terminated
	}
	return ""
}

func tagValue(tags []types.Tag, key string) string {
	for _, t := range tags {
		if aws.ToString(t.Key) == key {
			return aws.ToString(t.Value)
		}
	}
	return ""
}

func filter(name string, values ...string) types.Filter {
	return types.Filter{Name: aws.String(name), Values: values}
}

// instances runs a DescribeInstances through its pages.
func instances(ctx context.Context, api EC2API, region string, in *ec2.DescribeInstancesInput) ([]types.Instance, error) {
	var out []types.Instance
	p := ec2.NewDescribeInstancesPaginator(api, in)
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return nil, err
		}
		for _, r := range page.Reservations {
			out = append(out, r.Instances...)
		}
	}
	return out, nil
}

// byNodeTag finds the instance launched for a node, if any: a live one
// before a terminated one, the earliest launched first. The instance-id
// order breaks ties so every caller picks the same.
func byNodeTag(ctx context.Context, api EC2API, region, orgID, nodeID string) (*types.Instance, error) {
	found, err := instances(ctx, api, region, &ec2.DescribeInstancesInput{Filters: []types.Filter{
		filter("tag:"+awsperms.NodeTagKey, nodeID),
		filter("tag:"+awsperms.OrgTagKey, orgID),
	}})
	if err != nil {
		return nil, classify(err, "ec2:DescribeInstances", region)
	}
	if len(found) == 0 {
		return nil, nil
	}
	slices.SortFunc(found, func(a, b types.Instance) int {
		ta, tb := a.State != nil && a.State.Name == types.InstanceStateNameTerminated, b.State != nil && b.State.Name == types.InstanceStateNameTerminated
		switch {
		case ta != tb && ta:
			return 1
		case ta != tb:
			return -1
		}
		if c := aws.ToTime(a.LaunchTime).Compare(aws.ToTime(b.LaunchTime)); c != 0 {
			return c
		}
		return strings.Compare(aws.ToString(a.InstanceId), aws.ToString(b.InstanceId))
	})
	return &found[0], nil
}

// byID describes one instance; AWS forgets terminated instances after
// about an hour, so "not found" means terminated (nil, nil).
func byID(ctx context.Context, api EC2API, region, instanceID string) (*types.Instance, error) {
	out, err := api.DescribeInstances(ctx, &ec2.DescribeInstancesInput{InstanceIds: []string{instanceID}})
	if notFound(err, "InvalidInstanceID.NotFound") {
		return nil, nil
	}
	if err != nil {
		return nil, classify(err, "ec2:DescribeInstances", region)
	}
	for _, r := range out.Reservations {
		for _, i := range r.Instances {
			if aws.ToString(i.InstanceId) == instanceID {
				return &i, nil
			}
		}
	}
	return nil, nil
}

// observe copies what EC2 says of an instance onto n and reports whether
// anything changed.
func observe(n *Node, inst *types.Instance) bool {
	before := *n
	if inst == nil {
		n.Status = Terminated
		n.PublicIP, n.PrivateIP = "", ""
	} else {
		n.InstanceID = aws.ToString(inst.InstanceId)
		if inst.State != nil {
			if st := statusOf(inst.State.Name); st != "" {
				n.Status = st
			}
		}
		n.PublicIP, n.PrivateIP = aws.ToString(inst.PublicIpAddress), aws.ToString(inst.PrivateIpAddress)
		if n.Status == Terminated {
			n.PublicIP = ""
		}
		if id := aws.ToString(inst.SubnetId); id != "" {
			n.SubnetID = id
		}
	}
	n.Connection = connection(*n)
	return before.Status != n.Status || before.InstanceID != n.InstanceID || before.PublicIP != n.PublicIP ||
		before.PrivateIP != n.PrivateIP || before.SubnetID != n.SubnetID || before.Connection != n.Connection
}
