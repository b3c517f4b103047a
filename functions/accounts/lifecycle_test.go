package main

import (
	"context"
	"net/http"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/aws/smithy-go"

	"github.com/dflow-sh/cloud-accounts/shared/apitest"
)

func seedOther(t *testing.T, f *fixture) (string, string) {
	t.Helper()
	return apitest.SeedOrg(t, f.env.Platform, stranger, nil, "")
}

func TestListAndFilter(t *testing.T) {
	f := newFixture(t)
	id, secret := accessKey(t, "list")
	prod := f.link(keyBody("prod", id, secret))
	all := f.link(roleBody("everywhere", roleARN))
	body := roleBody("staging-only", "arn:aws:iam::444455556666:role/dflow")
	body["environments"] = []string{"staging"}
	staging := f.link(body)

	list := func(q ...string) []string {
		call := f.api.As(viewer).Route("GET /v1/orgs/{orgId}/accounts", f.org()...)
		for i := 0; i+1 < len(q); i += 2 {
			call = call.Query(q[i], q[i+1])
		}
		var l struct{ Items []struct{ ID string } }
		call.Do().Expect(http.StatusOK).Decode(&l)
		var out []string
		for _, it := range l.Items {
			out = append(out, it.ID)
		}
		return out
	}
	if got := list(); len(got) != 3 {
		t.Fatalf("all = %v", got)
	}
	if got := strings.Join(list("environment", "production"), ","); !strings.Contains(got, prod["id"].(string)) || !strings.Contains(got, all["id"].(string)) || strings.Contains(got, staging["id"].(string)) {
		t.Fatalf("production = %v", got)
	}
	if got := list("provider", "aws", "environment", "staging"); len(got) != 2 {
		t.Fatalf("staging = %v", got)
	}
	if got := list("provider", "gcp"); len(got) != 0 {
		t.Fatalf("gcp = %v", got)
	}
	f.api.As(viewer).Route("GET /v1/orgs/{orgId}/accounts", f.org()...).Query("environment", "Bad Env").Do().Expect(http.StatusBadRequest)
	// Paging visits each link once.
	seen := map[string]bool{}
	var cursor string
	for i := 0; i < 5; i++ {
		call := f.api.As(viewer).Route("GET /v1/orgs/{orgId}/accounts", f.org()...).Query("limit", "1")
		if cursor != "" {
			call = call.Query("cursor", cursor)
		}
		var l struct {
			Items      []struct{ ID string }
			NextCursor *string
		}
		call.Do().Expect(http.StatusOK).Decode(&l)
		for _, it := range l.Items {
			seen[it.ID] = true
		}
		if l.NextCursor == nil {
			break
		}
		cursor = *l.NextCursor
	}
	if len(seen) != 3 {
		t.Fatalf("paged through %d links", len(seen))
	}
}

func TestUpdate(t *testing.T) {
	f := newFixture(t)
	id, secret := accessKey(t, "upd")
	l := f.link(keyBody("prod", id, secret))
	acc := l["id"].(string)
	path := f.org("accountId", acc)
	got := f.api.As(admin).Route("PATCH /v1/orgs/{orgId}/accounts/{accountId}", path...).Header("If-Match", `"1"`).
		JSON(map[string]any{"name": "prod-eu", "environments": []string{"production", "staging"}, "defaultRegion": "eu-central-1", "rotation": map[string]any{"maxAgeDays": 30}}).
		Do().Expect(http.StatusOK).Map()
	if got["name"] != "prod-eu" || got["defaultRegion"] != "eu-central-1" || got["version"] != float64(2) || len(got["environments"].([]any)) != 2 {
		t.Fatalf("patched = %v", got)
	}
	if rot := got["rotation"].(map[string]any); rot["maxAgeDays"] != float64(30) || rot["enabled"] != true {
		t.Fatalf("rotation = %v", rot)
	}
	f.api.As(admin).Route("PATCH /v1/orgs/{orgId}/accounts/{accountId}", path...).Header("If-Match", `"1"`).JSON(map[string]any{"name": "x"}).Do().Expect(http.StatusPreconditionFailed)
	// The old name is free; the new one is taken.
	f.link(roleBody("prod", roleARN))
	r := f.api.As(admin).Route("PATCH /v1/orgs/{orgId}/accounts/{accountId}", path...).JSON(map[string]any{"name": "PROD"}).Do().Expect(http.StatusConflict)
	if problemCode(t, r) != "account_name_taken" {
		t.Fatal(r)
	}
	r = f.api.As(admin).Route("PATCH /v1/orgs/{orgId}/accounts/{accountId}", path...).JSON(map[string]any{"defaultRegion": "cn-north-1"}).Do().Expect(http.StatusBadRequest)
	if fields := fieldsOf(t, r); len(fields) != 1 || fields[0] != "defaultRegion" {
		t.Fatal(r)
	}
	// Turning rotation off takes the link out of the schedule.
	got = f.api.As(admin).Route("PATCH /v1/orgs/{orgId}/accounts/{accountId}", path...).JSON(map[string]any{"rotation": map[string]any{"enabled": false}}).Do().Expect(http.StatusOK).Map()
	if rot := got["rotation"].(map[string]any); rot["enabled"] != false || rot["nextRotationAt"] != nil {
		t.Fatalf("rotation off = %v", rot)
	}
	for _, it := range f.items() {
		if it["SK"] == `"ACCOUNT#`+acc+`"` && it["GSI2PK"] != "" {
			t.Fatalf("still in the rotation index: %v", it)
		}
	}
}

