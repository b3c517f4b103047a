package awsauth

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/iam"

	"github.com/dflow-sh/cloud-accounts/shared/fault"
	"github.com/dflow-sh/cloud-accounts/shared/motoserver"
)

// enforceAuth turns on moto's IAM enforcement. POST /moto-api/reset-auth
// with body N lets the next N service requests through unauthenticated and
// authenticates every one after (N=0: from the next request on); moto's
// default is "inf", nothing checked. The switch and its counter are global
// to the server, hence a server of this test's own.
func enforceAuth(t *testing.T, srv *motoserver.Server) {
	t.Helper()
	resp, err := http.Post(srv.URL+"/moto-api/reset-auth", "text/plain", strings.NewReader("0"))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if body, _ := io.ReadAll(resp.Body); resp.StatusCode != http.StatusOK {
		t.Fatalf("reset-auth: %s %s", resp.Status, body)
	}
}

// With IAM enforcement on, moto answers unknown keys and bad signatures the
// way AWS does, so the real error codes reach the classifier.
//
// How the principals get made: moto has no root or admin credentials that
// pass enforcement (a request is authenticated only by an access key of an
// IAM user, or an assumed-role session, in moto's own state). So every
// user, key, policy and role is created BEFORE enforcement is switched on,
// with the server's dummy credentials, while moto checks nothing; after
// that, the dummy credentials themselves are rejected.
func TestWithIAMEnforcement(t *testing.T) {
	ctx := context.Background()
	srv, err := motoserver.Start(ctx, motoserver.Options{Env: motoserver.DefaultEnv})
	if err != nil {
		t.Fatalf("AWS emulator: %v", err)
	}
	t.Cleanup(srv.Stop)
	cfg, err := srv.Config(ctx, "us-east-1")
	if err != nil {
		t.Fatal(err)
	}

	// Set-up, unauthenticated: a customer's user and key; dFlow's own
	// principal, allowed to assume roles; a customer role trusting it with
	// the external id as condition.
	customer, customerARN := createKey(t, cfg)
	dflowKey, dflowARN := createKey(t, cfg)
	client := iam.NewFromConfig(cfg)
	dflowUser := dflowARN[strings.LastIndex(dflowARN, "/")+1:]
	if _, err := client.PutUserPolicy(ctx, &iam.PutUserPolicyInput{
		UserName:       aws.String(dflowUser),
		PolicyName:     aws.String("assume-customer-roles"),
		PolicyDocument: aws.String(`{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"sts:AssumeRole","Resource":"*"}]}`),
	}); err != nil {
		t.Fatal(err)
	}
	role, err := client.CreateRole(ctx, &iam.CreateRoleInput{
		RoleName: aws.String("dflow-access"),
		AssumeRolePolicyDocument: aws.String(`{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"AWS":"` + dflowARN + `"},` +
			`"Action":"sts:AssumeRole","Condition":{"StringEquals":{"sts:ExternalId":"` + testExternalID + `"}}}]}`),
	})
	if err != nil {
		t.Fatal(err)
	}
	roleARN := aws.ToString(role.Role.Arn)

	enforceAuth(t, srv)

	// The dummy key the set-up used is unknown to IAM: dFlow's checker built
	// on it is misconfigured, which is not the customer's fault.
	c := newChecker(t, cfg, WithMaxAttempts(1))
	_, err = c.CheckRole(ctx, roleARN, testExternalID, "dflow-s")
	wantFault(t, err, fault.Internal, "provider_auth_misconfigured")

	t.Run("customer key created before enforcement passes", func(t *testing.T) {
		id, err := c.CheckAccessKey(ctx, customer)
		noSecret(t, err, customer.Secret)
		if err != nil {
			t.Fatal(err)
		}
		if id.ARN != customerARN || id.AccountID != "123456789012" {
			t.Errorf("identity %+v", id)
		}
	})

	rejected := []struct {
		name    string
		key     AccessKey
		region  string
		awsCode string
	}{
		{"unknown key", AccessKey{ID: "AKIAUNKNOWNKEY000001", Secret: testSecret}, "", "InvalidClientTokenId"},
		{"wrong secret", AccessKey{ID: customer.ID, Secret: testSecret}, "", "SignatureDoesNotMatch"},
		// moto keeps IAM per partition, like AWS: a commercial key is
		// unknown to GovCloud.
		{"key checked in another partition", customer, "us-gov-west-1", "InvalidClientTokenId"},
	}
	for _, r := range rejected {
		t.Run(r.name, func(t *testing.T) {
			_, err := c.CheckAccessKey(ctx, r.key, InRegion(r.region))
			noSecret(t, err, customer.Secret)
			e := wantFault(t, err, fault.Unprocessable, "credentials_invalid")
			if got, _ := e.Extra["awsErrorCode"].(string); got != r.awsCode {
				t.Errorf("awsErrorCode %q, want %q (%v)", got, r.awsCode, err)
			}
		})
	}

	dflowCfg := cfg.Copy()
	dflowCfg.Credentials = credentials.NewStaticCredentialsProvider(dflowKey.ID, dflowKey.Secret, "")
	asDFlow := newChecker(t, dflowCfg, WithMaxAttempts(1))

	t.Run("role with the external id", func(t *testing.T) {
		check, err := asDFlow.CheckRole(ctx, roleARN, testExternalID, SessionName("dflow-check", "req-1"))
		noSecret(t, err, dflowKey.Secret)
		if err != nil {
			t.Fatal(err)
		}
		if check.Identity.AccountID != "123456789012" || !strings.Contains(check.Identity.ARN, ":assumed-role/dflow-access/dflow-check-req-1") {
			t.Errorf("identity %+v", check.Identity)
		}
		// moto evaluates the sts:ExternalId condition only when the request
		// carries an external id: without one the condition passes, so the
		// probe succeeds here where AWS would refuse it (AccessDenied).
		if check.ExternalIDRequired {
			t.Error("moto 5.2.1 passes a missing external id; has it started enforcing it?")
		}
	})

	t.Run("role with a wrong external id", func(t *testing.T) {
		_, err := asDFlow.CheckRole(ctx, roleARN, "some-other-external-id", "dflow-s")
		e := wantFault(t, err, fault.Unprocessable, "credentials_invalid")
		if got, _ := e.Extra["awsErrorCode"].(string); got != "AccessDenied" {
			t.Errorf("awsErrorCode %q (%v)", got, err)
		}
	})
}
