// Package groups is dFlow's security groups for worker nodes
// (/v1/orgs/{orgId}/security-groups): EC2 security groups in a linked
// account, whose rules dFlow holds and keeps AWS in step with.
//
// The record is the desired state. Every change is written to it first (with
// a usage item, so the account cannot be unlinked under the group), then
// applied to AWS as the difference between the record's rules and those EC2
// reports (sgrules.Diff), in the order authorize → redescribe → revoke, so
// traffic both the old and new rules allow never drops. The outcome is the
// record's status: in_sync, or failed with lastError; a failed group stays
// visible and can be synced or deleted. A record is never left without the
// AWS group it made: the AWS group is tagged dflow:group=<id> at creation and
// named dflow-<id> (a name EC2 keeps unique per VPC), its id is recorded
// before any rule is applied, and every later pass looks for it by tag first,
// so a retry after a lost answer or a crash finds it instead of making a
// second one.
//
// Decisions a reader may look for:
//   - outboundRules omitted on create means AWS's default egress (all
//     traffic to 0.0.0.0/0), written into the record; [] means no egress,
//     and the default rule EC2 adds is revoked.
//   - EC2 cannot change a group's description, nor (under the tag-on-create
//     policy dFlow's role grants) its tags: PATCH refuses a new description,
//     and a rename changes dFlow's name only; the AWS Name tag keeps the
//     name given at creation.
//   - Sync recreates an AWS group deleted outside dFlow (with a new id,
//     recorded at once). EC2 refuses to delete a group any network interface
//     uses, so no running node lost it.
//   - Rule descriptions change in place with ModifySecurityGroupRules (the
//     action dFlow's policy grants; UpdateSecurityGroupRuleDescriptions* is
//     not granted).
package groups

import (
	"context"
	"log/slog"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/ec2"

	"github.com/dflow-sh/cloud-accounts/shared/links"
	"github.com/dflow-sh/cloud-accounts/shared/sgrules"
	"github.com/dflow-sh/cloud-accounts/shared/tenancy"
)

// Statuses of a group.
const (
	// StatusPending: written, and being created or changed in AWS. A group
	// still pending after its request ended was interrupted: sync it.
	StatusPending = "pending"
	StatusInSync  = "in_sync"
	// StatusFailed: the last change could not be applied; LastError says why.
	StatusFailed = "failed"
)

// Tags dFlow puts on the AWS group, besides awsperms' dflow:managed and
// dflow:org.
const (
	GroupTagKey = "dflow:group"
	NameTagKey  = "Name"
)

// Group is a dFlow security group.
type Group struct {
	OrgID       string `json:"-"`
	ID          string `json:"id"`
	Name        string `json:"name"`
	Description string `json:"description"`
	// AccountID is the dFlow linked account (acc_…) the group lives in.
	AccountID string `json:"accountId"`
	Region    string `json:"region"`
	VPCID     string `json:"vpcId"`
	// AWSGroupID is EC2's id (sg-…); absent until the AWS group exists.
	AWSGroupID    string         `json:"awsGroupId,omitempty"`
	InboundRules  []sgrules.Rule `json:"inboundRules"`
	OutboundRules []sgrules.Rule `json:"outboundRules"`
	Status        string         `json:"status"`
	LastError     *Error         `json:"lastError,omitempty"`
	// Warnings are computed from the rules on every read; never stored.
	Warnings  []sgrules.Warning `json:"warnings"`
	Version   int64             `json:"version"`
	CreatedAt time.Time         `json:"createdAt"`
	CreatedBy string            `json:"createdBy"`
	UpdatedAt time.Time         `json:"updatedAt"`
}

// Rules returns the group's rules for sgrules.
func (g Group) Rules() sgrules.Rules {
	return sgrules.Rules{Inbound: g.InboundRules, Outbound: g.OutboundRules}
}

// Error is why a group's last change failed, or why its drift is unknown.
type Error struct {
	Code    string    `json:"code"`
	Message string    `json:"message"`
	At      time.Time `json:"at"`
	// RequestID is the API request that met the error, for support.
	RequestID string `json:"requestId,omitempty"`
}

// Detail is a group with how AWS differs from it, for GET and sync.
type Detail struct {
	Group
	// Drift lists how the AWS group differs from the rules dFlow holds:
	// [] when in step, null when it could not be read (DriftError says why).
	Drift      []sgrules.DriftItem `json:"drift"`
	DriftError *Error              `json:"driftError,omitempty"`
}

// Input is the body of POST /security-groups.
type Input struct {
	Name        *string `json:"name"`
	Description *string `json:"description"`
	AccountID   *string `json:"accountId"`
	Region      *string `json:"region"`
	// VPCID defaults to the region's default VPC.
	VPCID        *string             `json:"vpcId"`
	InboundRules []sgrules.RuleInput `json:"inboundRules"`
	// OutboundRules nil (absent or null) means sgrules.DefaultEgress.
	OutboundRules []sgrules.RuleInput `json:"outboundRules"`
}

// Patch is the body of PATCH /security-groups/{id}. A nil member (absent or
// null) is left as it is; an empty rule list removes every rule of that
// direction.
type Patch struct {
	Name          *string             `json:"name"`
	Description   *string             `json:"description"`
	InboundRules  []sgrules.RuleInput `json:"inboundRules"`
	OutboundRules []sgrules.RuleInput `json:"outboundRules"`
}

