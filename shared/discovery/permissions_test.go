package discovery

import (
	"context"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/aws/aws-sdk-go-v2/service/iam"
	"github.com/aws/aws-sdk-go-v2/service/ssm"

	"github.com/dflow-sh/cloud-accounts/shared/awsperms"
	"github.com/dflow-sh/cloud-accounts/shared/fault"
	"github.com/dflow-sh/cloud-accounts/shared/motoserver"
)

var managedTag = []types.Tag{{Key: aws.String(awsperms.ManagedTagKey), Value: aws.String(awsperms.ManagedTagValue)}}

// allowAllBut is a region where every dry run passes except the operations
// given (op → AWS code), with a dFlow-managed instance, group (with a rule
// each way) and key pair to act on.
func allowAllBut(refuse map[string]string) *fakeEC2 {
	f := &fakeEC2{
		describeRegions: commercialAnswer(nil).describe,
		dryRun: func(op string) error {
			if code, ok := refuse[op]; ok {
				return apiErr(code)
			}
			return apiErr(codeDryRunOperation)
		},
		describeImages: func(*ec2.DescribeImagesInput) (*ec2.DescribeImagesOutput, error) {
			return &ec2.DescribeImagesOutput{Images: []types.Image{
				img("ami-0a1b2c3d4e5f60001", "al2023-ami-2023.9.20260401.0-kernel-6.1-x86_64", "x86_64", "2026-04-01T00:00:00Z", ""),
			}}, nil
		},
		describeSubnets: func(*ec2.DescribeSubnetsInput) (*ec2.DescribeSubnetsOutput, error) {
			return &ec2.DescribeSubnetsOutput{Subnets: []types.Subnet{{SubnetId: aws.String("subnet-01234567"), VpcId: aws.String("vpc-01234567"), DefaultForAz: aws.Bool(true)}}}, nil
		},
		describeInstances: func(*ec2.DescribeInstancesInput) (*ec2.DescribeInstancesOutput, error) {
			return &ec2.DescribeInstancesOutput{Reservations: []types.Reservation{{Instances: []types.Instance{{InstanceId: aws.String("i-0123456789abcdef0")}}}}}, nil
		},
		describeSecurityGroups: func(*ec2.DescribeSecurityGroupsInput) (*ec2.DescribeSecurityGroupsOutput, error) {
			return &ec2.DescribeSecurityGroupsOutput{SecurityGroups: []types.SecurityGroup{{GroupId: aws.String("sg-0123456789abcdef0")}}}, nil
		},
		describeSecurityGroupRules: func(*ec2.DescribeSecurityGroupRulesInput) (*ec2.DescribeSecurityGroupRulesOutput, error) {
			return &ec2.DescribeSecurityGroupRulesOutput{SecurityGroupRules: []types.SecurityGroupRule{
				{SecurityGroupRuleId: aws.String("sgr-0000000000000000e"), IsEgress: aws.Bool(true), IpProtocol: aws.String("-1"), CidrIpv4: aws.String("0.0.0.0/0")},
				{SecurityGroupRuleId: aws.String("sgr-0000000000000000i"), IsEgress: aws.Bool(false), IpProtocol: aws.String("tcp"), FromPort: aws.Int32(22), ToPort: aws.Int32(22), CidrIpv4: aws.String("10.0.0.0/8")},
			}}, nil
		},
		describeKeyPairs: func(*ec2.DescribeKeyPairsInput) (*ec2.DescribeKeyPairsOutput, error) {
			return &ec2.DescribeKeyPairsOutput{KeyPairs: []types.KeyPairInfo{{KeyPairId: aws.String("key-0123456789abcdef0")}}}, nil
		},
	}
	return f
}

func byActionRegion(rep PermissionsReport) map[string]PermissionCheck {
	m := map[string]PermissionCheck{}
	for _, it := range rep.Items {
		m[it.Action+"@"+it.Region] = it
	}
	return m
}

