package nodes

import (
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
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
	CodeAuthFailed       = "provider_auth_failed"
	CodePermissionDenied = "provider_permission_denied"
	CodeRegionNotEnabled = "region_not_enabled"
	CodeThrottled        = "provider_throttled"
	CodeUnavailable      = "provider_unavailable"
	codeProviderError    = "provider_error"
)

var authCodes = map[string]bool{
	"AuthFailure": true, "UnrecognizedClientException": true, "InvalidClientTokenId": true,
	"InvalidAccessKeyId": true, "ExpiredToken": true, "ExpiredTokenException": true,
	"SignatureDoesNotMatch": true, "Blocked": true,
}

var deniedCodes = map[string]bool{"UnauthorizedOperation": true, "AccessDenied": true, "AccessDeniedException": true}

var (
	throttles  = retry.IsErrorThrottles(retry.DefaultThrottles)
	retryables = retry.IsErrorRetryables(retry.DefaultRetryables)
)

func awsCode(err error) string {
	var ae smithy.APIError
	if errors.As(err, &ae) {
		return ae.ErrorCode()
	}
	return ""
}

// classify turns the error of an EC2 call into a domain fault wrapping it,
// as shared/discovery does (whose classify is not exported), plus the
// answers of the instance calls: capacity and quotas (422/503), and an
// instance in the wrong state (409 invalid_state). Details never quote AWS.
func classify(err error, action, region string) error {
	if err == nil {
		return nil
	}
	if _, ok := fault.As(err); ok || errors.Is(err, context.Canceled) {
		return err
	}
	code := awsCode(err)
	var e *fault.Error
	switch {
	case authCodes[code]:
		e = fault.Unprocessablef(CodeAuthFailed, "AWS rejected the linked account's credentials in region %s (%s): check the link", region, code)
	case deniedCodes[code]:
		e = fault.Unprocessablef(CodePermissionDenied, "the linked account does not allow dFlow to call %s in region %s: add it to the role or user policy", action, region).With("action", action)
	case code == "OptInRequired":
		e = fault.Unprocessablef(CodeRegionNotEnabled, "region %s is not enabled in the linked account", region)
	case code == "IncorrectInstanceState":
		e = fault.Conflictf(CodeInvalidState, "the instance cannot do that in its current state")
	case code == "InsufficientInstanceCapacity" || code == "Unsupported":
		e = fault.Unavailablef(30, CodeCapacity, "AWS has no capacity for this instance type in region %s just now; try again later or choose another type", region)
	case code == "InstanceLimitExceeded" || code == "VcpuLimitExceeded" || code == "MaxSpotInstanceCountExceeded":
		e = fault.Unprocessablef(CodeInstanceLimit, "the linked account has reached its instance quota in region %s", region)
	case code == "RequestLimitExceeded" || throttles.IsErrorThrottle(err) == aws.TrueTernary:
		e = fault.Unavailablef(5, CodeThrottled, "AWS is throttling the linked account's %s calls in region %s; try again shortly", action, region)
	case transient(err):
		e = fault.Unavailablef(2, CodeUnavailable, "AWS did not answer %s in region %s; try again shortly", action, region)
	default:
		e = &fault.Error{Kind: fault.Internal, Code: codeProviderError, Detail: fmt.Sprintf("AWS refused %s in region %s", action, region)}
	}
	if e.Kind != fault.Internal {
		if code != "" {
			e = e.With("awsErrorCode", code)
		}
		e = e.With("region", region)
	}
	e.Err = fmt.Errorf("%s in %s: %w", action, region, err)
	return e
}

func transient(err error) bool {
	if errors.Is(err, context.DeadlineExceeded) {
		return true
	}
	var ae smithy.APIError
	if errors.As(err, &ae) && ae.ErrorFault() == smithy.FaultServer {
		return true
	}
	var opErr *net.OpError
	var dnsErr *net.DNSError
	if errors.As(err, &opErr) || errors.As(err, &dnsErr) {
		return true
	}
	return retryables.IsErrorRetryable(err) == aws.TrueTernary
}

// rejected reports whether AWS answered a RunInstances with a refusal, so
// that no instance can have started; anything else (no answer, a 5xx, an
// error of our own before the request left) leaves the outcome unknown.
func rejected(err error) bool {
	var ae smithy.APIError
	return errors.As(err, &ae) && ae.ErrorFault() == smithy.FaultClient && ae.ErrorCode() != "" &&
		ae.ErrorCode() != "RequestLimitExceeded" && !transient(err)
}

func notFound(err error, codes ...string) bool {
	c := awsCode(err)
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
