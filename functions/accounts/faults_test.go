package main

import (
	"net/http"
	"strings"
	"testing"

	"github.com/aws/smithy-go"
	"github.com/dflow-sh/cloud-accounts/shared/sdkfault"
)

// Each AWS call of a flow fails in turn; whatever the failure, nothing is
// left half-done: no secret without metadata, no metadata without a secret.
func TestLinkIsAllOrNothing(t *testing.T) {
	for _, kind := range []string{"accessKey", "assumeRole"} {
		t.Run(kind, func(t *testing.T) {
			f := newFixture(t)
			id, secret := accessKey(t, "aon")
			body := keyBody("prod", id, secret)
			if kind == "assumeRole" {
				body = roleBody("prod", roleARN)
			}
			// A dry run records the calls the flow makes.
			f.faults.Reset()
			l := f.link(body)
			calls := sdkfault.Occurrences(f.faults.Calls())
			f.api.As(admin).Route("DELETE /v1/orgs/{orgId}/accounts/{accountId}", f.org("accountId", l["id"].(string))...).Do().Expect(http.StatusNoContent)

			for _, c := range calls {
				t.Run(c.String(), func(t *testing.T) {
					f.faults.Reset()
					f.faults.FailNth(c.Call, c.Nth, nil)
					logged := len(f.env.Logs.String())
					r := f.api.As(admin).Route("POST /v1/orgs/{orgId}/accounts", f.org()...).JSON(body).Do()
					if r.Status < 400 {
						f.faults.Reset()
						// Two failures are not the flow's: the probe without the
						// external id (its refusal is an answer), and the audit
						// write after the link was made, which is logged whole.
						probe := c.Call == "STS.AssumeRole" && c.Nth == 2
						if !probe && !strings.Contains(f.env.Logs.String()[logged:], "audit write failed") {
							t.Fatalf("status %d with %s failing", r.Status, c)
						}
						if n := len(f.liveSecrets()); n != 1 {
							t.Fatalf("linked with %d secrets", n)
						}
						f.unlinkAll()
						return
					}
					if n := len(f.liveSecrets()); n != 0 {
						t.Fatalf("%d secret(s) left behind", n)
					}
					for _, it := range f.items() {
						if strings.Contains(it["SK"], "ACCOUNT") {
							t.Fatalf("metadata left behind: %v", it)
						}
					}
					if kind == "accessKey" {
						assertNoSecret(t, f, secret)
					}
				})
			}
		})
	}
}

func TestReplaceCredentialsIsAllOrNothing(t *testing.T) {
	f := newFixture(t)
	id, secret := accessKey(t, "rc")
	l := f.link(keyBody("prod", id, secret))
	path := f.org("accountId", l["id"].(string))
	newID, newSecret := accessKey(t, "rc2")
	body := map[string]any{"type": "accessKey", "accessKeyId": newID, "secretAccessKey": newSecret}

	f.faults.Reset()
	f.api.As(admin).Route("PUT /v1/orgs/{orgId}/accounts/{accountId}/credentials", path...).JSON(body).Do().Expect(http.StatusOK)
	calls := sdkfault.Occurrences(f.faults.Calls())
	// Back to the first key for the runs below.
	f.api.As(admin).Route("PUT /v1/orgs/{orgId}/accounts/{accountId}/credentials", path...).
		JSON(map[string]any{"type": "accessKey", "accessKeyId": id, "secretAccessKey": secret}).Do().Expect(http.StatusOK)

	for _, c := range calls {
		t.Run(c.String(), func(t *testing.T) {
			f.faults.Reset()
			f.faults.FailNth(c.Call, c.Nth, nil)
			r := f.api.As(admin).Route("PUT /v1/orgs/{orgId}/accounts/{accountId}/credentials", path...).JSON(body).Do()
			f.faults.Reset()
			if r.Status < 400 {
				// Calls whose failure does not stop the flow (the audit
				// write, clearing a stale AWSPENDING label): it completed,
				// and the two stores agree.
				got := f.api.As(admin).Route("GET /v1/orgs/{orgId}/accounts/{accountId}", path...).Do().Expect(http.StatusOK).Map()
				if got["credentials"].(map[string]any)["accessKeyIdMasked"] != newID[:4]+"…"+newID[16:] {
					t.Fatalf("200 but metadata at %v", got["credentials"])
				}
				if cur := f.currentSecret(l["id"].(string)); !strings.Contains(cur, newID) {
					t.Fatal("the vault's AWSCURRENT is not the key the metadata describes")
				}
				f.api.As(admin).Route("PUT /v1/orgs/{orgId}/accounts/{accountId}/credentials", path...).
					JSON(map[string]any{"type": "accessKey", "accessKeyId": id, "secretAccessKey": secret}).Do().Expect(http.StatusOK)
				return
			}
			// The link still describes the credentials the vault holds.
			got := f.api.As(admin).Route("GET /v1/orgs/{orgId}/accounts/{accountId}", path...).Do().Expect(http.StatusOK).Map()
			masked := got["credentials"].(map[string]any)["accessKeyIdMasked"]
			if masked != id[:4]+"…"+id[16:] {
				t.Fatalf("metadata moved to %v", masked)
			}
			if cur := f.currentSecret(l["id"].(string)); !strings.Contains(cur, id) {
				t.Fatal("the vault's AWSCURRENT is not the key the metadata describes")
			}
		})
	}
}

