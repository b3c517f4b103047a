package main

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/aws/smithy-go"

	"github.com/dflow-sh/cloud-accounts/shared/apitest"
)

func asJSON(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

func apitestSeed(t *testing.T, f *fixture) (string, string) {
	t.Helper()
	return apitest.SeedOrg(t, f.env.Platform, stranger, nil, "")
}

func itemsOf(t *testing.T, r *apitest.Result) []map[string]any {
	t.Helper()
	var l struct {
		Items []map[string]any
	}
	r.Decode(&l)
	return l.Items
}

func TestRoutesThroughALink(t *testing.T) {
	f := newFixture(t)
	acc := f.linkRole("111122223333", "eu-west-1")

	regions := itemsOf(t, f.get(viewer, "GET "+base+"/regions", acc).Expect(http.StatusOK))
	if len(regions) < 20 {
		t.Fatalf("regions = %d", len(regions))
	}
	byName := map[string]map[string]any{}
	for _, r := range regions {
		byName[r["name"].(string)] = r
		if strings.HasPrefix(r["name"].(string), "us-gov") || strings.HasPrefix(r["name"].(string), "cn-") {
			t.Fatalf("a commercial link lists %v", r["name"])
		}
	}
	if byName["eu-west-1"]["enabled"] != true {
		t.Fatalf("eu-west-1 = %v", byName["eu-west-1"])
	}

	zones := itemsOf(t, f.get(viewer, "GET "+base+"/regions/{region}/availability-zones", acc, "region", "eu-west-1").Expect(http.StatusOK))
	if len(zones) == 0 || !strings.HasPrefix(zones[0]["name"].(string), "eu-west-1") || zones[0]["zoneId"] == "" {
		t.Fatalf("zones = %v", zones)
	}

	vpcs := itemsOf(t, f.get(viewer, "GET "+base+"/regions/{region}/vpcs", acc, "region", "eu-west-1").Expect(http.StatusOK))
	var def string
	for _, v := range vpcs {
		if v["isDefault"] == true {
			def = v["id"].(string)
		}
	}
	if def == "" {
		t.Fatalf("no default VPC in %v", vpcs)
	}
	subnets := f.api.As(viewer).Route("GET "+base+"/regions/{region}/subnets", "orgId", f.orgID, "accountId", acc, "region", "eu-west-1").Query("vpcId", def).Do().Expect(http.StatusOK)
	for _, s := range itemsOf(t, subnets) {
		if s["vpcId"] != def {
			t.Fatalf("subnet of another VPC: %v", s)
		}
	}
	sgs := itemsOf(t, f.api.As(viewer).Route("GET "+base+"/regions/{region}/security-groups", "orgId", f.orgID, "accountId", acc, "region", "eu-west-1").Query("vpcId", def).Do().Expect(http.StatusOK))
	if len(sgs) == 0 || sgs[0]["name"] != "default" {
		t.Fatalf("security groups = %v", sgs)
	}

	// A key pair the customer made in their account shows through the link.
	customer := ec2In(t, "111122223333", "eu-west-1")
	if _, err := customer.CreateKeyPair(context.Background(), &ec2.CreateKeyPairInput{KeyName: aws.String("ops")}); err != nil {
		t.Fatal(err)
	}
	keys := itemsOf(t, f.get(viewer, "GET "+base+"/regions/{region}/key-pairs", acc, "region", "eu-west-1").Expect(http.StatusOK))
	if len(keys) != 1 || keys[0]["name"] != "ops" || keys[0]["fingerprint"] == "" {
		t.Fatalf("key pairs = %v", keys)
	}

	types := itemsOf(t, f.api.As(viewer).Route("GET "+base+"/regions/{region}/instance-types", "orgId", f.orgID, "accountId", acc, "region", "eu-west-1").
		Query("arch", "arm64").Query("minVcpus", "4").Do().Expect(http.StatusOK))
	if len(types) == 0 {
		t.Fatal("no arm64 types with 4 vCPUs")
	}
	for _, it := range types {
		if it["vcpus"].(float64) < 4 || !strings.Contains(asJSON(it["architectures"]), "arm64") {
			t.Fatalf("filtered type %v", it)
		}
	}

	inv := itemsOf(t, f.api.As(viewer).Route("GET "+base+"/inventory", "orgId", f.orgID, "accountId", acc).Query("regions", "eu-west-1,us-east-1").Do().Expect(http.StatusOK))
	if len(inv) != 2 {
		t.Fatalf("inventory = %v", inv)
	}
	for _, r := range inv {
		if r["vpcs"].(float64) < 1 || r["securityGroups"].(float64) < 1 {
			t.Fatalf("inventory region = %v", r)
		}
	}
}

// Two linked accounts each see only their own resources.
func TestAccountsAreSeparate(t *testing.T) {
	f := newFixture(t)
	a := f.linkRole("111122223333", "us-west-2")
	b := f.linkRole("444455556666", "us-west-2")
	out, err := ec2In(t, "444455556666", "us-west-2").CreateVpc(context.Background(), &ec2.CreateVpcInput{
		CidrBlock:         aws.String("10.42.0.0/16"),
		TagSpecifications: []types.TagSpecification{{ResourceType: types.ResourceTypeVpc, Tags: []types.Tag{{Key: aws.String("Name"), Value: aws.String("only-b")}}}},
	})
	if err != nil {
		t.Fatal(err)
	}
	id := aws.ToString(out.Vpc.VpcId)
	if strings.Contains(string(f.get(viewer, "GET "+base+"/regions/{region}/vpcs", a, "region", "us-west-2").Expect(http.StatusOK).Body), id) {
		t.Fatal("account A sees account B's VPC")
	}
	seen := false
	for _, v := range itemsOf(t, f.get(viewer, "GET "+base+"/regions/{region}/vpcs", b, "region", "us-west-2").Expect(http.StatusOK)) {
		if v["id"] == id && v["name"] == "only-b" && v["cidrBlock"] == "10.42.0.0/16" {
			seen = true
		}
	}
	if !seen {
		t.Fatal("account B does not see its VPC")
	}
}

func TestCache(t *testing.T) {
	f := newFixture(t)
	acc := f.linkRole("111122223333", "eu-west-1")
	first := f.get(viewer, "GET "+base+"/regions/{region}/vpcs", acc, "region", "eu-west-1").Expect(http.StatusOK).Map()
	f.faults.Reset()
	second := f.get(viewer, "GET "+base+"/regions/{region}/vpcs", acc, "region", "eu-west-1").Expect(http.StatusOK).Map()
	if first["cachedAt"] != second["cachedAt"] || first["cachedAt"] == nil {
		t.Fatalf("cachedAt %v then %v", first["cachedAt"], second["cachedAt"])
	}
	for _, c := range f.faults.Calls() {
		if strings.HasPrefix(c, "EC2.") || strings.HasPrefix(c, "STS.") {
			t.Fatalf("a cache hit called AWS: %v", f.faults.Calls())
		}
	}
	third := f.api.As(viewer).Route("GET "+base+"/regions/{region}/vpcs", "orgId", f.orgID, "accountId", acc, "region", "eu-west-1").Query("refresh", "true").Do().Expect(http.StatusOK).Map()
	if third["cachedAt"] == first["cachedAt"] || !strings.Contains(strings.Join(f.faults.Calls(), ","), "EC2.DescribeVpcs") {
		t.Fatalf("refresh served the cache: %v", third["cachedAt"])
	}
}

func TestErrors(t *testing.T) {
	f := newFixture(t)
	acc := f.linkRole("111122223333", "eu-west-1")
	route := "GET " + base + "/regions/{region}/vpcs"

	r := f.get(viewer, route, acc, "region", "eu-moon-1").Expect(http.StatusBadRequest)
	if !strings.Contains(string(r.Body), `"region"`) {
		t.Fatal(r)
	}
	r = f.api.As(viewer).Route("GET "+base+"/regions/{region}/subnets", "orgId", f.orgID, "accountId", acc, "region", "eu-west-1").Query("vpcId", "vpc-nothex!").Do().Expect(http.StatusBadRequest)
	if !strings.Contains(string(r.Body), "vpcId") {
		t.Fatal(r)
	}
	f.api.As(viewer).Route(route, "orgId", f.orgID, "accountId", acc, "region", "eu-west-1").Query("refresh", "yes").Do().Expect(http.StatusBadRequest)

	// Throttling is retried, then a 503 with Retry-After.
	f.faults.Reset()
	f.faults.FailAttempts("EC2.DescribeVpcs", 100, throttle())
	r = f.api.As(viewer).Route(route, "orgId", f.orgID, "accountId", acc, "region", "eu-west-1").Query("refresh", "true").Do().Expect(http.StatusServiceUnavailable)
	if r.Header["Retry-After"] == "" || strings.Count(strings.Join(f.faults.Calls(), ","), "(attempt failed)") < 2 {
		t.Fatalf("throttled: %v %v", r.Header, f.faults.Calls())
	}

	// AWS rejecting the credentials: 422 and the link becomes unhealthy.
	f.faults.Reset()
	f.faults.FailNth("EC2.DescribeVpcs", 1, authFailure())
	r = f.api.As(viewer).Route(route, "orgId", f.orgID, "accountId", acc, "region", "eu-west-1").Query("refresh", "true").Do().Expect(http.StatusUnprocessableEntity)
	if r.Map()["code"] != "provider_auth_failed" {
		t.Fatal(r)
	}
	l, err := f.linker.Get(context.Background(), f.orgID, acc)
	if err != nil || l.Status != "unhealthy" || l.LastError == nil || l.LastError.Code != "AuthFailure" {
		t.Fatalf("link after rejection: %+v %v", l, err)
	}
}

func TestAccess(t *testing.T) {
	f := newFixture(t)
	acc := f.linkRole("111122223333", "eu-west-1")
	f.get(custom, "GET "+base+"/regions", acc).Expect(http.StatusForbidden)
	f.get("", "GET "+base+"/regions", acc).Expect(http.StatusUnauthorized)
	f.get(stranger, "GET "+base+"/regions", acc).Expect(http.StatusNotFound)
	// A link id of this organisation asked inside another one is unknown there.
	other, _ := apitestSeed(t, f)
	r := f.api.As(stranger).Route("GET "+base+"/regions", "orgId", other, "accountId", acc).Do().Expect(http.StatusNotFound)
	if r.Map()["code"] != "account_not_found" {
		t.Fatal(r)
	}
}

func TestPermissionsCheck(t *testing.T) {
	f := newFixture(t)
	acc := f.linkRole("111122223333", "eu-west-1")
	route := "POST " + base + "/permissions-check"
	check := func() map[string]any {
		return f.api.As(viewer).Route(route, "orgId", f.orgID, "accountId", acc).JSON(map[string]any{"regions": []string{"eu-west-1"}}).Do().Expect(http.StatusOK).Map()
	}
	status := func(rep map[string]any, action string) string {
		for _, it := range rep["items"].([]any) {
			m := it.(map[string]any)
			if m["action"] == action {
				return m["status"].(string)
			}
		}
		return ""
	}
	rep := check()
	if status(rep, "ec2:DescribeVpcs") != "allowed" || status(rep, "ec2:RunInstances") == "" {
		t.Fatalf("report = %s", asJSON(rep))
	}
	if len(rep["missing"].([]any)) != 0 {
		t.Fatalf("missing on moto: %v", rep["missing"])
	}
	// A denied action (moto allows everything: the denial is injected).
	f.faults.Reset()
	f.faults.FailNth("EC2.DescribeVpcs", 1, &smithyAPIError{"UnauthorizedOperation"})
	rep = check()
	if status(rep, "ec2:DescribeVpcs") != "denied" || !strings.Contains(asJSON(rep["missing"]), "ec2:DescribeVpcs") {
		t.Fatalf("report = %s", asJSON(rep))
	}
	if !strings.Contains(asJSON(rep["policy"]), "ec2:DescribeVpcs") {
		t.Fatalf("policy = %s", asJSON(rep["policy"]))
	}
	f.api.As(viewer).Route(route, "orgId", f.orgID, "accountId", acc).JSON(`{"regions":["eu-moon-1"]}`).Do().Expect(http.StatusBadRequest)
}

type smithyAPIError struct{ code string }

func (e *smithyAPIError) Error() string     { return e.code }
func (e *smithyAPIError) ErrorCode() string { return e.code }
func (e *smithyAPIError) ErrorMessage() string {
	return "You are not authorized to perform this operation."
}
func (e *smithyAPIError) ErrorFault() smithy.ErrorFault {
	return smithy.FaultClient
}

func TestImagesAndFilters(t *testing.T) {
	f := newFixture(t)
	acc := f.linkRole("111122223333", "us-east-1")
	route := "GET " + base + "/regions/{region}/images"
	call := func(q ...string) *apitest.Result {
		c := f.api.As(viewer).Route(route, "orgId", f.orgID, "accountId", acc, "region", "us-east-1")
		for i := 0; i+1 < len(q); i += 2 {
			c = c.Query(q[i], q[i+1])
		}
		return c.Do()
	}
	for _, os := range []string{"ubuntu", "debian", "amazon-linux"} {
		for _, arch := range []string{"x86_64", "arm64"} {
			for _, im := range itemsOf(t, call("os", os, "arch", arch).Expect(http.StatusOK)) {
				if im["os"] != os || im["architecture"] != arch || !strings.HasPrefix(im["id"].(string), "ami-") || im["sshUser"] == "" {
					t.Fatalf("%s/%s image %v", os, arch, im)
				}
			}
		}
	}
	call("os", "windows", "arch", "x86_64").Expect(http.StatusBadRequest)
	call("os", "ubuntu", "arch", "sparc").Expect(http.StatusBadRequest)
	f.api.As(viewer).Route("GET "+base+"/regions/{region}/instance-types", "orgId", f.orgID, "accountId", acc, "region", "us-east-1").Query("minVcpus", "many").Do().Expect(http.StatusBadRequest)
}

// A role that can no longer be assumed fails the whole inventory with 422
// and marks the link unhealthy, instead of an error per region.
func TestBrokenRoleFailsTheInventory(t *testing.T) {
	f := newFixture(t)
	acc := f.linkRole("111122223333", "eu-west-1")
	f.faults.Reset()
	f.faults.FailNth("STS.AssumeRole", 1, &smithyAPIError{"AccessDenied"})
	r := f.api.As(viewer).Route("GET "+base+"/inventory", "orgId", f.orgID, "accountId", acc).Query("regions", "eu-west-1,us-east-1").Do().Expect(http.StatusUnprocessableEntity)
	if r.Map()["code"] != "provider_auth_failed" {
		t.Fatal(r)
	}
	l, err := f.linker.Get(context.Background(), f.orgID, acc)
	if err != nil || l.Status != "unhealthy" {
		t.Fatalf("link = %+v %v", l, err)
	}
}
