package awsauth

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/ratelimit"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/iam"
	"github.com/aws/aws-sdk-go-v2/service/sts"
	ststypes "github.com/aws/aws-sdk-go-v2/service/sts/types"
	"github.com/aws/smithy-go"

	"github.com/dflow-sh/cloud-accounts/shared/fault"
	"github.com/dflow-sh/cloud-accounts/shared/ids"
	"github.com/dflow-sh/cloud-accounts/shared/motoserver"
)

func TestMain(m *testing.M) { motoserver.Main(m) }

const testExternalID = "dflow-ext-k3xq7v2m9p4r8t6w"

// noSecret fails the test if err's text carries a credential.
func noSecret(t *testing.T, err error, secrets ...string) {
	t.Helper()
	if err == nil {
		return
	}
	for _, s := range append(secrets, testSecret, testSessionToken, "s3cr3t") {
		if s != "" && strings.Contains(err.Error(), s) {
			t.Fatalf("error text carries a credential (%d chars of error)", len(err.Error()))
		}
	}
}

func wantFault(t *testing.T, err error, kind fault.Kind, code string) *fault.Error {
	t.Helper()
	noSecret(t, err)
	e, ok := fault.As(err)
	if !ok {
		t.Fatalf("want fault %s, got %v", code, err)
	}
	if e.Kind != kind || e.Code != code {
		t.Fatalf("want kind %d code %s, got kind %d code %s (%v)", kind, code, e.Kind, e.Code, err)
	}
	return e
}

// createKey makes an IAM user with an access key on the server cfg talks to.
func createKey(t *testing.T, cfg aws.Config) (AccessKey, string) {
	t.Helper()
	ctx := context.Background()
	client := iam.NewFromConfig(cfg)
	name := "dflow-test-" + ids.New("u")
	user, err := client.CreateUser(ctx, &iam.CreateUserInput{UserName: aws.String(name)})
	if err != nil {
		t.Fatal(err)
	}
	k, err := client.CreateAccessKey(ctx, &iam.CreateAccessKeyInput{UserName: aws.String(name)})
	if err != nil {
		t.Fatal(err)
	}
	return AccessKey{ID: aws.ToString(k.AccessKey.AccessKeyId), Secret: aws.ToString(k.AccessKey.SecretAccessKey)}, aws.ToString(user.User.Arn)
}

