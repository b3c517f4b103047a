package main

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/dflow-sh/cloud-accounts/shared/tenancy"
)

func asJSON(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

func orgPatch(features map[string]*bool) tenancy.OrgPatch {
	return tenancy.OrgPatch{Features: features}
}

// assertNoSecret looks for the secret in every place it must never be:
// every response so far, the log, every DynamoDB item (audit events
// included).
func assertNoSecret(t *testing.T, f *fixture, secret string) {
	t.Helper()
	if strings.Contains(f.api.Bodies.String(), secret) {
		t.Fatal("the secret access key is in a response")
	}
	if strings.Contains(f.env.Logs.String(), secret) {
		t.Fatal("the secret access key is in the log")
	}
	for _, it := range f.items() {
		for k, v := range it {
			if strings.Contains(v, secret) {
				t.Fatalf("the secret access key is in DynamoDB attribute %s of %s/%s", k, it["PK"], it["SK"])
			}
		}
	}
}

const goodSecret = "abcdefghijABCDEFGHIJ0123456789/+abcdefgh"

func TestLinkValidation(t *testing.T) {
	f := newFixture(t)
	mod := func(change func(b map[string]any)) map[string]any {
		b := keyBody("valid", "AKIAABCDEFGHIJKLMNOP", goodSecret)
		change(b)
		return b
	}
	creds := func(b map[string]any) map[string]any { return b["credentials"].(map[string]any) }
	tests := []struct {
		name  string
		body  map[string]any
		field string
	}{
		{"no name", mod(func(b map[string]any) { delete(b, "name") }), "name"},
		{"empty name", mod(func(b map[string]any) { b["name"] = "" }), "name"},
		{"long name", mod(func(b map[string]any) { b["name"] = strings.Repeat("x", 65) }), "name"},
		{"no provider", mod(func(b map[string]any) { delete(b, "provider") }), "provider"},
		{"unknown provider", mod(func(b map[string]any) { b["provider"] = "heroku" }), "provider"},
		{"no environments", mod(func(b map[string]any) { delete(b, "environments") }), "environments"},
		{"empty environments", mod(func(b map[string]any) { b["environments"] = []string{} }), "environments"},
		{"bad environment", mod(func(b map[string]any) { b["environments"] = []string{"Prod Env"} }), "environments[0]"},
		{"star with others", mod(func(b map[string]any) { b["environments"] = []string{"*", "production"} }), "environments[0]"},
		{"duplicate environment", mod(func(b map[string]any) { b["environments"] = []string{"staging", "staging"} }), "environments[1]"},
		{"no region", mod(func(b map[string]any) { delete(b, "defaultRegion") }), "defaultRegion"},
		{"fake region", mod(func(b map[string]any) { b["defaultRegion"] = "eu-moon-1" }), "defaultRegion"},
		{"no credentials", mod(func(b map[string]any) { delete(b, "credentials") }), "credentials"},
		{"no type", mod(func(b map[string]any) { delete(creds(b), "type") }), "credentials.type"},
		{"bad type", mod(func(b map[string]any) { creds(b)["type"] = "password" }), "credentials.type"},
		{"short key id", mod(func(b map[string]any) { creds(b)["accessKeyId"] = "AKIA123" }), "credentials.accessKeyId"},
		{"lower-case key id", mod(func(b map[string]any) { creds(b)["accessKeyId"] = "AKIAabcdefghijklmnop" }), "credentials.accessKeyId"},
		{"wrong key prefix", mod(func(b map[string]any) { creds(b)["accessKeyId"] = "ABIAABCDEFGHIJKLMNOP" }), "credentials.accessKeyId"},
		{"short secret", mod(func(b map[string]any) { creds(b)["secretAccessKey"] = "short" }), "credentials.secretAccessKey"},
		{"no secret", mod(func(b map[string]any) { delete(creds(b), "secretAccessKey") }), "credentials.secretAccessKey"},
		{"role arn with keys", mod(func(b map[string]any) { creds(b)["roleArn"] = roleARN }), "credentials.roleArn"},
		{"bad role arn", mod(func(b map[string]any) {
			b["credentials"] = map[string]any{"type": "assumeRole", "roleArn": "arn:aws:iam::12345:role/x"}
		}), "credentials.roleArn"},
		{"user arn", mod(func(b map[string]any) {
			b["credentials"] = map[string]any{"type": "assumeRole", "roleArn": "arn:aws:iam::111122223333:user/x"}
		}), "credentials.roleArn"},
		{"unknown partition", mod(func(b map[string]any) {
			b["credentials"] = map[string]any{"type": "assumeRole", "roleArn": "arn:aws-mars:iam::111122223333:role/x"}
		}), "credentials.roleArn"},
		{"role in another partition than the region", mod(func(b map[string]any) {
			b["credentials"] = map[string]any{"type": "assumeRole", "roleArn": "arn:aws-us-gov:iam::111122223333:role/x"}
		}), "defaultRegion"},
		{"rotating a role", mod(func(b map[string]any) {
			b["credentials"] = map[string]any{"type": "assumeRole", "roleArn": roleARN}
		}), "rotation.enabled"},
		{"max age zero", mod(func(b map[string]any) { b["rotation"] = map[string]any{"enabled": true, "maxAgeDays": 0} }), "rotation.maxAgeDays"},
		{"max age too long", mod(func(b map[string]any) { b["rotation"] = map[string]any{"maxAgeDays": 400} }), "rotation.maxAgeDays"},
		{"unknown field", mod(func(b map[string]any) { b["region"] = "x" }), "region"},
		{"unknown credentials field", mod(func(b map[string]any) { creds(b)["password"] = "x" }), "password"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f.faults.Reset()
			r := f.api.As(admin).Route("POST /v1/orgs/{orgId}/accounts", f.org()...).JSON(tt.body).Do().Expect(http.StatusBadRequest)
			fields := fieldsOf(t, r)
			found := false
			for _, fl := range fields {
				found = found || fl == tt.field
			}
			if !found {
				t.Fatalf("fields %v, want %s (%s)", fields, tt.field, r.Body)
			}
			if strings.Contains(string(r.Body), goodSecret) {
				t.Fatal("the secret is echoed")
			}
			// Formats are checked before AWS is asked anything.
			for _, c := range f.faults.Calls() {
				if strings.HasPrefix(c, "STS.") || strings.HasPrefix(c, "SecretsManager.") {
					t.Fatalf("AWS was called for invalid input: %v", f.faults.Calls())
				}
			}
		})
	}
	if len(f.secrets()) != 0 {
		t.Fatal("a rejected request stored a secret")
	}
}

