// Package awsperms is the product's one list of the AWS actions dFlow calls
// in a linked account, and the IAM policies and CloudFormation template
// generated from it. Code that starts calling a new AWS API adds it to
// Needed; the permission check, the policy shown to customers and the role
// template all follow.
//
// Tag contract. The policies let dFlow stop, start, reboot and terminate only
// instances, change or delete only security groups, and delete only key pairs
// that carry the tag dflow:managed=true, and they require that tag on the
// create call itself (aws:RequestTag), so dFlow cannot touch what it did not
// make. The provisioning code must therefore pass TagSpecifications with
// ManagedTagKey=ManagedTagValue (plus dflow:org and dflow:node) to
// RunInstances (resource type instance), CreateSecurityGroup
// (security-group) and ImportKeyPair (key-pair); tagging afterwards with
// CreateTags is not allowed.
//
// sts:GetCallerIdentity is called too (to learn the account ID and check the
// credentials) but is not listed: it needs no permission and cannot be
// denied.
package awsperms

// Features group the actions by what the product does with them.
const (
	FeatureDiscovery      = "discovery"
	FeatureProvisioning   = "provisioning"
	FeatureSecurityGroups = "security-groups"
	FeatureKeyPairs       = "key-pairs"
	FeatureRotation       = "rotation" // only for access-key links
)

// Tags dFlow puts on every resource it creates in a customer account.
const (
	ManagedTagKey   = "dflow:managed"
	ManagedTagValue = "true"
	OrgTagKey       = "dflow:org"
	NodeTagKey      = "dflow:node"
)

// Placeholders in resource templates. ${Partition} is filled in by this
// package; ${aws:username} is an IAM policy variable left for IAM to resolve.
const (
	PartitionVar = "${Partition}"
	UsernameVar  = "${aws:username}"
)

// Action is one AWS API action dFlow calls, with how it must be granted.
type Action struct {
	Name    string // "ec2:RunInstances"
	Feature string // one of the Feature constants
	Purpose string // why dFlow calls it, for people reading the policy
	// DryRun is true when the EC2 API takes DryRun, so a permission check can
	// call it with DryRun=true. Under the generated policy a dry run must look
	// like the real call: RunInstances needs the dflow:managed TagSpecification,
	// and the tag-limited actions a dFlow-tagged resource.
	DryRun bool
	// Resource is the resource the action is granted on: "*" or an ARN
	// template such as "arn:${Partition}:iam::*:user/${aws:username}".
	Resource string
	// Grants are the policy statements that grant the action, when it needs
	// more than Resource without condition (several resource types, or a
	// condition). Nil means one statement on Resource.
	Grants []Grant
}

// Grant is one statement's worth of permission for an action: the resources
// (templates) it applies to and the condition that narrows it. Actions whose
// Grants share a Sid are granted by one statement.
type Grant struct {
	Sid       string
	Resources []string
	Condition Condition
}

// Condition is an IAM policy Condition block: operator → key → values.
type Condition map[string]map[string][]string

// ARN templates of the resources the policies name. The account is "*":
// the policy lives in the customer's account and IAM cannot grant across
// accounts with it anyway, while the AMI and the public parameters have no
// account field at all.
const (
	ec2Any            = "arn:${Partition}:ec2:*:*:*"
	instanceARN       = "arn:${Partition}:ec2:*:*:instance/*"
	volumeARN         = "arn:${Partition}:ec2:*:*:volume/*"
	networkIfaceARN   = "arn:${Partition}:ec2:*:*:network-interface/*"
	securityGroupARN  = "arn:${Partition}:ec2:*:*:security-group/*"
	securityRuleARN   = "arn:${Partition}:ec2:*:*:security-group-rule/*"
	subnetARN         = "arn:${Partition}:ec2:*:*:subnet/*"
	vpcARN            = "arn:${Partition}:ec2:*:*:vpc/*"
	keyPairARN        = "arn:${Partition}:ec2:*:*:key-pair/*"
	imageARN          = "arn:${Partition}:ec2:*::image/*"
	publicParamsARN   = "arn:${Partition}:ssm:*::parameter/aws/service/*"
	selfUserARN       = "arn:${Partition}:iam::*:user/${aws:username}"
	selfUserInPathARN = "arn:${Partition}:iam::*:user/*/${aws:username}"
)

