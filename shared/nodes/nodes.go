// Package nodes is worker nodes: EC2 instances dFlow launches in a linked
// account for an organisation, and follows until they are terminated.
//
// The node record is the source of truth and is written before anything is
// launched; the instance carries the node's id as the tag dflow:node, so an
// instance whose launch outcome was lost (a timeout, a crash, a failed
// record update) is found again by its tag and attached to its record,
// never left untracked. The same tag guards the launch itself: RunInstances
// is only called after DescribeInstances found no instance of the node,
// because EC2's ClientToken is honoured for a limited time only (and not at
// all by moto).
//
// Every node that is not final (terminated or failed) keeps, in the same
// transactions as its record: a usage item under its linked account (so
// the account cannot be unlinked), one per security group it uses (so the
// group cannot be deleted), a slot in its creator's active-node count (the
// role's createLimit) and an entry in the sharded index the reconciler
// reads.
package nodes

import (
	"context"
	"log/slog"
	"time"

	"github.com/dflow-sh/cloud-accounts/shared/discovery"
	"github.com/dflow-sh/cloud-accounts/shared/fault"
	"github.com/dflow-sh/cloud-accounts/shared/links"
	"github.com/dflow-sh/cloud-accounts/shared/tenancy"
)

// Statuses of a node. Terminated and Failed are final.
const (
	Provisioning = "provisioning"
	Running      = "running"
	Stopping     = "stopping"
	Stopped      = "stopped"
	Terminating  = "terminating"
	Terminated   = "terminated"
	Failed       = "failed"
)

// Statuses lists every status, for filters.
var Statuses = []string{Provisioning, Running, Stopping, Stopped, Terminating, Terminated, Failed}

// Final reports whether a status never changes again by itself.
func Final(status string) bool { return status == Terminated || status == Failed }

// Actions on a node.
const (
	ActionStart  = "start"
	ActionStop   = "stop"
	ActionReboot = "reboot"
)

// Tags dFlow puts on a node's instance and root volume, besides the
// awsperms ones (dflow:managed, dflow:org, dflow:node) and Name.
const (
	EnvironmentTagKey = "dflow:environment"
	RequestTagKey     = "dflow:request"
)

// UsageKind is the kind of the usage items a node writes under its account.
const UsageKind = "workerNode"

// SSHPort is the port of every node's connection.
const SSHPort = 22

// Machine codes of the faults this package returns.
const (
	CodeNotFound                  = "node_not_found"
	CodeExists                    = "node_exists"
	CodeAccountNotFound           = "account_not_found"
	CodeEnvironmentNotAllowed     = "environment_not_allowed"
	CodeCreateLimitReached        = "create_limit_reached"
	CodeInstanceTypeNotOffered    = "instance_type_not_offered"
	CodeImageNotFound             = "image_not_found"
	CodeImageArchitectureMismatch = "image_architecture_mismatch"
	CodeSubnetNotFound            = "subnet_not_found"
	CodeSubnetMismatch            = "subnet_mismatch"
	CodeSecurityGroupNotFound     = "security_group_not_found"
	CodeSecurityGroupMismatch     = "security_group_mismatch"
	CodeInvalidState              = "invalid_state"
	CodeCapacity                  = "insufficient_capacity"
	CodeInstanceLimit             = "instance_limit_exceeded"
	// Codes of lastError only.
	CodeLaunchFailed       = "launch_failed"
	CodeLaunchNotConfirmed = "launch_not_confirmed"
	CodeRefreshFailed      = "refresh_failed"
)

// Errors the store returns; the service adds details.
var (
	ErrNotFound    = fault.NotFoundf(CodeNotFound, "no such worker node")
	ErrExists      = fault.Conflictf(CodeExists, "a worker node with this id already exists")
	ErrCreateLimit = fault.Forbiddenf(CodeCreateLimitReached, "your role's limit of worker nodes is reached; terminate one first")
	ErrConcurrent  = fault.Conflictf("concurrent_update", "the node changed while this request ran; read it again and retry")
)

// Node is a worker node, as readers see it.
type Node struct {
	OrgID        string `json:"-"`
	ID           string `json:"id"`
	Name         string `json:"name"`
	Environment  string `json:"environment"`
	AccountID    string `json:"accountId"`
	Region       string `json:"region"`
	InstanceID   string `json:"instanceId"`
	InstanceType string `json:"instanceType"`
	ImageID      string `json:"imageId"`
	// OS is ubuntu, debian or amazon-linux when known (it picks the SSH
	// user), "" for other images.
	OS               string     `json:"os"`
	VPCID            string     `json:"vpcId"`
	SubnetID         string     `json:"subnetId"`
	SecurityGroupIDs []string   `json:"securityGroupIds"`
	DiskGiB          int        `json:"diskGiB"`
	SSHKeyID         string     `json:"sshKeyId"`
	Status           string     `json:"status"`
	PublicIP         string     `json:"publicIp"`
	PrivateIP        string     `json:"privateIp"`
	Connection       Connection `json:"connection"`
	LastError        *NodeError `json:"lastError"`
	// RequestID is the request that created the node (tag dflow:request).
	RequestID string    `json:"requestId"`
	Version   int64     `json:"version"`
	CreatedAt time.Time `json:"createdAt"`
	CreatedBy string    `json:"createdBy"`
	UpdatedAt time.Time `json:"updatedAt"`
}

// Active reports whether the node holds its account, groups and a slot of
// its creator's limit.
func (n Node) Active() bool { return !Final(n.Status) }

// Connection is how to reach a node over SSH.
type Connection struct {
	Host     string `json:"host"`
	Port     int    `json:"port"`
	Username string `json:"username"`
	SSHKeyID string `json:"sshKeyId"`
}