func TestOneLinkPerNameAndCredentials(t *testing.T) {
	f := newFixture(t)
	id, secret := accessKey(t, "dup")
	f.link(keyBody("Prod", id, secret))
	f.link(roleBody("Roles", roleARN))
	id2, secret2 := accessKey(t, "dup2")
	tests := []struct {
		name string
		body map[string]any
		code string
	}{
		{"same name, other case", keyBody("prod", id2, secret2), "account_name_taken"},
		{"same key", keyBody("Other", id, secret), "account_already_linked"},
		{"same role", roleBody("Other", roleARN), "account_already_linked"},
	}
	for _, tt := range tests {
		r := f.api.As(admin).Route("POST /v1/orgs/{orgId}/accounts", f.org()...).JSON(tt.body).Do().Expect(http.StatusConflict)
		if problemCode(t, r) != tt.code {
			t.Errorf("%s: %s", tt.name, r)
		}
	}
	if n := len(f.secrets()); n != 2 {
		t.Fatalf("%d secrets, want 2", n)
	}
	// Another organisation may link the same account under the same name.
	other, _ := seedOther(t, f)
	f.api.As(stranger).Route("POST /v1/orgs/{orgId}/accounts", "orgId", other).JSON(roleBody("Roles", roleARN)).Do().Expect(http.StatusCreated)
}
