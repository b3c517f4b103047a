package nodes

import (
	"context"
	"sort"
	"sync"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"

	"github.com/dflow-sh/cloud-accounts/shared/awsperms"
	"github.com/dflow-sh/cloud-accounts/shared/fault"
	"github.com/dflow-sh/cloud-accounts/shared/ids"
)

// Summary is what a Reconcile did.
type Summary struct {
	// Checked counts the active nodes looked at.
	Checked int `json:"checked"`
	// Updated counts the nodes whose record changed (attached and failed
	// included).
	Updated int `json:"updated"`
	// Attached counts instances found by their node tag and recorded.
	Attached int `json:"attached"`
	// Failed counts nodes marked failed: no instance after the grace period.
	Failed int `json:"failed"`
	// Reaped counts instances terminated because their node was deleted
	// while their launch was in flight.
	Reaped int `json:"reaped"`
	// Skipped counts nodes left for the next run (the deadline came).
	Skipped   int          `json:"skipped"`
	Untracked []Untracked  `json:"untracked"`
	Errors    []SweepError `json:"errors"`
}

// Untracked is a running instance tagged as dFlow's for an organisation
// that no node record accounts for. It is reported, never attached or
// terminated: a record is only ever made by Create, before its launch, so
// such an instance was not launched by this service for that node (a copy,
// a hand-made tag, another installation), and guessing its name,
// environment and creator — or destroying it — is not ours to do.
type Untracked struct {
	OrgID      string `json:"orgId"`
	AccountID  string `json:"accountId"`
	Region     string `json:"region"`
	InstanceID string `json:"instanceId"`
	NodeTag    string `json:"nodeTag"`
	// Reason: no_node_tag; no_record; other_account (the record is of
	// another account or region); duplicate (the node has another
	// instance); final_record (the record says terminated or failed).
	Reason string `json:"reason"`
}

// SweepError is a node (or an account and region) the sweep could not
// check; the node's lastError says the same.
type SweepError struct {
	OrgID     string `json:"orgId"`
	NodeID    string `json:"nodeId,omitempty"`
	AccountID string `json:"accountId"`
	Region    string `json:"region"`
	Code      string `json:"code"`
	Message   string `json:"message"`
}

type scope struct{ org, account, region string }

// Reconcile brings every active node of every organisation in line with
// EC2: it refreshes each one (attaching instances found by their node tag,
// marking terminated what was terminated outside dFlow, failing nodes left
// without an instance past the grace period), then, per linked account and
// region with active nodes, looks for dFlow instances of the organisation
// that no record tracks: a node that failed or was deleted while its launch
// was in flight gets its instance attached, respectively terminated; others
// are reported as Untracked. One node's failure is recorded on it and the
// sweep goes on; at most Deps.Concurrency accounts and regions are worked
// on at once; when ctx ends, the nodes not reached are counted as skipped.
func (s *Service) Reconcile(ctx context.Context) (Summary, error) {
	active, err := s.store.ActiveNodes(ctx)
	if err != nil {
		return Summary{}, err
	}
	groups := map[scope][]Node{}
	for _, n := range active {
		k := scope{n.OrgID, n.AccountID, n.Region}
		groups[k] = append(groups[k], n)
	}
	keys := make([]scope, 0, len(groups))
	for k := range groups {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		a, b := keys[i], keys[j]
		if a.org != b.org {
			return a.org < b.org
		}
		if a.account != b.account {
			return a.account < b.account
		}
		return a.region < b.region
	})

	var mu sync.Mutex
	sum := Summary{Untracked: []Untracked{}, Errors: []SweepError{}}
	add := func(f func(*Summary)) { mu.Lock(); f(&sum); mu.Unlock() }
	sem := make(chan struct{}, s.concurrency)
	var wg sync.WaitGroup
	for _, k := range keys {
		if ctx.Err() != nil {
			add(func(sm *Summary) { sm.Skipped += len(groups[k]) })
			continue
		}
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
			add(func(sm *Summary) { sm.Skipped += len(groups[k]) })
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			s.reconcileScope(ctx, k, groups[k], add)
		}()
	}
	wg.Wait()
	return sum, nil
}