func TestPermissionsCheck(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := allowAllBut(map[string]string{
		"RunInstances":        "UnauthorizedOperation",
		"StopInstances":       "AccessDenied",
		"CreateSecurityGroup": "InvalidVpcID.NotFound",
	})
	keys := &fakeIAM{keyID: "AKIAEXAMPLEKEY000001", lastUsed: apiErr("AccessDenied")}
	c := fakeIAMClients{&fakeClients{ec2: map[string]EC2API{"*": f}, iam: keys}}
	tg := commercial(t)
	tg.AccessKeyUser = true

	rep, err := NewService(nil).PermissionsCheck(ctx, tg, c, []string{"us-east-1", "ap-east-1"})
	if err != nil {
		t.Fatal(err)
	}
	got := byActionRegion(rep)
	regional, iamActions := 0, 0
	for _, a := range awsperms.Needed {
		if strings.HasPrefix(a.Name, "iam:") {
			iamActions++
		} else {
			regional++
		}
	}
	if len(rep.Items) != 2*regional+iamActions {
		t.Errorf("%d items, want %d", len(rep.Items), 2*regional+iamActions)
	}
	want := map[string]PermissionCheck{
		"ec2:DescribeVpcs@us-east-1":             {Status: StatusAllowed},
		"ec2:RunInstances@us-east-1":             {Status: StatusDenied, Code: "UnauthorizedOperation"},
		"ec2:CreateTags@us-east-1":               {Status: StatusDenied, Code: "UnauthorizedOperation"},
		"ec2:StopInstances@us-east-1":            {Status: StatusDenied, Code: "AccessDenied"},
		"ec2:StartInstances@us-east-1":           {Status: StatusAllowed},
		"ec2:ModifySecurityGroupRules@us-east-1": {Status: StatusAllowed},
		"ec2:CreateSecurityGroup@us-east-1":      {Status: StatusError, Code: "InvalidVpcID.NotFound"},
		"ssm:GetParameters@us-east-1":            {Status: StatusAllowed},
		"ec2:DescribeVpcs@ap-east-1":             {Status: StatusError, Code: CodeRegionNotEnabled},
		"iam:GetUser@":                           {Status: StatusAllowed},
		"iam:ListAccessKeys@":                    {Status: StatusAllowed},
		"iam:GetAccessKeyLastUsed@":              {Status: StatusDenied, Code: "AccessDenied"},
		"iam:CreateAccessKey@":                   {Status: StatusUnchecked, Code: codeNoDryRun},
		"iam:DeleteAccessKey@":                   {Status: StatusUnchecked, Code: codeNoDryRun},
	}
	for key, w := range want {
		g, ok := got[key]
		if !ok || g.Status != w.Status || g.Code != w.Code {
			t.Errorf("%s: %+v, want %s %s", key, g, w.Status, w.Code)
		}
	}
	for _, it := range rep.Items {
		if it.Feature == "" || (it.Status != StatusAllowed && it.Message == "") {
			t.Errorf("item %+v", it)
		}
	}
	wantMissing := []string{"ec2:RunInstances", "ec2:CreateTags", "ec2:StopInstances", "iam:GetAccessKeyLastUsed"}
	if !slices.Equal(rep.Missing, wantMissing) {
		t.Errorf("missing %v", rep.Missing)
	}
	var missing []awsperms.Action
	for _, m := range wantMissing {
		missing = append(missing, mustAction(t, m))
	}
	if rep.Policy == nil || !jsonEqual(*rep.Policy, awsperms.PolicyFor(tg.Partition, missing)) {
		t.Errorf("policy %s", toJSON(rep.Policy))
	}
	if keys.lastUsedCall != 1 {
		t.Errorf("GetAccessKeyLastUsed called %d times", keys.lastUsedCall)
	}
	// IAM is global: checked once however many regions.
	if n := f.count("RunInstances"); n != 1 {
		t.Errorf("RunInstances dry runs: %d (ap-east-1 is not enabled)", n)
	}
}

// Every action dFlow needs has a check: adding one to awsperms.Needed
// without teaching the permission check fails here.
func TestEveryNeededActionIsChecked(t *testing.T) {
	t.Parallel()
	tg := commercial(t)
	tg.AccessKeyUser = true
	c := fakeIAMClients{&fakeClients{ec2: map[string]EC2API{"*": allowAllBut(nil)}, iam: &fakeIAM{keyID: "AKIAEXAMPLEKEY000001"}}}
	rep, err := NewService(nil).PermissionsCheck(context.Background(), tg, c, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Items) != len(awsperms.Needed) {
		t.Errorf("%d items for %d actions", len(rep.Items), len(awsperms.Needed))
	}
	for _, it := range rep.Items {
		switch {
		case it.Code == codeNoCheck:
			t.Errorf("%s has no check", it.Action)
		case it.Status != StatusAllowed && it.Code != codeNoDryRun:
			t.Errorf("%+v", it)
		}
	}
	if len(rep.Missing) != 0 || rep.Policy != nil {
		t.Errorf("missing %v policy %v", rep.Missing, rep.Policy)
	}
}

