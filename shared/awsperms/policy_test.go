package awsperms

import (
	"encoding/json"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/dflow-sh/cloud-accounts/shared/partition"
)

func partitions(t *testing.T) []partition.Partition {
	t.Helper()
	all := partition.All()
	if len(all) != 3 {
		t.Fatalf("partition.All() = %d partitions, want 3", len(all))
	}
	return all
}

func TestNeededActions(t *testing.T) {
	name := regexp.MustCompile(`^(ec2|ssm|iam):[A-Z][A-Za-z]+$`)
	features := []string{FeatureDiscovery, FeatureProvisioning, FeatureSecurityGroups, FeatureKeyPairs, FeatureRotation}
	seen := map[string]bool{}
	for _, a := range Needed {
		t.Run(a.Name, func(t *testing.T) {
			if !name.MatchString(a.Name) {
				t.Errorf("malformed action name %q", a.Name)
			}
			if seen[a.Name] {
				t.Errorf("%s listed twice", a.Name)
			}
			seen[a.Name] = true
			if !slices.Contains(features, a.Feature) {
				t.Errorf("unknown feature %q", a.Feature)
			}
			if a.Purpose == "" || a.Resource == "" || len(a.Grants) == 0 {
				t.Errorf("Purpose, Resource and Grants must be set: %+v", a)
			}
			if a.DryRun != strings.HasPrefix(a.Name, "ec2:") {
				t.Errorf("DryRun = %v; every EC2 action dFlow calls takes DryRun, no other does", a.DryRun)
			}
			if (a.Feature == FeatureRotation) != strings.HasPrefix(a.Name, "iam:") {
				t.Errorf("IAM actions, and only they, belong to %s", FeatureRotation)
			}
			if !slices.Contains(a.Grants[0].Resources, a.Resource) {
				t.Errorf("Resource %q is not among its first grant's resources %v", a.Resource, a.Grants[0].Resources)
			}
			for _, g := range a.Grants {
				if g.Sid == "" || len(g.Resources) == 0 {
					t.Errorf("grant without Sid or resources: %+v", g)
				}
			}
		})
	}
	// A grant shared by Sid must be the same grant everywhere.
	bySid := map[string]Grant{}
	for _, a := range Needed {
		for _, g := range a.Grants {
			if prev, ok := bySid[g.Sid]; ok && grantKey(prev.Resources, prev.Condition) != grantKey(g.Resources, g.Condition) {
				t.Errorf("Sid %s names two different grants", g.Sid)
			}
			bySid[g.Sid] = g
		}
	}
	if _, ok := Lookup("sts:GetCallerIdentity"); ok {
		t.Error("sts:GetCallerIdentity needs no permission and must stay out of Needed")
	}
	if a, ok := Lookup("ec2:RunInstances"); !ok || a.Feature != FeatureProvisioning {
		t.Errorf("Lookup(ec2:RunInstances) = %+v, %v", a, ok)
	}
	for _, want := range []string{
		"ec2:DescribeRegions", "ec2:DescribeInstanceTypeOfferings", "ec2:RunInstances", "ec2:TerminateInstances",
		"ec2:CreateTags", "ec2:ModifySecurityGroupRules", "ec2:ImportKeyPair", "ec2:DeleteKeyPair",
		"ssm:GetParametersByPath", "iam:CreateAccessKey", "iam:GetAccessKeyLastUsed",
	} {
		if !seen[want] {
			t.Errorf("Needed lacks %s", want)
		}
	}
}

// walkStrings calls f on every string in a decoded JSON value.
func walkStrings(v any, f func(string)) {
	switch v := v.(type) {
	case string:
		f(v)
	case []any:
		for _, e := range v {
			walkStrings(e, f)
		}
	case map[string]any:
		for _, e := range v {
			walkStrings(e, f)
		}
	}
}

func decode(t *testing.T, v any) map[string]any {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatalf("marshal: %v", err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatalf("unmarshal: %v", err)
	}
	return m
}