func (s *Service) reconcileScope(ctx context.Context, k scope, nodes []Node, add func(func(*Summary))) {
	fail := func(n *Node, err error) {
		e := nodeError(err, CodeRefreshFailed, s.now())
		se := SweepError{OrgID: k.org, AccountID: k.account, Region: k.region, Code: e.Code, Message: e.Message}
		// On the node, the code says it was the sweep (cleared by the next
		// good refresh); the message keeps the cause's code.
		if e.Code != CodeRefreshFailed {
			e.Message = e.Code + ": " + e.Message
			e.Code = CodeRefreshFailed
		}
		if n != nil {
			se.NodeID = n.ID
			next := *n
			next.LastError = e
			if _, serr := s.save(ctx, next, *n); serr != nil {
				s.log.ErrorContext(ctx, "record sweep error", "node", n.ID, "error", serr.Error())
			}
		}
		s.log.WarnContext(ctx, "reconcile", "org", k.org, "account", k.account, "region", k.region, "node", se.NodeID, "error", err.Error())
		add(func(sm *Summary) { sm.Errors = append(sm.Errors, se) })
	}
	link, err := s.accounts.Link(ctx, k.org, k.account)
	var api EC2API
	if err == nil {
		api, err = s.accounts.EC2(ctx, link, k.region)
	}
	if err != nil {
		add(func(sm *Summary) { sm.Checked += len(nodes) })
		for i := range nodes {
			fail(&nodes[i], err)
		}
		return
	}
	tracked := map[string]bool{} // instance ids of the scope's records
	for i := range nodes {
		n := nodes[i]
		if ctx.Err() != nil {
			add(func(sm *Summary) { sm.Skipped++ })
			continue
		}
		add(func(sm *Summary) { sm.Checked++ })
		r, err := s.refreshWith(ctx, api, n)
		if err != nil {
			fail(&n, err)
			if n.InstanceID != "" {
				tracked[n.InstanceID] = true
			}
			continue
		}
		if r.node.InstanceID != "" {
			tracked[r.node.InstanceID] = true
		}
		add(func(sm *Summary) {
			if r.updated {
				sm.Updated++
			}
			if r.attached {
				sm.Attached++
			}
			if r.failed {
				sm.Failed++
			}
		})
	}
	if ctx.Err() != nil {
		return
	}
	live, err := instances(ctx, api, k.region, &ec2.DescribeInstancesInput{Filters: []types.Filter{
		filter("tag:"+awsperms.ManagedTagKey, awsperms.ManagedTagValue),
		filter("tag:"+awsperms.OrgTagKey, k.org),
		filter("instance-state-name", "pending", "running", "stopping", "stopped"),
	}})
	if err != nil {
		fail(nil, classify(err, "ec2:DescribeInstances", k.region))
		return
	}
	for i := range live {
		inst := live[i]
		id := aws.ToString(inst.InstanceId)
		if tracked[id] {
			continue
		}
		s.adopt(ctx, k, api, &inst, add, fail)
	}
}

// adopt settles an instance of the organisation no active record in its
// scope tracks.
func (s *Service) adopt(ctx context.Context, k scope, api EC2API, inst *types.Instance, add func(func(*Summary)), fail func(*Node, error)) {
	id := aws.ToString(inst.InstanceId)
	nodeID := tagValue(inst.Tags, awsperms.NodeTagKey)
	report := func(reason string) {
		add(func(sm *Summary) {
			sm.Untracked = append(sm.Untracked, Untracked{OrgID: k.org, AccountID: k.account, Region: k.region, InstanceID: id, NodeTag: nodeID, Reason: reason})
		})
	}
	if nodeID == "" {
		// dflow:managed instances without a node tag: not a node.
		report("no_node_tag")
		return
	}
	if !ids.Valid(ids.Node, nodeID) {
		report("no_record")
		return
	}
	n, err := s.store.GetNode(ctx, k.org, nodeID)
	switch {
	case fault.Is(err, CodeNotFound):
		report("no_record")
		return
	case err != nil:
		fail(nil, err)
		return
	case n.AccountID != k.account || n.Region != k.region:
		report("other_account")
		return
	}
	switch {
	case n.InstanceID == "" && n.Status == Terminated:
		// Deleted while its launch was in flight: the delete wins.
		if _, err := api.TerminateInstances(ctx, &ec2.TerminateInstancesInput{InstanceIds: []string{id}}); err != nil {
			fail(&n, classify(err, "ec2:TerminateInstances", k.region))
			return
		}
		add(func(sm *Summary) { sm.Reaped++ })
	case n.InstanceID == "" && n.Status == Failed:
		// Failed while its launch was in flight: the instance is the node.
		next := n
		observe(&next, inst)
		next.LastError = nil
		if _, err := s.save(ctx, next, n); err != nil {
			fail(&n, err)
			return
		}
		add(func(sm *Summary) { sm.Attached++; sm.Updated++ })
	case n.InstanceID != id:
		report("duplicate")
	case !n.Active():
		report("final_record")
	default:
		// Active, and attached by its own refresh in this run or the next.
	}
}