func TestPermissionsCheckWithoutManagedResources(t *testing.T) {
	t.Parallel()
	f := allowAllBut(nil)
	f.describeInstances = func(*ec2.DescribeInstancesInput) (*ec2.DescribeInstancesOutput, error) {
		return &ec2.DescribeInstancesOutput{}, nil
	}
	f.describeSecurityGroups = func(*ec2.DescribeSecurityGroupsInput) (*ec2.DescribeSecurityGroupsOutput, error) {
		return nil, apiErr("UnauthorizedOperation")
	}
	f.describeKeyPairs = func(*ec2.DescribeKeyPairsInput) (*ec2.DescribeKeyPairsOutput, error) {
		return &ec2.DescribeKeyPairsOutput{}, nil
	}
	// A role link: no IAM actions at all.
	rep, err := NewService(nil).PermissionsCheck(context.Background(), commercial(t), &fakeClients{ec2: map[string]EC2API{"*": f}}, []string{"eu-west-2"})
	if err != nil {
		t.Fatal(err)
	}
	var unchecked []string
	for _, it := range rep.Items {
		if strings.HasPrefix(it.Action, "iam:") {
			t.Errorf("role link checked %s", it.Action)
		}
		if it.Status == StatusUnchecked {
			unchecked = append(unchecked, it.Action+":"+it.Code)
		} else if it.Status != StatusAllowed {
			t.Errorf("%+v", it)
		}
	}
	want := []string{
		"ec2:StartInstances:" + codeNoManagedResource, "ec2:StopInstances:" + codeNoManagedResource,
		"ec2:RebootInstances:" + codeNoManagedResource, "ec2:TerminateInstances:" + codeNoManagedResource,
		"ec2:DeleteSecurityGroup:" + codeLookupFailed, "ec2:AuthorizeSecurityGroupIngress:" + codeLookupFailed,
		"ec2:AuthorizeSecurityGroupEgress:" + codeLookupFailed, "ec2:RevokeSecurityGroupIngress:" + codeLookupFailed,
		"ec2:RevokeSecurityGroupEgress:" + codeLookupFailed, "ec2:ModifySecurityGroupRules:" + codeLookupFailed,
		"ec2:DeleteKeyPair:" + codeNoManagedResource,
	}
	if !slices.Equal(unchecked, want) {
		t.Errorf("unchecked %v\nwant %v", unchecked, want)
	}
	for _, a := range []string{"StopInstances", "DeleteSecurityGroup", "DeleteKeyPair"} {
		if f.count(a) != 0 {
			t.Errorf("%s called without a resource", a)
		}
	}
}