func TestDeleteIsAllOrNothing(t *testing.T) {
	f := newFixture(t)
	l := f.link(roleBody("prod", roleARN))
	path := f.org("accountId", l["id"].(string))
	f.faults.Reset()
	f.api.As(admin).Route("DELETE /v1/orgs/{orgId}/accounts/{accountId}", path...).Do().Expect(http.StatusNoContent)
	calls := sdkfault.Occurrences(f.faults.Calls())

	for _, c := range calls {
		t.Run(c.String(), func(t *testing.T) {
			f.faults.Reset()
			l := f.link(roleBody("prod", roleARN))
			path := f.org("accountId", l["id"].(string))
			f.faults.FailNth(c.Call, c.Nth, nil)
			logged := len(f.env.Logs.String())
			r := f.api.As(admin).Route("DELETE /v1/orgs/{orgId}/accounts/{accountId}", path...).Do()
			f.faults.Reset()
			if r.Status < 400 {
				if !strings.Contains(f.env.Logs.String()[logged:], "audit write failed") {
					t.Fatalf("status %d with %s failing", r.Status, c)
				}
				f.api.As(admin).Route("GET /v1/orgs/{orgId}/accounts/{accountId}", path...).Do().Expect(http.StatusNotFound)
				return
			}
			// Still linked, and its secret still readable.
			f.api.As(admin).Route("POST /v1/orgs/{orgId}/accounts/{accountId}/validate", path...).Do().Expect(http.StatusOK)
			f.api.As(admin).Route("DELETE /v1/orgs/{orgId}/accounts/{accountId}", path...).Do().Expect(http.StatusNoContent)
		})
	}
}

func TestRejectedAndUnreachable(t *testing.T) {
	f := newFixture(t)
	id, secret := accessKey(t, "rej")
	tests := []struct {
		name   string
		err    error
		status int
		code   string
	}{
		{"invalid key", &smithy.GenericAPIError{Code: "InvalidClientTokenId", Message: "The security token included in the request is invalid."}, 422, "credentials_invalid"},
		{"bad signature", &smithy.GenericAPIError{Code: "SignatureDoesNotMatch", Message: "signature mismatch"}, 422, "credentials_invalid"},
		{"throttled", &smithy.GenericAPIError{Code: "Throttling", Message: "Rate exceeded"}, 503, "provider_unavailable"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f.faults.Reset()
			f.faults.FailNth("STS.GetCallerIdentity", 1, tt.err)
			r := f.api.As(admin).Route("POST /v1/orgs/{orgId}/accounts", f.org()...).JSON(keyBody("prod", id, secret)).Do().Expect(tt.status)
			p := r.Map()
			if p["code"] != tt.code {
				t.Fatal(r)
			}
			if tt.status == 422 && p["awsErrorCode"] != tt.err.(*smithy.GenericAPIError).Code {
				t.Fatalf("no AWS error code: %s", r)
			}
			if tt.status == 503 && r.Header["Retry-After"] == "" {
				t.Fatalf("no Retry-After: %v", r.Header)
			}
			if strings.Contains(string(r.Body), secret) || len(f.secrets()) != 0 {
				t.Fatal("stored or echoed after a refusal")
			}
		})
	}
}

// Throttling is retried by the SDK; only when it persists does the caller
// get a 503, and then nothing is stored.
func TestThrottlingIsRetried(t *testing.T) {
	f := newFixture(t)
	id, secret := accessKey(t, "thr")
	throttled := &smithy.GenericAPIError{Code: "Throttling", Message: "Rate exceeded"}

	f.faults.Reset()
	f.faults.FailAttempts("STS.GetCallerIdentity", 2, throttled)
	f.api.As(admin).Route("POST /v1/orgs/{orgId}/accounts", f.org()...).JSON(keyBody("prod", id, secret)).Do().Expect(http.StatusCreated)
	if n := strings.Count(strings.Join(f.faults.Calls(), ","), "STS.GetCallerIdentity(attempt failed)"); n != 2 {
		t.Fatalf("%d failed attempts before success", n)
	}
	f.unlinkAll()

	f.faults.Reset()
	f.faults.FailAttempts("STS.GetCallerIdentity", 100, throttled)
	r := f.api.As(admin).Route("POST /v1/orgs/{orgId}/accounts", f.org()...).JSON(keyBody("prod", id, secret)).Do().Expect(http.StatusServiceUnavailable)
	if problemCode(t, r) != "provider_unavailable" || r.Header["Retry-After"] == "" {
		t.Fatal(r)
	}
	if n := strings.Count(strings.Join(f.faults.Calls(), ","), "(attempt failed)"); n < 2 {
		t.Fatalf("gave up after %d attempt(s)", n)
	}
	if len(f.liveSecrets()) != 0 {
		t.Fatal("stored after a 503")
	}
}