func TestPermissionsPolicy(t *testing.T) {
	arnPartition := regexp.MustCompile(`arn:([^:]*):`)
	for _, p := range partitions(t) {
		for _, keyUser := range []bool{false, true} {
			name := p.ID + "/role"
			if keyUser {
				name = p.ID + "/access-key-user"
			}
			t.Run(name, func(t *testing.T) {
				pol := PermissionsPolicy(p, keyUser)
				if pol.Version != "2012-10-17" || len(pol.Statement) == 0 {
					t.Fatalf("policy %+v", pol)
				}
				doc := decode(t, pol)
				walkStrings(doc, func(s string) {
					for _, m := range arnPartition.FindAllStringSubmatch(s, -1) {
						if m[1] != p.ID {
							t.Errorf("ARN of partition %q in the %s policy: %s", m[1], p.ID, s)
						}
					}
					if strings.Contains(s, PartitionVar) {
						t.Errorf("unfilled %s in %s", PartitionVar, s)
					}
				})
				sids := map[string]bool{}
				var iam bool
				for _, s := range pol.Statement {
					if s.Effect != "Allow" || s.Principal != nil || len(s.Action) == 0 || len(s.Resources()) == 0 {
						t.Errorf("statement %+v", s)
					}
					if !regexp.MustCompile(`^[A-Za-z0-9]+$`).MatchString(s.Sid) || sids[s.Sid] {
						t.Errorf("Sid %q is not unique and alphanumeric", s.Sid)
					}
					sids[s.Sid] = true
					for _, a := range s.Action {
						if strings.Contains(a, "*") {
							t.Errorf("wildcard action %q", a)
						}
						iam = iam || strings.HasPrefix(a, "iam:")
					}
					for _, r := range s.Resources() {
						if r != "*" && !strings.HasPrefix(r, "arn:"+p.ID+":") {
							t.Errorf("resource %q is neither * nor an ARN of %s", r, p.ID)
						}
						if r == "*" && !slices.ContainsFunc(s.Action, func(a string) bool { return strings.HasPrefix(a, "ec2:Describe") }) {
							t.Errorf("statement %s grants %v on *", s.Sid, s.Action)
						}
					}
				}
				if iam != keyUser {
					t.Errorf("IAM statement present = %v, want %v", iam, keyUser)
				}
				var want []string
				for _, a := range Needed {
					if keyUser || a.Feature != FeatureRotation {
						want = append(want, a.Name)
					}
				}
				if got := pol.Actions(); !sameSet(got, want) {
					t.Errorf("policy actions\n got %v\nwant %v", got, want)
				}
				// IAM's limit for a managed policy (inline role policies allow 10,240).
				b, _ := json.Marshal(pol)
				if len(b) > 6144 {
					t.Errorf("policy is %d bytes, over IAM's 6,144 for a managed policy", len(b))
				}
			})
		}
	}
}

