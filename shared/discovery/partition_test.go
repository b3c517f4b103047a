package discovery

import (
	"context"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ssm"

	"github.com/dflow-sh/cloud-accounts/shared/awsperms"
	"github.com/dflow-sh/cloud-accounts/shared/partition"
)

// GovCloud and China links list only their partition's regions, whatever
// DescribeRegions answers, and ask it in their own default region.
func TestRegionsPerPartition(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	everything := &regionsAnswer{status: map[string]string{}}
	for _, p := range partition.All() {
		for _, r := range p.Regions {
			everything.status[r.Code] = OptInNotRequired
		}
	}
	for _, tt := range []struct {
		id, home string
		want     []string
	}{
		{partition.GovCloud, "us-gov-west-1", []string{"us-gov-west-1", "us-gov-east-1"}},
		{partition.China, "cn-north-1", []string{"cn-north-1", "cn-northwest-1"}},
	} {
		t.Run(tt.id, func(t *testing.T) {
			f := &fakeEC2{describeRegions: everything.describe}
			c := &fakeClients{ec2: map[string]EC2API{tt.home: f}}
			l, err := NewService(nil).Regions(ctx, Target{LinkID: "lnk", Partition: mustPartition(t, tt.id)}, c, false)
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, r := range l.Items {
				got = append(got, r.Name)
			}
			if strings.Join(got, ",") != strings.Join(tt.want, ",") {
				t.Errorf("regions %v, want %v", got, tt.want)
			}
		})
	}
	t.Run("a default region outside the partition is a caller bug", func(t *testing.T) {
		tg := Target{LinkID: "lnk", Partition: mustPartition(t, partition.China), DefaultRegion: "us-east-1"}
		if _, err := NewService(nil).Regions(ctx, tg, &fakeClients{}, false); err == nil {
			t.Fatal("accepted")
		}
	})
}

// The SDK's clients for every region of every partition talk to the
// endpoint the partition table names: a GovCloud or China link's calls
// stay in its partition.
func TestEndpointsPerPartition(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	ec2Resolver := ec2.NewDefaultEndpointResolverV2()
	ssmResolver := ssm.NewDefaultEndpointResolverV2()
	for _, p := range partition.All() {
		for _, r := range p.Regions {
			e, err := ec2Resolver.ResolveEndpoint(ctx, ec2.EndpointParameters{Region: aws.String(r.Code)})
			if err != nil {
				t.Fatal(err)
			}
			if got, want := e.URI.String(), p.Endpoint("ec2", r.Code); got != want {
				t.Errorf("ec2 %s: SDK %s, table %s", r.Code, got, want)
			}
			s, err := ssmResolver.ResolveEndpoint(ctx, ssm.EndpointParameters{Region: aws.String(r.Code)})
			if err != nil {
				t.Fatal(err)
			}
			if got, want := s.URI.String(), p.Endpoint("ssm", r.Code); got != want {
				t.Errorf("ssm %s: SDK %s, table %s", r.Code, got, want)
			}
		}
	}
}

// The policy of the missing actions names the link's partition in its ARNs.
func TestPolicyARNsPerPartition(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	for _, id := range []string{partition.Standard, partition.GovCloud, partition.China} {
		t.Run(id, func(t *testing.T) {
			p := mustPartition(t, id)
			f := allowAllBut(map[string]string{"CreateSecurityGroup": "UnauthorizedOperation"})
			c := &fakeClients{ec2: map[string]EC2API{"*": f}}
			rep, err := NewService(nil).PermissionsCheck(ctx, Target{LinkID: "lnk", Partition: p}, c, nil)
			if err != nil {
				t.Fatal(err)
			}
			if rep.Policy == nil || len(rep.Missing) != 1 || rep.Missing[0] != "ec2:CreateSecurityGroup" {
				t.Fatalf("missing %v policy %v", rep.Missing, rep.Policy)
			}
			for _, st := range rep.Policy.Statement {
				for _, res := range st.Resources() {
					if !strings.HasPrefix(res, "arn:"+id+":ec2:") {
						t.Errorf("resource %s not in %s", res, id)
					}
				}
			}
			if want := awsperms.PolicyFor(p, []awsperms.Action{mustAction(t, "ec2:CreateSecurityGroup")}); !jsonEqual(*rep.Policy, want) {
				t.Errorf("policy %s", toJSON(rep.Policy))
			}
			// Checks ran in the partition's default region.
			if rep.Items[0].Region != p.DefaultRegion {
				t.Errorf("checked in %s", rep.Items[0].Region)
			}
		})
	}
}

func mustAction(t testing.TB, name string) awsperms.Action {
	t.Helper()
	a, ok := awsperms.Lookup(name)
	if !ok {
		t.Fatalf("no action %s", name)
	}
	return a
}
