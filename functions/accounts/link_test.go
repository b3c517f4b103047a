package main

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
)

func TestLinkAccessKey(t *testing.T) {
	f := newFixture(t)
	id, secret := accessKey(t, "dflow")
	before := time.Now().UTC()
	res := f.api.As(admin).Route("POST /v1/orgs/{orgId}/accounts", f.org()...).JSON(keyBody("prod-eu", id, secret)).Do().Expect(http.StatusCreated)
	l := res.Map()
	acc := l["id"].(string)
	if res.Header["Location"] != "/v1/orgs/"+f.orgID+"/accounts/"+acc || res.Header["ETag"] != `"1"` {
		t.Fatalf("headers %v", res.Header)
	}
	creds := l["credentials"].(map[string]any)
	if creds["type"] != "accessKey" || creds["accessKeyIdMasked"] != id[:4]+"…"+id[16:] || len(creds) != 2 {
		t.Fatalf("credentials = %v", creds)
	}
	if l["awsAccountId"] != "123456789012" || !strings.Contains(l["principalArn"].(string), ":user/dflow-") || l["partition"] != "aws" {
		t.Fatalf("identity = %v", l)
	}
	if l["status"] != "healthy" || l["provider"] != "aws" || l["defaultRegion"] != "eu-west-1" || l["createdBy"] != admin || l["version"] != float64(1) {
		t.Fatalf("link = %v", l)
	}
	rot := l["rotation"].(map[string]any)
	next, _ := time.Parse(time.RFC3339Nano, rot["nextRotationAt"].(string))
	if rot["enabled"] != true || rot["maxAgeDays"] != float64(90) || next.Before(before.AddDate(0, 0, 90)) || next.After(time.Now().AddDate(0, 0, 90)) {
		t.Fatalf("rotation = %v", rot)
	}
	if l["keyCreatedAt"] == nil || l["lastValidatedAt"] == nil || len(l["warnings"].([]any)) != 0 {
		t.Fatalf("link = %v", l)
	}

	// The credentials are in Secrets Manager, under the link's name, tagged.
	name := f.env.Config.SecretPrefix + "/orgs/" + f.orgID + "/accounts/" + acc
	d, err := f.sm.DescribeSecret(context.Background(), &secretsmanager.DescribeSecretInput{SecretId: aws.String(name)})
	if err != nil {
		t.Fatalf("secret %s: %v", name, err)
	}
	tags := map[string]string{}
	for _, tag := range d.Tags {
		tags[aws.ToString(tag.Key)] = aws.ToString(tag.Value)
	}
	if tags["dflow:org"] != f.orgID || tags["dflow:account"] != acc {
		t.Fatalf("tags = %v", tags)
	}
	v, err := f.sm.GetSecretValue(context.Background(), &secretsmanager.GetSecretValueInput{SecretId: aws.String(name), VersionStage: aws.String("AWSCURRENT")})
	if err != nil || !strings.Contains(aws.ToString(v.SecretString), secret) {
		t.Fatal("the secret value is not the secret access key")
	}

	got := f.api.As(viewer).Route("GET /v1/orgs/{orgId}/accounts/{accountId}", f.org("accountId", acc)...).Do().Expect(http.StatusOK)
	if string(got.Body) != string(res.Body) {
		t.Fatalf("GET differs from POST:\n%s\n%s", got.Body, res.Body)
	}
	assertNoSecret(t, f, secret)
}

func TestLinkRole(t *testing.T) {
	f := newFixture(t)
	setup := f.api.As(admin).Route("GET /v1/orgs/{orgId}/providers/aws/setup", f.org()...).Do().Expect(http.StatusOK).Map()
	ext := setup["externalId"].(string)
	if len(ext) < 32 {
		t.Fatalf("external id %q", ext)
	}
	again := f.api.As(admin).Route("GET /v1/orgs/{orgId}/providers/aws/setup", f.org()...).Do().Expect(http.StatusOK).Map()
	if again["externalId"] != ext {
		t.Fatal("the external id changed between calls")
	}
	l := f.link(roleBody("staging", roleARN))
	if l["awsAccountId"] != "111122223333" || l["partition"] != "aws" || l["status"] != "healthy" {
		t.Fatalf("link = %v", l)
	}
	creds := l["credentials"].(map[string]any)
	if creds["type"] != "assumeRole" || creds["roleArn"] != roleARN {
		t.Fatalf("credentials = %v", creds)
	}
	if _, ok := l["rotation"]; ok {
		t.Fatalf("a role link has rotation: %v", l["rotation"])
	}
	// moto does not enforce the external id: AssumeRole without it works,
	// so the link must carry the confused-deputy warning.
	if creds["confusedDeputyProtected"] != false {
		t.Fatalf("confusedDeputyProtected = %v", creds["confusedDeputyProtected"])
	}
	ws := l["warnings"].([]any)
	if len(ws) != 1 || ws[0].(map[string]any)["code"] != "external_id_not_enforced" {
		t.Fatalf("warnings = %v", ws)
	}
	// The session carried the external id and the request id.
	calls := strings.Join(f.faults.Calls(), ",")
	if strings.Count(calls, "STS.AssumeRole") != 2 {
		t.Fatalf("calls = %s", calls)
	}
}