func TestReplaceCredentials(t *testing.T) {
	f := newFixture(t)
	id, secret := accessKey(t, "old")
	l := f.link(keyBody("prod", id, secret))
	acc := l["id"].(string)
	path := f.org("accountId", acc)
	newID, newSecret := accessKey(t, "new")
	got := f.api.As(admin).Route("PUT /v1/orgs/{orgId}/accounts/{accountId}/credentials", path...).
		JSON(map[string]any{"type": "accessKey", "accessKeyId": newID, "secretAccessKey": newSecret}).Do().Expect(http.StatusOK).Map()
	if got["credentials"].(map[string]any)["accessKeyIdMasked"] != newID[:4]+"…"+newID[16:] || got["version"] != float64(2) {
		t.Fatalf("replaced = %v", got)
	}
	// The old value stays as AWSPREVIOUS.
	name := f.env.Config.SecretPrefix + "/orgs/" + f.orgID + "/accounts/" + acc
	prev, err := f.sm.GetSecretValue(context.Background(), &secretsmanager.GetSecretValueInput{SecretId: aws.String(name), VersionStage: aws.String("AWSPREVIOUS")})
	if err != nil || !strings.Contains(aws.ToString(prev.SecretString), id) {
		t.Fatalf("AWSPREVIOUS does not hold the old key: %v", err)
	}
	cur, err := f.sm.GetSecretValue(context.Background(), &secretsmanager.GetSecretValueInput{SecretId: aws.String(name), VersionStage: aws.String("AWSCURRENT")})
	if err != nil || !strings.Contains(aws.ToString(cur.SecretString), newID) {
		t.Fatalf("AWSCURRENT does not hold the new key: %v", err)
	}
	// The old key is free to link again; the new one is taken.
	f.link(keyBody("again", id, secret))

	// Credentials of another AWS account are refused.
	r := f.api.As(admin).Route("PUT /v1/orgs/{orgId}/accounts/{accountId}/credentials", path...).
		JSON(map[string]any{"type": "assumeRole", "roleArn": roleARN}).Do().Expect(http.StatusUnprocessableEntity)
	if problemCode(t, r) != "account_mismatch" {
		t.Fatal(r)
	}
	assertNoSecret(t, f, secret)
	assertNoSecret(t, f, newSecret)
}

func TestValidate(t *testing.T) {
	f := newFixture(t)
	l := f.link(roleBody("r", roleARN))
	path := f.org("accountId", l["id"].(string))
	got := f.api.As(viewer).Route("POST /v1/orgs/{orgId}/accounts/{accountId}/validate", path...).Do().Expect(http.StatusOK).Map()
	if got["status"] != "healthy" || got["lastError"] != nil {
		t.Fatalf("validated = %v", got)
	}
	// AWS now rejects the role (e.g. the trust policy changed).
	f.faults.FailNth("STS.AssumeRole", 1, &smithy.GenericAPIError{Code: "AccessDenied", Message: "not authorized to perform sts:AssumeRole"})
	got = f.api.As(viewer).Route("POST /v1/orgs/{orgId}/accounts/{accountId}/validate", path...).Do().Expect(http.StatusOK).Map()
	le, _ := got["lastError"].(map[string]any)
	if got["status"] != "unhealthy" || le == nil || le["code"] != "AccessDenied" || le["at"] == nil {
		t.Fatalf("after rejection = %v", got)
	}
	if again := f.api.As(viewer).Route("GET /v1/orgs/{orgId}/accounts/{accountId}", path...).Do().Expect(http.StatusOK).Map(); again["status"] != "unhealthy" {
		t.Fatal("unhealthy status not stored")
	}
	f.faults.Reset()
	got = f.api.As(viewer).Route("POST /v1/orgs/{orgId}/accounts/{accountId}/validate", path...).Do().Expect(http.StatusOK).Map()
	if got["status"] != "healthy" || got["lastError"] != nil {
		t.Fatalf("recovered = %v", got)
	}
}