func TestPolicyConditions(t *testing.T) {
	p, _ := partition.ByID(partition.Standard)
	pol := PermissionsPolicy(p, true)
	cond := func(action, resourceSuffix string) Condition {
		t.Helper()
		for _, s := range pol.Statement {
			if slices.Contains(s.Action, action) && slices.ContainsFunc(s.Resources(), func(r string) bool { return strings.HasSuffix(r, resourceSuffix) }) {
				return s.Condition
			}
		}
		t.Fatalf("no statement grants %s on *%s", action, resourceSuffix)
		return nil
	}
	managed := []string{"true"}
	tests := []struct {
		action, resource, op, key string
		values                    []string
	}{
		{"ec2:RunInstances", ":instance/*", "StringEquals", "aws:RequestTag/dflow:managed", managed},
		{"ec2:TerminateInstances", ":instance/*", "StringEquals", "aws:ResourceTag/dflow:managed", managed},
		{"ec2:StopInstances", ":instance/*", "StringEquals", "aws:ResourceTag/dflow:managed", managed},
		{"ec2:StartInstances", ":instance/*", "StringEquals", "aws:ResourceTag/dflow:managed", managed},
		{"ec2:RebootInstances", ":instance/*", "StringEquals", "aws:ResourceTag/dflow:managed", managed},
		{"ec2:CreateSecurityGroup", ":security-group/*", "StringEquals", "aws:RequestTag/dflow:managed", managed},
		{"ec2:DeleteSecurityGroup", ":security-group/*", "StringEquals", "aws:ResourceTag/dflow:managed", managed},
		{"ec2:AuthorizeSecurityGroupIngress", ":security-group/*", "StringEquals", "aws:ResourceTag/dflow:managed", managed},
		{"ec2:RevokeSecurityGroupEgress", ":security-group/*", "StringEquals", "aws:ResourceTag/dflow:managed", managed},
		{"ec2:ModifySecurityGroupRules", ":security-group/*", "StringEquals", "aws:ResourceTag/dflow:managed", managed},
		{"ec2:ImportKeyPair", ":key-pair/*", "StringEquals", "aws:RequestTag/dflow:managed", managed},
		{"ec2:DeleteKeyPair", ":key-pair/*", "StringEquals", "aws:ResourceTag/dflow:managed", managed},
		{"ec2:CreateTags", ":*", "StringEquals", "ec2:CreateAction", []string{"RunInstances", "CreateSecurityGroup", "ImportKeyPair", "CreateVolume"}},
	}
	for _, tt := range tests {
		t.Run(tt.action, func(t *testing.T) {
			c := cond(tt.action, tt.resource)
			if got := c[tt.op][tt.key]; !slices.Equal(got, tt.values) {
				t.Errorf("%s on %s: Condition %v, want %s %s %v", tt.action, tt.resource, c, tt.op, tt.key, tt.values)
			}
		})
	}
	// RunInstances must reach every resource type it touches.
	var runOn []string
	for _, s := range pol.Statement {
		if slices.Contains(s.Action, "ec2:RunInstances") {
			runOn = append(runOn, s.Resources()...)
		}
	}
	for _, kind := range []string{"instance", "volume", "network-interface", "security-group", "subnet", "key-pair", "image"} {
		if !slices.ContainsFunc(runOn, func(r string) bool { return strings.HasSuffix(r, ":"+kind+"/*") }) {
			t.Errorf("RunInstances is not granted on %s", kind)
		}
	}
	// Self-rotation reaches the caller only.
	for _, s := range pol.Statement {
		if slices.Contains(s.Action, "iam:CreateAccessKey") {
			want := []string{"arn:aws:iam::*:user/${aws:username}", "arn:aws:iam::*:user/*/${aws:username}"}
			if !slices.Equal(s.Resources(), want) {
				t.Errorf("rotation resources %v, want %v", s.Resources(), want)
			}
		}
	}
}