func newChecker(t *testing.T, cfg aws.Config, opts ...Option) *Checker {
	t.Helper()
	c, err := New(cfg, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestCheckAccessKeyOnMoto(t *testing.T) {
	cfg := motoserver.TestConfig(t)
	key, userARN := createKey(t, cfg)
	c := newChecker(t, cfg)

	id, err := c.CheckAccessKey(context.Background(), key)
	if err != nil {
		noSecret(t, err, key.Secret)
		t.Fatal(err)
	}
	// moto puts users created with unknown (dummy) keys in 123456789012.
	if id.ARN != userARN || id.AccountID != "123456789012" || id.UserID == "" {
		t.Errorf("identity %+v, want user %s", id, userARN)
	}
}

func TestCheckRoleOnMoto(t *testing.T) {
	c := newChecker(t, motoserver.TestConfig(t))
	session := SessionName("dflow-check", "req-7Hx=")
	check, err := c.CheckRole(context.Background(), "arn:aws:iam::111122223333:role/dflow", testExternalID, session)
	if err != nil {
		t.Fatal(err)
	}
	// moto lets anyone assume a role in any 12-digit account, existing or not.
	if check.Identity.AccountID != "111122223333" {
		t.Errorf("account %s", check.Identity.AccountID)
	}
	if want := "arn:aws:sts::111122223333:assumed-role/dflow/" + session; check.Identity.ARN != want {
		t.Errorf("arn %s, want %s", check.Identity.ARN, want)
	}
	// moto never checks ExternalId (not even a trust policy's sts:ExternalId
	// condition when the request leaves it out), so assuming the role without
	// it succeeds and the check reports the external id as not required. On
	// AWS, a trust policy with that condition refuses: see the fake below.
	if check.ExternalIDRequired {
		t.Error("ExternalIDRequired on moto, which never refuses a missing external id")
	}
}

func TestAssumeRoleOnMoto(t *testing.T) {
	ctx := context.Background()
	cfg := motoserver.TestConfig(t)
	c := newChecker(t, cfg)
	start := time.Now()
	creds, err := c.AssumeRole(ctx, "arn:aws:iam::444455556666:role/path/dflow", testExternalID, SessionName("dflow", "req-1"), 20*time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if creds.AccessKeyID == "" || creds.SecretAccessKey == "" || creds.SessionToken == "" {
		t.Fatal("empty session credentials")
	}
	if d := creds.Expires.Sub(start); d < 19*time.Minute || d > 21*time.Minute {
		t.Errorf("session lasts %s, want 20m", d)
	}
	// The session works on its own.
	out, err := sts.NewFromConfig(cfg).GetCallerIdentity(ctx, &sts.GetCallerIdentityInput{}, func(o *sts.Options) { o.Credentials = creds.Provider() })
	if err != nil {
		t.Fatal(err)
	}
	if aws.ToString(out.Account) != "444455556666" {
		t.Errorf("session account %s", aws.ToString(out.Account))
	}
}

// fakeSTS answers with its function fields, after applying the per-call
// options to a blank sts.Options so tests can see credentials and region.
type fakeSTS struct {
	getCallerIdentity func(in *sts.GetCallerIdentityInput, o sts.Options) (*sts.GetCallerIdentityOutput, error)
	assumeRole        func(in *sts.AssumeRoleInput, o sts.Options) (*sts.AssumeRoleOutput, error)
}

func (f *fakeSTS) GetCallerIdentity(_ context.Context, in *sts.GetCallerIdentityInput, optFns ...func(*sts.Options)) (*sts.GetCallerIdentityOutput, error) {
	var o sts.Options
	for _, fn := range optFns {
		fn(&o)
	}
	return f.getCallerIdentity(in, o)
}

func (f *fakeSTS) AssumeRole(_ context.Context, in *sts.AssumeRoleInput, optFns ...func(*sts.Options)) (*sts.AssumeRoleOutput, error) {
	var o sts.Options
	for _, fn := range optFns {
		fn(&o)
	}
	return f.assumeRole(in, o)
}

var _ API = (*fakeSTS)(nil)

func fakeChecker(t *testing.T, f *fakeSTS) *Checker {
	t.Helper()
	return newChecker(t, aws.Config{Region: "us-east-1"}, WithAPI(f))
}

// apiError is what the SDK returns for an AWS error response.
func apiError(code string, fault smithy.ErrorFault) error {
	return &smithy.OperationError{ServiceID: "STS", OperationName: "Op",
		Err: &smithy.GenericAPIError{Code: code, Message: "message from AWS", Fault: fault}}
}

func sessionOut(account string) *sts.AssumeRoleOutput {
	return &sts.AssumeRoleOutput{Credentials: &ststypes.Credentials{
		AccessKeyId:     aws.String("ASIAFAKESESSION00001"),
		SecretAccessKey: aws.String(testSecret),
		SessionToken:    aws.String(testSessionToken),
		Expiration:      aws.Time(time.Now().Add(15 * time.Minute)),
	}}
}

func identityOut(account, arn string) *sts.GetCallerIdentityOutput {
	return &sts.GetCallerIdentityOutput{Account: aws.String(account), Arn: aws.String(arn), UserId: aws.String("AROAFAKE:s")}
}

// A trust policy with an sts:ExternalId condition refuses AssumeRole
// without the external id: what AWS does and moto doesn't.
func TestCheckRoleExternalIDRequired(t *testing.T) {
	const role = "arn:aws:iam::111122223333:role/dflow"
	var assumes []*sts.AssumeRoleInput
	f := &fakeSTS{
		assumeRole: func(in *sts.AssumeRoleInput, o sts.Options) (*sts.AssumeRoleOutput, error) {
			assumes = append(assumes, in)
			if in.ExternalId == nil {
				return nil, apiError("AccessDenied", smithy.FaultClient)
			}
			if aws.ToString(in.ExternalId) != testExternalID || aws.ToInt32(in.DurationSeconds) != 900 {
				t.Errorf("assume role input: external id given %v, duration %d", in.ExternalId != nil, aws.ToInt32(in.DurationSeconds))
			}
			return sessionOut("111122223333"), nil
		},
		getCallerIdentity: func(_ *sts.GetCallerIdentityInput, o sts.Options) (*sts.GetCallerIdentityOutput, error) {
			// Signed with the session, not with dFlow's credentials.
			got, err := o.Credentials.Retrieve(context.Background())
			if err != nil || got.AccessKeyID != "ASIAFAKESESSION00001" || got.SessionToken != testSessionToken {
				t.Error("GetCallerIdentity is not signed with the session credentials")
			}
			return identityOut("111122223333", "arn:aws:sts::111122223333:assumed-role/dflow/s"), nil
		},
	}
	check, err := fakeChecker(t, f).CheckRole(context.Background(), role, testExternalID, SessionName("dflow", "req-1"))
	if err != nil {
		t.Fatal(err)
	}
	if !check.ExternalIDRequired || check.Identity.AccountID != "111122223333" {
		t.Errorf("check %+v", check)
	}
	if len(assumes) != 2 {
		t.Errorf("%d AssumeRole calls, want 2", len(assumes))
	}
}

func TestCheckRoleErrors(t *testing.T) {
	const role = "arn:aws:iam::111122223333:role/dflow"
	ok := func(*sts.GetCallerIdentityInput, sts.Options) (*sts.GetCallerIdentityOutput, error) {
		return identityOut("111122223333", "arn"), nil
	}
	cases := []struct {
		name   string
		assume func(in *sts.AssumeRoleInput) error
		kind   fault.Kind
		code   string
		awsErr string
	}{
		{"trust policy refuses dFlow", func(*sts.AssumeRoleInput) error { return apiError("AccessDenied", smithy.FaultClient) },
			fault.Unprocessable, "credentials_invalid", "AccessDenied"},
		{"throttled", func(*sts.AssumeRoleInput) error { return apiError("Throttling", smithy.FaultClient) },
			fault.Unavailable, "provider_unavailable", "Throttling"},
		// Throttled on the probe without external id: not a verdict either way.
		{"throttled without external id", func(in *sts.AssumeRoleInput) error {
			if in.ExternalId == nil {
				return apiError("Throttling", smithy.FaultClient)
			}
			return nil
		}, fault.Unavailable, "provider_unavailable", "Throttling"},
		// dFlow's own key rejected: an operator's problem, not the customer's.
		{"dflow credentials invalid", func(*sts.AssumeRoleInput) error { return apiError("InvalidClientTokenId", smithy.FaultClient) },
			fault.Internal, "provider_auth_misconfigured", ""},
		{"region disabled for the customer's account", func(*sts.AssumeRoleInput) error { return apiError("RegionDisabledException", smithy.FaultClient) },
			fault.Unprocessable, "credentials_invalid", "RegionDisabledException"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f := &fakeSTS{getCallerIdentity: ok, assumeRole: func(in *sts.AssumeRoleInput, _ sts.Options) (*sts.AssumeRoleOutput, error) {
				if err := c.assume(in); err != nil {
					return nil, err
				}
				return sessionOut("111122223333"), nil
			}}
			_, err := fakeChecker(t, f).CheckRole(context.Background(), role, testExternalID, "dflow-s")
			e := wantFault(t, err, c.kind, c.code)
			if got, _ := e.Extra["awsErrorCode"].(string); got != c.awsErr {
				t.Errorf("awsErrorCode %q, want %q", got, c.awsErr)
			}
		})
	}
}

func TestCheckAccessKeyErrors(t *testing.T) {
	key := AccessKey{ID: "AKIAIOSFODNN7EXAMPLE", Secret: testSecret}
	cases := []struct {
		name   string
		err    error
		kind   fault.Kind
		code   string
		awsErr string
	}{
		{"unknown key", apiError("InvalidClientTokenId", smithy.FaultClient), fault.Unprocessable, "credentials_invalid", "InvalidClientTokenId"},
		{"wrong secret", apiError("SignatureDoesNotMatch", smithy.FaultClient), fault.Unprocessable, "credentials_invalid", "SignatureDoesNotMatch"},
		{"throttled", apiError("Throttling", smithy.FaultClient), fault.Unavailable, "provider_unavailable", "Throttling"},
		{"server error", apiError("InternalFailure", smithy.FaultServer), fault.Unavailable, "provider_unavailable", "InternalFailure"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var region string
			f := &fakeSTS{getCallerIdentity: func(_ *sts.GetCallerIdentityInput, o sts.Options) (*sts.GetCallerIdentityOutput, error) {
				got, err := o.Credentials.Retrieve(context.Background())
				if err != nil || got.AccessKeyID != key.ID || got.SecretAccessKey != key.Secret || got.SessionToken != "" {
					t.Error("GetCallerIdentity is not signed with the customer's key")
				}
				region = o.Region
				return nil, c.err
			}}
			_, err := fakeChecker(t, f).CheckAccessKey(context.Background(), key, InRegion("us-gov-west-1"))
			e := wantFault(t, err, c.kind, c.code)
			if got, _ := e.Extra["awsErrorCode"].(string); got != c.awsErr {
				t.Errorf("awsErrorCode %q, want %q", got, c.awsErr)
			}
			if region != "us-gov-west-1" {
				t.Errorf("sent to region %q", region)
			}
			if c.kind == fault.Unavailable && e.RetryAfter != 2 {
				t.Errorf("retry after %d", e.RetryAfter)
			}
			if c.code == "credentials_invalid" && !strings.Contains(e.Detail, "AKIA…MPLE") {
				t.Errorf("detail %q does not name the masked key", e.Detail)
			}
			if !errors.Is(err, c.err) {
				t.Error("the SDK error is not wrapped")
			}
		})
	}
}

// Inputs AWS would refuse are refused before any call (the fake panics if
// called).
func TestCheckInputs(t *testing.T) {
	ctx := context.Background()
	c := fakeChecker(t, &fakeSTS{})
	for name, key := range map[string]AccessKey{
		"empty secret":    {ID: "AKIAIOSFODNN7EXAMPLE"},
		"empty id":        {Secret: testSecret},
		"lower case id":   {ID: "akiaiosfodnn7example", Secret: testSecret},
		"secret as id":    {ID: testSecret, Secret: testSecret},
		"temporary key":   {ID: "ASIAIOSFODNN7EXAMPLE", Secret: testSecret},
		"secret with eol": {ID: "AKIAIOSFODNN7EXAMPLE", Secret: testSecret + "\n"},
	} {
		_, err := c.CheckAccessKey(ctx, key)
		if e := wantFault(t, err, fault.Unprocessable, "credentials_invalid"); e.Extra["awsErrorCode"] != nil {
			t.Errorf("%s: awsErrorCode set without AWS", name)
		}
	}

	const role = "arn:aws:iam::111122223333:role/dflow"
	// Not a role (and not quoted back: it might be anything pasted).
	_, err := c.CheckRole(ctx, "arn:aws:iam::111122223333:user/dflow-s3cr3t", testExternalID, "dflow-s")
	wantFault(t, err, fault.Unprocessable, "credentials_invalid")
	// A GovCloud role can't be assumed from the commercial partition.
	_, err = c.CheckRole(ctx, "arn:aws-us-gov:iam::111122223333:role/dflow", testExternalID, "dflow-s")
	e := wantFault(t, err, fault.Unprocessable, "credentials_invalid")
	if !strings.Contains(e.Detail, "aws-us-gov") {
		t.Errorf("detail %q", e.Detail)
	}
	// dFlow's own inputs being wrong is a bug: internal, and the external id
	// is not quoted.
	for _, bad := range []struct{ externalID, session string }{
		{"ext id with spaces s3cr3t", "dflow-s"},
		{testExternalID, "bad session name"},
		{testExternalID, strings.Repeat("s", 65)},
	} {
		_, err := c.CheckRole(ctx, role, bad.externalID, bad.session)
		if err == nil || fault.KindOf(err) != fault.Internal || strings.Contains(err.Error(), bad.externalID) {
			t.Errorf("%q/%q: %v", bad.externalID, bad.session, err)
		}
	}
	for _, d := range []time.Duration{time.Minute, 13 * time.Hour} {
		if _, err := c.AssumeRole(ctx, role, testExternalID, "dflow-s", d); err == nil || fault.KindOf(err) != fault.Internal {
			t.Errorf("duration %s: %v", d, err)
		}
	}
}

// stsErrorServer answers every STS call with an awsQuery error.
func stsErrorServer(t *testing.T, status int, code string) (*httptest.Server, *atomic.Int32) {
	t.Helper()
	var hits atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		w.Header().Set("Content-Type", "text/xml")
		w.WriteHeader(status)
		_, _ = w.Write([]byte(`<ErrorResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><Error><Type>Sender</Type><Code>` + code + `</Code><Message>from the fake</Message></Error><RequestId>r-1</RequestId></ErrorResponse>`))
	}))
	t.Cleanup(srv.Close)
	return srv, &hits
}