// NodeError is the last thing that went wrong with a node.
type NodeError struct {
	Code    string    `json:"code"`
	Message string    `json:"message"`
	At      time.Time `json:"at"`
}

// Filter narrows a list of nodes; zero values match everything.
type Filter struct {
	Environment string
	AccountID   string
	Status      string
	// CreatedBy keeps the nodes of one user (read scope "own").
	CreatedBy string
}

// Store keeps node records. Implementations keep, in the same transaction
// as each write of a record: the account usage and security group usage
// items, the creator's active count and the active index entry, all present
// exactly while the node is Active.
type Store interface {
	// CreateNode writes a new node. It fails with ErrExists when the id is
	// taken, ErrCreateLimit when createLimit > 0 and the creator already
	// has that many active nodes, and account_not_found when the account is
	// no longer linked.
	CreateNode(ctx context.Context, n Node, createLimit int) error
	GetNode(ctx context.Context, orgID, id string) (Node, error)
	ListNodes(ctx context.Context, orgID string, f Filter, p tenancy.Page) ([]Node, string, error)
	// UpdateNode replaces a node whose stored version is prev.Version
	// (ErrConcurrent otherwise).
	UpdateNode(ctx context.Context, n Node, prev Node) error
	// ActiveNodes lists every active node of every organisation, from an
	// index (never a scan).
	ActiveNodes(ctx context.Context) ([]Node, error)
}

// Accounts gives the linked accounts and EC2 clients acting as them.
type Accounts interface {
	// Link returns the organisation's link (404 account_not_found).
	Link(ctx context.Context, orgID, accountID string) (links.Link, error)
	EC2(ctx context.Context, link links.Link, region string) (EC2API, error)
}

// Keys imports an organisation's SSH key into a linked account and region
// (shared/keypairs), returning the EC2 key pair name. A missing key is 404
// ssh_key_not_found.
type Keys interface {
	EnsureImported(ctx context.Context, orgID, keyID string, link links.Link, region string) (string, error)
}

// GroupRef is a dFlow security group (sg_…) as a launch needs it.
type GroupRef struct {
	ID         string
	AccountID  string
	Region     string
	VPCID      string
	AWSGroupID string
}

// Groups resolves dFlow security group ids; unknown ids are left out of
// the answer (or refused with a 404/422 fault).
type Groups interface {
	Resolve(ctx context.Context, orgID string, groupIDs []string) ([]GroupRef, error)
}

// Images lists the current official images of an OS for an architecture in
// a region (discovery.Service.Images, through the link's clients).
type Images interface {
	Images(ctx context.Context, link links.Link, region, os, arch string) ([]discovery.Image, error)
}

// ImagesFunc adapts a function to Images.
type ImagesFunc func(ctx context.Context, link links.Link, region, os, arch string) ([]discovery.Image, error)

// Images calls f.
func (f ImagesFunc) Images(ctx context.Context, link links.Link, region, os, arch string) ([]discovery.Image, error) {
	return f(ctx, link, region, os, arch)
}

// Defaults of Deps.
const (
	// DefaultGrace is how long a node may stay in provisioning with no
	// instance found before the reconciler marks it failed: longer than
	// any launch, and than DescribeInstances' eventual consistency.
	DefaultGrace       = 10 * time.Minute
	DefaultConcurrency = 8
)

// Deps are what the service is built from.
type Deps struct {
	Store    Store
	Accounts Accounts
	Keys     Keys
	Groups   Groups
	Images   Images
	Logger   *slog.Logger
	Now      func() time.Time
	// Grace: see DefaultGrace.
	Grace time.Duration
	// Concurrency bounds the nodes a Reconcile works on at once.
	Concurrency int
}

// Service holds the worker node use-cases.
type Service struct {
	store       Store
	accounts    Accounts
	keys        Keys
	groups      Groups
	images      Images
	log         *slog.Logger
	now         func() time.Time
	grace       time.Duration
	concurrency int
}

// NewService builds the service.
func NewService(d Deps) *Service {
	s := &Service{
		store: d.Store, accounts: d.Accounts, keys: d.Keys, groups: d.Groups, images: d.Images,
		log: d.Logger, now: d.Now, grace: d.Grace, concurrency: d.Concurrency,
	}
	if s.log == nil {
		s.log = slog.Default()
	}
	if s.now == nil {
		s.now = time.Now
	}
	now := s.now
	s.now = func() time.Time { return now().UTC() }
	if s.grace <= 0 {
		s.grace = DefaultGrace
	}
	if s.concurrency < 1 {
		s.concurrency = DefaultConcurrency
	}
	return s
}

// sshUsers is the login user of each OS's official images.
var sshUsers = map[string]string{
	discovery.OSUbuntu:      "ubuntu",
	discovery.OSDebian:      "admin",
	discovery.OSAmazonLinux: "ec2-user",
}

// connection derives how to reach n; images of unknown OS get ec2-user,
// the user of most AMIs built on Amazon Linux and RHEL.
func connection(n Node) Connection {
	user, ok := sshUsers[n.OS]
	if !ok {
		user = "ec2-user"
	}
	host := n.PublicIP
	if host == "" {
		host = n.PrivateIP
	}
	return Connection{Host: host, Port: SSHPort, Username: user, SSHKeyID: n.SSHKeyID}
}

// visible reports whether caller may see n: roles with read scope "own"
// see only the nodes their holder created.
func visible(caller tenancy.Caller, n Node) bool {
	return scopeOwn(caller) == "" || n.CreatedBy == caller.UserID
}

func scopeOwn(caller tenancy.Caller) string {
	if caller.Role.Permissions[tenancy.WorkerNodes].ReadScope == tenancy.ScopeOwn {
		return caller.UserID
	}
	return ""
}