func TestSetup(t *testing.T) {
	f := newFixture(t)
	s := f.api.As(admin).Route("GET /v1/orgs/{orgId}/providers/aws/setup", f.org()...).Do().Expect(http.StatusOK).Map()
	trust := s["trustPolicy"].(map[string]any)["Statement"].([]any)[0].(map[string]any)
	if trust["Principal"].(map[string]any)["AWS"] != principal {
		t.Fatalf("trust principal = %v", trust)
	}
	cond := trust["Condition"].(map[string]any)["StringEquals"].(map[string]any)["sts:ExternalId"]
	if !strings.Contains(asJSON(cond), s["externalId"].(string)) {
		t.Fatalf("trust condition = %v", cond)
	}
	perms := asJSON(s["permissionsPolicy"])
	for _, action := range []string{"ec2:RunInstances", "ec2:DescribeVpcs", "ec2:ImportKeyPair", "ec2:CreateSecurityGroup"} {
		if !strings.Contains(perms, action) {
			t.Errorf("permissions policy lacks %s", action)
		}
	}
	if strings.Contains(perms, "iam:CreateAccessKey") || !strings.Contains(asJSON(s["accessKeyUserPolicy"]), "iam:CreateAccessKey") {
		t.Error("IAM key actions belong to the access-key user policy only")
	}
	cf := s["cloudFormation"].(map[string]any)
	if !strings.Contains(cf["template"].(string), "AWS::IAM::Role") || cf["quickCreateUrl"] != nil {
		t.Fatalf("cloudFormation = %v", cf)
	}
	f.api.As(admin).Route("GET /v1/orgs/{orgId}/providers/aws/setup", f.org()...).Query("partition", "aws-cn").Do().Expect(http.StatusUnprocessableEntity)
	f.api.As(admin).Route("GET /v1/orgs/{orgId}/providers/aws/setup", f.org()...).Query("partition", "mars").Do().Expect(http.StatusBadRequest)
	// Only who may link sees the external id.
	f.api.As(viewer).Route("GET /v1/orgs/{orgId}/providers/aws/setup", f.org()...).Do().Expect(http.StatusForbidden)
}

func TestProviders(t *testing.T) {
	f := newFixture(t)
	availability := func() map[string]string {
		items := f.api.As(viewer).Route("GET /v1/orgs/{orgId}/providers", f.org()...).Do().Expect(http.StatusOK).Map()["items"].([]any)
		out := map[string]string{}
		for _, it := range items {
			m := it.(map[string]any)
			out[m["id"].(string)] = m["availability"].(string)
		}
		return out
	}
	got := availability()
	if got["aws"] != "available" || got["gcp"] != "coming_soon" || got["azure"] != "coming_soon" || got["digitalocean"] != "coming_soon" {
		t.Fatalf("catalog = %v", got)
	}
	org, _ := f.env.Tenancy.GetOrg(context.Background(), f.orgID)
	on := true
	if _, err := f.env.Tenancy.UpdateOrg(context.Background(), f.orgID, orgPatch(map[string]*bool{"provider.gcp": &on}), &org.Version); err != nil {
		t.Fatal(err)
	}
	if got := availability(); got["gcp"] != "preview" || got["azure"] != "coming_soon" {
		t.Fatalf("with the flag: %v", got)
	}
	body := roleBody("g", roleARN)
	body["provider"] = "gcp"
	res := f.api.As(admin).Route("POST /v1/orgs/{orgId}/accounts", f.org()...).JSON(body).Do().Expect(http.StatusUnprocessableEntity)
	if problemCode(t, res) != "provider_not_supported" {
		t.Fatal(res)
	}
}