func TestPermissionsCheckCredentialsRejected(t *testing.T) {
	t.Parallel()
	f := allowAllBut(nil)
	f.dryRun = func(string) error { return apiErr("AuthFailure") }
	_, err := NewService(nil).PermissionsCheck(context.Background(), commercial(t), &fakeClients{ec2: map[string]EC2API{"*": f}}, []string{"us-east-1", "us-west-2"})
	wantFault(t, err, fault.Unprocessable, CodeAuthFailed)

	// Without an IAM client, an access-key link's IAM reads are unchecked.
	tg := commercial(t)
	tg.AccessKeyUser = true
	rep, err := NewService(nil).PermissionsCheck(context.Background(), tg, &fakeClients{ec2: map[string]EC2API{"*": allowAllBut(nil)}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if g := byActionRegion(rep)["iam:GetUser@"]; g.Status != StatusUnchecked || g.Code != codeNoIAMClient {
		t.Errorf("GetUser %+v", g)
	}
}

// On moto every check passes for an account with dFlow-managed resources,
// and the dry runs change nothing.
func TestOnMotoPermissionsCheck(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	mc := newMotoClients(t)
	const region = "us-east-1"
	raw := mc.raw(t, region)
	sg, err := raw.CreateSecurityGroup(ctx, &ec2.CreateSecurityGroupInput{GroupName: aws.String("dflow-node"), Description: aws.String("dFlow"),
		TagSpecifications: []types.TagSpecification{{ResourceType: types.ResourceTypeSecurityGroup, Tags: managedTag}}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := raw.AuthorizeSecurityGroupIngress(ctx, &ec2.AuthorizeSecurityGroupIngressInput{GroupId: sg.GroupId, IpPermissions: []types.IpPermission{{
		IpProtocol: aws.String("tcp"), FromPort: aws.Int32(22), ToPort: aws.Int32(22), IpRanges: []types.IpRange{{CidrIp: aws.String("10.0.0.0/8")}},
	}}}); err != nil {
		t.Fatal(err)
	}
	if _, err := raw.ImportKeyPair(ctx, &ec2.ImportKeyPairInput{KeyName: aws.String("dflow-org"), PublicKeyMaterial: checkPublicKey,
		TagSpecifications: []types.TagSpecification{{ResourceType: types.ResourceTypeKeyPair, Tags: managedTag}}}); err != nil {
		t.Fatal(err)
	}
	if _, err := raw.RunInstances(ctx, &ec2.RunInstancesInput{ImageId: aws.String(motoImage(t, raw)), InstanceType: types.InstanceTypeT3Micro,
		MinCount: aws.Int32(1), MaxCount: aws.Int32(1),
		TagSpecifications: []types.TagSpecification{{ResourceType: types.ResourceTypeInstance, Tags: managedTag}}}); err != nil {
		t.Fatal(err)
	}
	svc := NewService(newMemCache(nil))
	before, err := svc.Inventory(ctx, commercial(t), mc, []string{region})
	if err != nil {
		t.Fatal(err)
	}

	rep, err := svc.PermissionsCheck(ctx, commercial(t), mc, []string{region, "us-west-1"})
	if err != nil {
		t.Fatal(err)
	}
	for _, it := range rep.Items {
		switch it.Region {
		case region:
			if it.Status != StatusAllowed {
				t.Errorf("%+v", it)
			}
		case "us-west-1":
			if it.Status != StatusAllowed && it.Code != codeNoManagedResource {
				t.Errorf("%+v", it)
			}
		default:
			t.Errorf("%+v", it)
		}
	}
	if len(rep.Missing) != 0 || rep.Policy != nil {
		t.Errorf("missing %v", rep.Missing)
	}

	after, err := svc.Inventory(ctx, commercial(t), mc, []string{region})
	if err != nil {
		t.Fatal(err)
	}
	keys, _ := svc.KeyPairs(ctx, commercial(t), mc, region, true)
	if !jsonEqual(before.Items, after.Items) || len(keys.Items) != 1 {
		t.Errorf("the dry runs changed the account: %s → %s, keys %+v", toJSON(before.Items), toJSON(after.Items), keys.Items)
	}
}

// keyClients sign with an IAM user's access key on the enforcing server.
type keyClients struct {
	srv        *motoserver.Server
	id, secret string
}

func (k keyClients) cfg(ctx context.Context, region string) (aws.Config, error) {
	cfg, err := k.srv.Config(ctx, region)
	cfg.Credentials = credentials.NewStaticCredentialsProvider(k.id, k.secret, "")
	cfg.RetryMaxAttempts = 1
	return cfg, err
}

func (k keyClients) EC2(ctx context.Context, region string) (EC2API, error) {
	cfg, err := k.cfg(ctx, region)
	return ec2.NewFromConfig(cfg), err
}

func (k keyClients) SSM(ctx context.Context, region string) (SSMAPI, error) {
	cfg, err := k.cfg(ctx, region)
	return ssm.NewFromConfig(cfg), err
}

func (k keyClients) IAM(ctx context.Context) (IAMAPI, error) {
	cfg, err := k.cfg(ctx, "us-east-1")
	return iam.NewFromConfig(cfg), err
}

// With moto's IAM enforcement on (a server of the test's own: the switch is
// global), a user's policy decides: what it lacks is denied (moto says
// AccessDenied where EC2 says UnauthorizedOperation), reads it lacks are
// 422 provider_permission_denied, and an unknown key is
// provider_auth_failed. moto matches only Resource "*" and ignores
// conditions, so the policy here is written that way.
func TestOnMotoWithIAMEnforcement(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	srv, err := motoserver.Start(ctx, motoserver.Options{Env: motoserver.DefaultEnv})
	if err != nil {
		t.Fatalf("AWS emulator: %v", err)
	}
	t.Cleanup(srv.Stop)
	cfg, err := srv.Config(ctx, "us-east-1")
	if err != nil {
		t.Fatal(err)
	}
	admin := iam.NewFromConfig(cfg)
	if _, err := admin.CreateUser(ctx, &iam.CreateUserInput{UserName: aws.String("dflow")}); err != nil {
		t.Fatal(err)
	}
	policy := `{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Resource":"*","Action":[` +
		`"ec2:DescribeRegions","ec2:DescribeAvailabilityZones","ec2:DescribeSubnets","ec2:DescribeSecurityGroups",` +
		`"ec2:DescribeSecurityGroupRules","ec2:DescribeKeyPairs","ec2:DescribeInstanceTypes","ec2:DescribeInstanceTypeOfferings",` +
		`"ec2:DescribeImages","ec2:DescribeInstances","ec2:DescribeVolumes","ec2:DescribeTags","ec2:DescribeAccountAttributes",` +
		`"ec2:CreateSecurityGroup","ec2:ImportKeyPair","ssm:GetParameters","ssm:GetParametersByPath",` +
		`"iam:GetUser","iam:ListAccessKeys"]}]}`
	if _, err := admin.PutUserPolicy(ctx, &iam.PutUserPolicyInput{UserName: aws.String("dflow"), PolicyName: aws.String("discovery"), PolicyDocument: aws.String(policy)}); err != nil {
		t.Fatal(err)
	}
	key, err := admin.CreateAccessKey(ctx, &iam.CreateAccessKeyInput{UserName: aws.String("dflow")})
	if err != nil {
		t.Fatal(err)
	}
	enforce(t, srv)

	c := keyClients{srv: srv, id: aws.ToString(key.AccessKey.AccessKeyId), secret: aws.ToString(key.AccessKey.SecretAccessKey)}
	tg := commercial(t)
	tg.AccessKeyUser = true
	svc := NewService(nil)

	rep, err := svc.PermissionsCheck(ctx, tg, c, nil)
	if err != nil {
		t.Fatal(err)
	}
	wantMissing := []string{"ec2:DescribeVpcs", "ec2:RunInstances", "ec2:CreateTags", "iam:GetAccessKeyLastUsed"}
	if !slices.Equal(rep.Missing, wantMissing) {
		t.Errorf("missing %v, want %v\n%s", rep.Missing, wantMissing, toJSON(rep.Items))
	}
	got := byActionRegion(rep)
	for key, status := range map[string]string{
		"ec2:DescribeVpcs@us-east-1":        StatusDenied,
		"ec2:CreateSecurityGroup@us-east-1": StatusAllowed,
		"ec2:ImportKeyPair@us-east-1":       StatusAllowed,
		"ssm:GetParameters@us-east-1":       StatusAllowed,
		"ec2:DeleteKeyPair@us-east-1":       StatusUnchecked,
		"iam:GetUser@":                      StatusAllowed,
		"iam:ListAccessKeys@":               StatusAllowed,
		"iam:GetAccessKeyLastUsed@":         StatusDenied,
		"iam:CreateAccessKey@":              StatusUnchecked,
	} {
		if got[key].Status != status {
			t.Errorf("%s: %+v, want %s", key, got[key], status)
		}
	}
	if got["ec2:DescribeVpcs@us-east-1"].Code != "AccessDenied" {
		t.Errorf("moto's denial code: %+v", got["ec2:DescribeVpcs@us-east-1"])
	}
	if rep.Policy == nil || !slices.Equal(rep.Policy.Actions(), []string{"ec2:DescribeVpcs", "ec2:RunInstances", "ec2:CreateTags", "iam:GetAccessKeyLastUsed"}) {
		t.Errorf("policy %s", toJSON(rep.Policy))
	}

	_, err = svc.VPCs(ctx, tg, c, "us-east-1", false)
	e := wantFault(t, err, fault.Unprocessable, CodePermissionDenied)
	if e.Extra["action"] != "ec2:DescribeVpcs" || e.Extra["awsErrorCode"] != "AccessDenied" {
		t.Errorf("extra %v", e.Extra)
	}
	if l, err := svc.Subnets(ctx, tg, c, "us-east-1", "", false); err != nil || len(l.Items) == 0 {
		t.Errorf("subnets %v %v", l.Items, err)
	}

	unknown := keyClients{srv: srv, id: "AKIAUNKNOWNKEY000001", secret: "not-a-real-secret-0000000000000000000000"}
	_, err = svc.VPCs(ctx, tg, unknown, "us-east-1", false)
	e = wantFault(t, err, fault.Unprocessable, CodeAuthFailed)
	t.Logf("moto's answer to an unknown key on EC2: %v", e.Extra["awsErrorCode"])
	_, err = svc.PermissionsCheck(ctx, tg, unknown, []string{"us-east-1", "eu-west-1"})
	wantFault(t, err, fault.Unprocessable, CodeAuthFailed)
}

// enforce turns moto's IAM enforcement on for the server (body "0": from
// the next request on).
func enforce(t *testing.T, srv *motoserver.Server) {
	t.Helper()
	resp, err := http.Post(srv.URL+"/moto-api/reset-auth", "text/plain", strings.NewReader("0"))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if body, _ := io.ReadAll(resp.Body); resp.StatusCode != http.StatusOK {
		t.Fatalf("reset-auth: %s %s", resp.Status, body)
	}
}