var (
	// Made by dFlow: the create request carries dflow:managed=true.
	createdManaged = Condition{"StringEquals": {"aws:RequestTag/" + ManagedTagKey: {ManagedTagValue}}}
	// Owned by dFlow: the resource carries dflow:managed=true.
	isManaged = Condition{"StringEquals": {"aws:ResourceTag/" + ManagedTagKey: {ManagedTagValue}}}
)

// The statements of the permissions policy. Each is used by the actions
// below that it grants.
var (
	grantDiscover = Grant{Sid: "Discover", Resources: []string{"*"}}

	grantPublicParameters = Grant{Sid: "ReadPublicAMIParameters", Resources: []string{publicParamsARN}}

	grantLaunchManaged = Grant{Sid: "LaunchManagedInstances", Resources: []string{instanceARN}, Condition: createdManaged}
	// RunInstances is authorised on every resource it uses or creates; these
	// are the customer's own (subnet, key pair, groups) or public (AMI).
	grantLaunchWith = Grant{Sid: "LaunchInstancesWith", Resources: []string{
		imageARN, subnetARN, securityGroupARN, networkIfaceARN, volumeARN, keyPairARN,
	}}

	grantTagOnCreate = Grant{Sid: "TagOnlyOnCreate", Resources: []string{ec2Any}, Condition: Condition{
		"StringEquals": {"ec2:CreateAction": {"RunInstances", "CreateSecurityGroup", "ImportKeyPair", "CreateVolume"}},
	}}

	grantOperateManaged = Grant{Sid: "OperateManagedInstances", Resources: []string{instanceARN}, Condition: isManaged}

	grantCreateGroup   = Grant{Sid: "CreateManagedSecurityGroups", Resources: []string{securityGroupARN}, Condition: createdManaged}
	grantCreateGroupIn = Grant{Sid: "CreateSecurityGroupsInVPCs", Resources: []string{vpcARN}}
	grantManageGroup   = Grant{Sid: "ManageManagedSecurityGroups", Resources: []string{securityGroupARN}, Condition: isManaged}
	// ModifySecurityGroupRules is authorised on the rules as well as on their
	// (tag-checked) group.
	grantModifyRules = Grant{Sid: "ModifyRulesOfManagedGroups", Resources: []string{securityRuleARN}}

	grantImportKey = Grant{Sid: "ImportManagedKeyPairs", Resources: []string{keyPairARN}, Condition: createdManaged}
	grantDeleteKey = Grant{Sid: "DeleteManagedKeyPairs", Resources: []string{keyPairARN}, Condition: isManaged}

	// An IAM user can have a path; user names are unique whatever the path,
	// so both forms match the caller alone.
	grantRotateOwnKeys = Grant{Sid: "RotateOwnAccessKeys", Resources: []string{selfUserARN, selfUserInPathARN}}
)