// fastRetryConfig is an SDK config for url whose standard retryer does not
// wait between attempts.
func fastRetryConfig(url string) aws.Config {
	return aws.Config{
		Region:       "us-east-1",
		BaseEndpoint: aws.String(url),
		Credentials:  credentials.NewStaticCredentialsProvider("AKIADFLOWOWNKEY00000", "dflow-own-s3cr3t", ""),
		Retryer: func() aws.Retryer {
			return retry.NewStandard(func(o *retry.StandardOptions) {
				o.Backoff = retry.BackoffDelayerFunc(func(int, error) (time.Duration, error) { return 0, nil })
				o.RateLimiter = ratelimit.None
			})
		},
	}
}

// Through the real client and the SDK's standard retryer: transient errors
// are retried as configured, then reported as provider_unavailable; a
// rejection is not retried.
func TestRetriesThenUnavailable(t *testing.T) {
	key := AccessKey{ID: "AKIAIOSFODNN7EXAMPLE", Secret: testSecret}
	cases := []struct {
		name     string
		status   int
		code     string
		attempts int
		wantHits int32
		wantCode string
	}{
		{"throttled, 3 attempts", 400, "Throttling", 3, 3, "provider_unavailable"},
		{"throttled, 1 attempt", 400, "Throttling", 1, 1, "provider_unavailable"},
		{"request limit", 400, "RequestLimitExceeded", 2, 2, "provider_unavailable"},
		{"service unavailable", 503, "ServiceUnavailable", 3, 3, "provider_unavailable"},
		{"rejected key", 403, "InvalidClientTokenId", 3, 1, "credentials_invalid"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			srv, hits := stsErrorServer(t, c.status, c.code)
			checker := newChecker(t, fastRetryConfig(srv.URL), WithMaxAttempts(c.attempts))
			_, err := checker.CheckAccessKey(context.Background(), key)
			noSecret(t, err, "dflow-own-s3cr3t")
			if !fault.Is(err, c.wantCode) {
				t.Fatalf("want %s, got %v", c.wantCode, err)
			}
			if n := hits.Load(); n != c.wantHits {
				t.Errorf("%d attempts, want %d", n, c.wantHits)
			}
		})
	}
}