func TestPolicyForRoundTrip(t *testing.T) {
	p, _ := partition.ByID(partition.GovCloud)
	pick := func(names ...string) []Action {
		t.Helper()
		var out []Action
		for _, n := range names {
			a, ok := Lookup(n)
			if !ok {
				t.Fatalf("Lookup(%s) failed", n)
			}
			out = append(out, a)
		}
		return out
	}
	tests := []struct {
		name    string
		actions []Action
		sids    []string
	}{
		{"none", nil, nil},
		{"one describe", pick("ec2:DescribeVpcs"), []string{"Discover"}},
		{"run instances", pick("ec2:RunInstances"), []string{"LaunchManagedInstances", "LaunchInstancesWith"}},
		{"mixed", pick("ec2:DeleteKeyPair", "ec2:DescribeImages", "ec2:DescribeVpcs", "iam:GetUser"), []string{"DeleteManagedKeyPairs", "Discover", "RotateOwnAccessKeys"}},
		{"duplicates", pick("ec2:DescribeVpcs", "ec2:DescribeVpcs"), []string{"Discover"}},
		{"all", Needed, nil},
		{"ad hoc", []Action{{Name: "ec2:DescribeHosts"}, {Name: "s3:GetObject", Resource: "arn:${Partition}:s3:::bucket/*"}}, []string{"", ""}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pol := PolicyFor(p, tt.actions)
			var want []string
			for _, a := range tt.actions {
				want = append(want, a.Name)
			}
			if got := pol.Actions(); !sameSet(got, want) {
				t.Errorf("actions %v, want %v", got, want)
			}
			if tt.sids != nil {
				var sids []string
				for _, s := range pol.Statement {
					sids = append(sids, s.Sid)
				}
				if !slices.Equal(sids, tt.sids) {
					t.Errorf("Sids %v, want %v", sids, tt.sids)
				}
			}
			// Through JSON and back, as the permission check will send it.
			b, err := json.Marshal(pol)
			if err != nil {
				t.Fatal(err)
			}
			var back struct {
				Statement []struct{ Action []string }
			}
			if err := json.Unmarshal(b, &back); err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, s := range back.Statement {
				got = append(got, s.Action...)
			}
			if !sameSet(got, want) {
				t.Errorf("after JSON: actions %v, want %v", got, want)
			}
		})
	}
	adHoc := PolicyFor(p, []Action{{Name: "s3:GetObject", Resource: "arn:${Partition}:s3:::bucket/*"}, {Name: "ec2:DescribeHosts"}})
	if r := adHoc.Statement[0].Resource; r != "arn:aws-us-gov:s3:::bucket/*" {
		t.Errorf("ad hoc resource %v", r)
	}
	if r := adHoc.Statement[1].Resource; r != "*" {
		t.Errorf("ad hoc default resource %v, want *", r)
	}
}

func TestPolicyForNumbersCollidingSids(t *testing.T) {
	p, _ := partition.ByID(partition.Standard)
	pol := PolicyFor(p, []Action{
		{Name: "ec2:DescribeVpcs", Grants: []Grant{{Sid: "X", Resources: []string{"*"}}}},
		{Name: "ec2:DeleteVpc", Grants: []Grant{{Sid: "X", Resources: []string{"arn:${Partition}:ec2:*:*:vpc/*"}}}},
	})
	if len(pol.Statement) != 2 || pol.Statement[0].Sid != "X" || pol.Statement[1].Sid != "X2" {
		t.Errorf("statements %+v", pol.Statement)
	}
}

func TestTrustPolicy(t *testing.T) {
	for _, p := range partitions(t) {
		t.Run(p.ID, func(t *testing.T) {
			principal := p.ARN("iam", "", "123456789012", "role/dflow-control-plane")
			pol := TrustPolicy(p, principal, "org_abc123")
			if len(pol.Statement) != 1 {
				t.Fatalf("statements %+v", pol.Statement)
			}
			s := pol.Statement[0]
			if s.Effect != "Allow" || !slices.Equal(s.Action, []string{"sts:AssumeRole"}) || s.Principal["AWS"] != principal {
				t.Errorf("statement %+v", s)
			}
			if got := s.Condition["StringEquals"]["sts:ExternalId"]; !slices.Equal(got, []string{"org_abc123"}) {
				t.Errorf("external ID condition %v", s.Condition)
			}
			b, _ := json.Marshal(pol)
			if !strings.Contains(string(b), `"Condition":{"StringEquals":{"sts:ExternalId":["org_abc123"]}}`) {
				t.Errorf("JSON %s lacks the external-ID condition", b)
			}
			if strings.Contains(string(b), "Resource") {
				t.Errorf("a trust policy has no Resource: %s", b)
			}
		})
	}
}

func sameSet(a, b []string) bool {
	a, b = slices.Clone(a), slices.Clone(b)
	slices.Sort(a)
	slices.Sort(b)
	return slices.Equal(slices.Compact(a), slices.Compact(b))
}