func TestDelete(t *testing.T) {
	f := newFixture(t)
	id, secret := accessKey(t, "del")
	l := f.link(keyBody("prod", id, secret))
	acc := l["id"].(string)
	path := f.org("accountId", acc)

	// Something still uses it: refused, listing what.
	f.putUsage(acc, "workerNode", "wn_aaaaaaaaaaaaaaaaaaaaaaaaaa")
	r := f.api.As(admin).Route("DELETE /v1/orgs/{orgId}/accounts/{accountId}", path...).Do().Expect(http.StatusConflict)
	if problemCode(t, r) != "account_in_use" || !strings.Contains(string(r.Body), "wn_aaaaaaaaaaaaaaaaaaaaaaaaaa") {
		t.Fatal(r)
	}
	f.deleteUsage(acc, "workerNode", "wn_aaaaaaaaaaaaaaaaaaaaaaaaaa")

	f.api.As(admin).Route("DELETE /v1/orgs/{orgId}/accounts/{accountId}", path...).Do().Expect(http.StatusNoContent)
	f.api.As(admin).Route("GET /v1/orgs/{orgId}/accounts/{accountId}", path...).Do().Expect(http.StatusNotFound)
	secrets := f.secrets()
	if len(secrets) != 1 || secrets[0].DeletedDate == nil {
		t.Fatalf("secret not scheduled for deletion: %+v", secrets)
	}
	for _, it := range f.items() {
		if strings.Contains(it["SK"], "ACCOUNT") {
			t.Fatalf("metadata left: %v", it)
		}
	}
	// Name and key are free again (a new link gets a new secret).
	f.link(keyBody("prod", id, secret))
}

func TestOnlyThisPartition(t *testing.T) {
	f := newFixture(t)
	body := roleBody("gov", "arn:aws-us-gov:iam::111122223333:role/dflow")
	body["defaultRegion"] = "us-gov-west-1"
	r := f.api.As(admin).Route("POST /v1/orgs/{orgId}/accounts", f.org()...).JSON(body).Do().Expect(http.StatusUnprocessableEntity)
	if problemCode(t, r) != "partition_not_supported" || len(f.secrets()) != 0 {
		t.Fatal(r)
	}
}

func TestEmptyPatchAndSwitchingType(t *testing.T) {
	f := newFixture(t)
	// A role in the same account as moto's IAM users.
	l := f.link(roleBody("r", "arn:aws:iam::123456789012:role/dflow"))
	path := f.org("accountId", l["id"].(string))
	r := f.api.As(admin).Route("PATCH /v1/orgs/{orgId}/accounts/{accountId}", path...).JSON(`{}`).Do().Expect(http.StatusBadRequest)
	if fields := fieldsOf(t, r); len(fields) != 1 || fields[0] != "body" {
		t.Fatal(r)
	}
	if len(l["warnings"].([]any)) != 1 {
		t.Fatalf("warnings = %v", l["warnings"])
	}
	// Switching to an access key drops the role's warning and flag.
	id, secret := accessKey(t, "switch")
	got := f.api.As(admin).Route("PUT /v1/orgs/{orgId}/accounts/{accountId}/credentials", path...).
		JSON(map[string]any{"type": "accessKey", "accessKeyId": id, "secretAccessKey": secret}).Do().Expect(http.StatusOK).Map()
	creds := got["credentials"].(map[string]any)
	if len(got["warnings"].([]any)) != 0 || creds["type"] != "accessKey" || creds["confusedDeputyProtected"] != nil || creds["roleArn"] != nil {
		t.Fatalf("after the switch: %v", got)
	}
	assertNoSecret(t, f, secret)
}