// Needed lists every AWS action dFlow calls in a linked account, except
// sts:GetCallerIdentity (see the package comment). Treat it as read-only.
var Needed = []Action{
	// Discovery: all EC2 Describe* calls; none supports resource-level
	// permissions, so they are granted on "*".
	describe("ec2:DescribeRegions", "list the regions enabled in the account"),
	describe("ec2:DescribeAvailabilityZones", "list availability zones of a region"),
	describe("ec2:DescribeVpcs", "list VPCs to place nodes in"),
	describe("ec2:DescribeSubnets", "list subnets to place nodes in"),
	describe("ec2:DescribeSecurityGroups", "list security groups, dFlow's and the customer's"),
	describe("ec2:DescribeSecurityGroupRules", "read the rules of dFlow's security groups"),
	describe("ec2:DescribeKeyPairs", "list SSH key pairs"),
	describe("ec2:DescribeInstanceTypes", "read instance type sizes and architectures"),
	describe("ec2:DescribeInstanceTypeOfferings", "list instance types offered in a region or zone"),
	describe("ec2:DescribeImages", "read the AMIs nodes are launched from"),
	describe("ec2:DescribeInstances", "follow the state of dFlow's nodes"),
	describe("ec2:DescribeVolumes", "read the root volumes of dFlow's nodes"),
	describe("ec2:DescribeTags", "find resources by dFlow's tags"),
	describe("ec2:DescribeAccountAttributes", "read account limits and the default VPC"),
	{
		Name: "ssm:GetParameters", Feature: FeatureProvisioning,
		Purpose:  "read AWS's public parameters for current AMI ids",
		Resource: publicParamsARN, Grants: []Grant{grantPublicParameters},
	},
	{
		Name: "ssm:GetParametersByPath", Feature: FeatureProvisioning,
		Purpose:  "list AWS's public parameters for current AMI ids",
		Resource: publicParamsARN, Grants: []Grant{grantPublicParameters},
	},

	// Instance lifecycle.
	{
		Name: "ec2:RunInstances", Feature: FeatureProvisioning, DryRun: true,
		Purpose:  "launch a node, tagged dflow:managed=true at launch",
		Resource: instanceARN, Grants: []Grant{grantLaunchManaged, grantLaunchWith},
	},
	{
		Name: "ec2:CreateTags", Feature: FeatureProvisioning, DryRun: true,
		Purpose:  "tag instances, volumes, security groups and key pairs as they are created, never afterwards",
		Resource: ec2Any, Grants: []Grant{grantTagOnCreate},
	},
	operate("ec2:StartInstances", "start a stopped dFlow node"),
	operate("ec2:StopInstances", "stop a dFlow node"),
	operate("ec2:RebootInstances", "reboot a dFlow node"),
	operate("ec2:TerminateInstances", "terminate a dFlow node"),

	// Security groups.
	{
		Name: "ec2:CreateSecurityGroup", Feature: FeatureSecurityGroups, DryRun: true,
		Purpose:  "create a node's security group, tagged dflow:managed=true at creation",
		Resource: securityGroupARN, Grants: []Grant{grantCreateGroup, grantCreateGroupIn},
	},
	manageGroup("ec2:DeleteSecurityGroup", "delete a dFlow security group"),
	manageGroup("ec2:AuthorizeSecurityGroupIngress", "open a port on a dFlow security group"),
	manageGroup("ec2:AuthorizeSecurityGroupEgress", "allow outbound traffic from a dFlow security group"),
	manageGroup("ec2:RevokeSecurityGroupIngress", "close a port on a dFlow security group"),
	manageGroup("ec2:RevokeSecurityGroupEgress", "remove an outbound rule of a dFlow security group"),
	{
		Name: "ec2:ModifySecurityGroupRules", Feature: FeatureSecurityGroups, DryRun: true,
		Purpose:  "change a rule of a dFlow security group in place",
		Resource: securityGroupARN, Grants: []Grant{grantManageGroup, grantModifyRules},
	},

	// Key pairs.
	{
		Name: "ec2:ImportKeyPair", Feature: FeatureKeyPairs, DryRun: true,
		Purpose:  "import an organisation's SSH public key, tagged dflow:managed=true",
		Resource: keyPairARN, Grants: []Grant{grantImportKey},
	},
	{
		Name: "ec2:DeleteKeyPair", Feature: FeatureKeyPairs, DryRun: true,
		Purpose:  "delete a key pair dFlow imported",
		Resource: keyPairARN, Grants: []Grant{grantDeleteKey},
	},

	// Rotation of an access-key link's own key; role links need no IAM.
	rotate("iam:GetUser", "learn the linked user's name and ARN"),
	rotate("iam:ListAccessKeys", "see the user's keys before rotating"),
	rotate("iam:CreateAccessKey", "create the replacement key"),
	rotate("iam:UpdateAccessKey", "deactivate the old key"),
	rotate("iam:DeleteAccessKey", "delete the old key after the grace period"),
	rotate("iam:GetAccessKeyLastUsed", "check the old key is no longer in use"),
}

func describe(name, purpose string) Action {
	return Action{Name: name, Feature: FeatureDiscovery, Purpose: purpose, DryRun: true, Resource: "*", Grants: []Grant{grantDiscover}}
}

func operate(name, purpose string) Action {
	return Action{Name: name, Feature: FeatureProvisioning, Purpose: purpose, DryRun: true, Resource: instanceARN, Grants: []Grant{grantOperateManaged}}
}

func manageGroup(name, purpose string) Action {
	return Action{Name: name, Feature: FeatureSecurityGroups, Purpose: purpose, DryRun: true, Resource: securityGroupARN, Grants: []Grant{grantManageGroup}}
}

func rotate(name, purpose string) Action {
	return Action{Name: name, Feature: FeatureRotation, Purpose: purpose, Resource: selfUserARN, Grants: []Grant{grantRotateOwnKeys}}
}

// Lookup returns the needed action with the given name.
func Lookup(name string) (Action, bool) {
	for _, a := range Needed {
		if a.Name == name {
			return a, true
		}
	}
	return Action{}, false
}