// Filter narrows a list of groups; empty members match everything.
type Filter struct {
	AccountID string
	Region    string
}

// Store keeps groups. Implementations enforce with conditional writes:
// unique names per (account, region, VPC) ignoring case, the account still
// linked at creation, versions on every change.
type Store interface {
	// CreateSecurityGroup writes the group, its name claim and the usage
	// item of its account (USES#<account>#securityGroup#<id>) at once.
	// Faults: security_group_name_taken, account_not_found.
	CreateSecurityGroup(ctx context.Context, g Group) error
	GetSecurityGroup(ctx context.Context, orgID, id string) (Group, error)
	ListSecurityGroups(ctx context.Context, orgID string, f Filter, p tenancy.Page) ([]Group, string, error)
	// UpdateSecurityGroup writes name, description, rules, status,
	// lastError, version and updatedAt if the group is still at
	// prev.Version (concurrent_update), moving the name claim
	// (security_group_name_taken).
	UpdateSecurityGroup(ctx context.Context, g Group, prev Group) error
	// SetSecurityGroupAWSID records the AWS group's id if the record still
	// holds prevAWSGroupID (or already awsGroupID), whatever its version.
	SetSecurityGroupAWSID(ctx context.Context, orgID, id, awsGroupID, prevAWSGroupID string) error
	// SetSecurityGroupStatus writes status and lastError if the group is
	// still at g.Version (concurrent_update otherwise); the version stays.
	SetSecurityGroupStatus(ctx context.Context, g Group) error
	// SetSecurityGroupDeleting marks or unmarks a group being deleted, if it
	// is still at g.Version. Nodes cannot start using a marked group.
	SetSecurityGroupDeleting(ctx context.Context, g Group, deleting bool) error
	// DeleteSecurityGroup removes the group, its name claim and its usage
	// item, if it is still at g.Version.
	DeleteSecurityGroup(ctx context.Context, g Group) error
	// SecurityGroupUsers lists the worker nodes using a group.
	SecurityGroupUsers(ctx context.Context, orgID, groupID string) ([]string, error)
}

// EC2API is the part of the EC2 API security groups need.
type EC2API interface {
	DescribeVpcs(ctx context.Context, in *ec2.DescribeVpcsInput, optFns ...func(*ec2.Options)) (*ec2.DescribeVpcsOutput, error)
	DescribeSecurityGroups(ctx context.Context, in *ec2.DescribeSecurityGroupsInput, optFns ...func(*ec2.Options)) (*ec2.DescribeSecurityGroupsOutput, error)
	DescribeSecurityGroupRules(ctx context.Context, in *ec2.DescribeSecurityGroupRulesInput, optFns ...func(*ec2.Options)) (*ec2.DescribeSecurityGroupRulesOutput, error)
	CreateSecurityGroup(ctx context.Context, in *ec2.CreateSecurityGroupInput, optFns ...func(*ec2.Options)) (*ec2.CreateSecurityGroupOutput, error)
	DeleteSecurityGroup(ctx context.Context, in *ec2.DeleteSecurityGroupInput, optFns ...func(*ec2.Options)) (*ec2.DeleteSecurityGroupOutput, error)
	AuthorizeSecurityGroupIngress(ctx context.Context, in *ec2.AuthorizeSecurityGroupIngressInput, optFns ...func(*ec2.Options)) (*ec2.AuthorizeSecurityGroupIngressOutput, error)
	AuthorizeSecurityGroupEgress(ctx context.Context, in *ec2.AuthorizeSecurityGroupEgressInput, optFns ...func(*ec2.Options)) (*ec2.AuthorizeSecurityGroupEgressOutput, error)
	RevokeSecurityGroupIngress(ctx context.Context, in *ec2.RevokeSecurityGroupIngressInput, optFns ...func(*ec2.Options)) (*ec2.RevokeSecurityGroupIngressOutput, error)
	RevokeSecurityGroupEgress(ctx context.Context, in *ec2.RevokeSecurityGroupEgressInput, optFns ...func(*ec2.Options)) (*ec2.RevokeSecurityGroupEgressOutput, error)
	ModifySecurityGroupRules(ctx context.Context, in *ec2.ModifySecurityGroupRulesInput, optFns ...func(*ec2.Options)) (*ec2.ModifySecurityGroupRulesOutput, error)
}

var _ EC2API = (*ec2.Client)(nil)

// Accounts resolves a link of the organisation and gives an EC2 client
// acting as it in a region.
type Accounts interface {
	// Link fails with fault NotFound account_not_found for an unknown link.
	Link(ctx context.Context, orgID, accountID string) (links.Link, error)
	// EC2 may return a *fault.Error (e.g. credentials AWS refuses), which
	// passes through.
	EC2(ctx context.Context, link links.Link, region string) (EC2API, error)
}

// Service holds the security group use-cases.
type Service struct {
	store    Store
	accounts Accounts
	log      *slog.Logger
	now      func() time.Time
}

// NewService returns the use-cases. log and now may be nil.
func NewService(store Store, accounts Accounts, log *slog.Logger, now func() time.Time) *Service {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if now == nil {
		now = time.Now
	}
	return &Service{store: store, accounts: accounts, log: log, now: func() time.Time { return now().UTC() }}
}