func TestUnreachable(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	url := srv.URL
	srv.Close() // nothing listens there any more
	c := newChecker(t, fastRetryConfig(url), WithMaxAttempts(2))
	_, err := c.CheckAccessKey(context.Background(), AccessKey{ID: "AKIAIOSFODNN7EXAMPLE", Secret: testSecret})
	wantFault(t, err, fault.Unavailable, "provider_unavailable")

	ctx, cancel := context.WithTimeout(context.Background(), time.Millisecond)
	defer cancel()
	release := make(chan struct{})
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-release:
		}
	}))
	defer slow.Close()
	defer close(release) // before Close, which waits for the handler
	c = newChecker(t, fastRetryConfig(slow.URL), WithMaxAttempts(1))
	_, err = c.CheckRole(ctx, "arn:aws:iam::111122223333:role/dflow", testExternalID, "dflow-s")
	wantFault(t, err, fault.Unavailable, "provider_unavailable")
}

func TestSessionName(t *testing.T) {
	long := strings.Repeat("r", 80)
	cases := []struct{ prefix, requestID, want string }{
		{"dflow-check", "JxM7bhW0IAMEV-g=", "dflow-check-JxM7bhW0IAMEV-g="},
		{"dflow", "", "dflow"},
		{"", "req 1/2", "dflow-req-1-2"},
		{"d", "", "d-dflow"},
		{"dflöw", "ab", "dfl-w-ab"},
		{strings.Repeat("p", 70), "0d6c3b0f-0c39-4a4e-8f55-2b1f3d2c9a10", strings.Repeat("p", 27) + "-0d6c3b0f-0c39-4a4e-8f55-2b1f3d2c9a10"},
	}
	for _, c := range cases {
		if got := SessionName(c.prefix, c.requestID); got != c.want {
			t.Errorf("SessionName(%q, %q) = %q, want %q", c.prefix, c.requestID, got, c.want)
		}
	}
	// A request id too long to fit keeps its start and a hash of the whole.
	a, b := SessionName("dflow", long+"a"), SessionName("dflow", long+"b")
	if a == b || len(a) != 64 || !strings.HasPrefix(a, "d-rrrr") {
		t.Errorf("long ids: %q %q", a, b)
	}
	for _, c := range append(cases, struct{ prefix, requestID, want string }{"", long, ""}) {
		if got := SessionName(c.prefix, c.requestID); !sessionNamePattern.MatchString(got) {
			t.Errorf("SessionName(%q, %q) = %q is not a valid role session name", c.prefix, c.requestID, got)
		}
	}
}

func TestPartition(t *testing.T) {
	for region, want := range map[string]string{
		"us-east-1": "aws", "eu-central-2": "aws", "us-gov-west-1": "aws-us-gov", "cn-north-1": "aws-cn",
		"cn-northwest-1": "aws-cn", "us-iso-east-1": "aws-iso", "us-isob-east-1": "aws-iso-b", "eusc-de-east-1": "aws-eusc",
	} {
		if got := partitionOf(region); got != want {
			t.Errorf("partitionOf(%s) = %s, want %s", region, got, want)
		}
	}
}
