package vault

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/ratelimit"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/aws/smithy-go"

	"github.com/dflow-sh/cloud-accounts/shared/fault"
	"github.com/dflow-sh/cloud-accounts/shared/ids"
	"github.com/dflow-sh/cloud-accounts/shared/motoserver"
)

func TestMain(m *testing.M) { motoserver.Main(m) }

// Secret values the tests store. No test output may contain them; the
// package's check greps `go test -v` output for the "s3cr3t" marker.
const (
	valueA = `{"accessKeyId":"AKIAVAULTTESTA000001","secretAccessKey":"vault-s3cr3t-value-A"}`
	valueB = `{"accessKeyId":"AKIAVAULTTESTB000002","secretAccessKey":"vault-s3cr3t-value-B"}`
	valueC = `{"accessKeyId":"AKIAVAULTTESTC000003","secretAccessKey":"vault-s3cr3t-value-C"}`
)

func newVault(t *testing.T) (*Vault, *secretsmanager.Client) {
	t.Helper()
	cfg := motoserver.TestConfig(t)
	v, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return v, secretsmanager.NewFromConfig(cfg)
}

// secretName is unique per call: the moto server is shared by every test
// in the process and never forgets a name scheduled for deletion.
func secretName(t *testing.T) string {
	t.Helper()
	return "test/vault/" + ids.New("acc")
}

// noSecret fails the test if err's text carries a stored value.
func noSecret(t *testing.T, err error) {
	t.Helper()
	if err == nil {
		return
	}
	for _, v := range []string{valueA, valueB, valueC, "s3cr3t"} {
		if strings.Contains(err.Error(), v) {
			t.Fatalf("error text carries a secret value (%d chars of error)", len(err.Error()))
		}
	}
}

func wantCode(t *testing.T, err error, kind fault.Kind, code string) *fault.Error {
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

func mustCreate(t *testing.T, v *Vault, name, value string) string {
	t.Helper()
	arn, err := v.Create(context.Background(), name, []byte(value), nil)
	if err != nil {
		noSecret(t, err)
		t.Fatalf("create: %v", err)
	}
	return arn
}

func mustPut(t *testing.T, v *Vault, name, value string) string {
	t.Helper()
	version, err := v.Put(context.Background(), name, []byte(value))
	if err != nil {
		noSecret(t, err)
		t.Fatalf("put: %v", err)
	}
	return version
}

// wantCurrent checks the AWSCURRENT value without printing it.
func wantCurrent(t *testing.T, v *Vault, name, value, version string) {
	t.Helper()
	got, gotVersion, err := v.Current(context.Background(), name)
	if err != nil {
		noSecret(t, err)
		t.Fatalf("current: %v", err)
	}
	if string(got) != value {
		t.Fatalf("current value is not the one expected (%d bytes, want %d)", len(got), len(value))
	}
	if version != "" && gotVersion != version {
		t.Fatalf("current version %s, want %s", gotVersion, version)
	}
}

// wantStages compares labels per version, ignoring label order.
func wantStages(t *testing.T, v *Vault, name string, want map[string][]string) {
	t.Helper()
	got, err := v.Stages(context.Background(), name)
	if err != nil {
		t.Fatalf("stages: %v", err)
	}
	norm := func(m map[string][]string) string {
		var parts []string
		for id, labels := range m {
			l := slices.Clone(labels)
			slices.Sort(l)
			parts = append(parts, id+"="+strings.Join(l, "+"))
		}
		slices.Sort(parts)
		return strings.Join(parts, " ")
	}
	if norm(got) != norm(want) {
		t.Fatalf("stages:\n got %s\nwant %s", norm(got), norm(want))
	}
}

func TestCreateAndCurrent(t *testing.T) {
	ctx := context.Background()
	v, sm := newVault(t)
	name := secretName(t)
	arn, err := v.Create(ctx, name, []byte(valueA), map[string]string{"dflow:org": "org_1", "dflow:account": "acc_1"})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(arn, "arn:aws:secretsmanager:us-east-1:") || !strings.Contains(arn, ":secret:"+name+"-") {
		t.Errorf("arn %s", arn)
	}
	value, version, err := v.Current(ctx, name)
	if err != nil {
		t.Fatal(err)
	}
	if string(value) != valueA {
		t.Error("current value differs from the one created")
	}
	wantStages(t, v, name, map[string][]string{version: {StageCurrent}})
	// The version id is the token Create derived from the name.
	if version != RequestToken("create", name) {
		t.Errorf("version %s, want the name-derived token", version)
	}

	d, err := sm.DescribeSecret(ctx, &secretsmanager.DescribeSecretInput{SecretId: aws.String(name)})
	if err != nil {
		t.Fatal(err)
	}
	tags := map[string]string{}
	for _, tg := range d.Tags {
		tags[aws.ToString(tg.Key)] = aws.ToString(tg.Value)
	}
	if tags["dflow:org"] != "org_1" || tags["dflow:account"] != "acc_1" {
		t.Errorf("tags %v", tags)
	}
}

func TestCreateRetryIsIdempotent(t *testing.T) {
	ctx := context.Background()
	v, _ := newVault(t)
	name := secretName(t)
	arn := mustCreate(t, v, name, valueA)

	// A retry of the same create (same value) succeeds with the same secret.
	again, err := v.Create(ctx, name, []byte(valueA), nil)
	if err != nil {
		t.Fatalf("retried create: %v", err)
	}
	if again != arn {
		t.Errorf("retried create gave %s, want %s", again, arn)
	}
	// Another value under the same name is a conflict...
	_, err = v.Create(ctx, name, []byte(valueB), nil)
	wantCode(t, err, fault.Conflict, "secret_exists")
	// ...and so is any value with a token of the caller's own.
	_, err = v.CreateWithToken(ctx, name, []byte(valueA), nil, RequestToken("request", "req-1"))
	wantCode(t, err, fault.Conflict, "secret_exists")
	wantCurrent(t, v, name, valueA, "")
}

func TestPutMovesCurrentToPrevious(t *testing.T) {
	v, _ := newVault(t)
	name := secretName(t)
	mustCreate(t, v, name, valueA)
	_, first, _ := v.Current(context.Background(), name)

	second := mustPut(t, v, name, valueB)
	wantStages(t, v, name, map[string][]string{first: {StagePrevious}, second: {StageCurrent}})
	wantCurrent(t, v, name, valueB, second)

	third := mustPut(t, v, name, valueC)
	// AWSPREVIOUS moves on; the oldest version keeps no label.
	wantStages(t, v, name, map[string][]string{first: {}, second: {StagePrevious}, third: {StageCurrent}})
	wantCurrent(t, v, name, valueC, third)
}

func TestPromoteRollsBackAPut(t *testing.T) {
	ctx := context.Background()
	v, _ := newVault(t)
	name := secretName(t)
	mustCreate(t, v, name, valueA)
	_, first, _ := v.Current(ctx, name)
	second := mustPut(t, v, name, valueB)

	if err := v.Promote(ctx, name, first); err != nil {
		t.Fatal(err)
	}
	wantStages(t, v, name, map[string][]string{first: {StageCurrent}, second: {StagePrevious}})
	// Current passes the stage explicitly, so moto's stale default version
	// does not show here.
	wantCurrent(t, v, name, valueA, first)

	// Promoting the current version again changes nothing.
	if err := v.Promote(ctx, name, first); err != nil {
		t.Fatal(err)
	}
	wantStages(t, v, name, map[string][]string{first: {StageCurrent}, second: {StagePrevious}})

	// Not exercised here: a Put after a Promote. moto's Promote leaves its
	// internal default version behind, so the next Put relabels that one
	// AWSPREVIOUS and two versions end up AWSCURRENT (AWS keeps one).

	err := v.Promote(ctx, name, "00000000-0000-0000-0000-000000000000")
	wantCode(t, err, fault.NotFound, "secret_version_not_found")
}

func TestPutPendingIsIdempotentPerToken(t *testing.T) {
	ctx := context.Background()
	v, _ := newVault(t)
	name := secretName(t)
	mustCreate(t, v, name, valueA)
	_, first, _ := v.Current(ctx, name)

	token := RequestToken("rotation", "rot_1")
	pending, err := v.PutPending(ctx, name, []byte(valueB), token)
	if err != nil {
		t.Fatal(err)
	}
	if pending != token {
		t.Errorf("pending version %s, want the token %s", pending, token)
	}
	again, err := v.PutPending(ctx, name, []byte(valueB), token)
	if err != nil {
		t.Fatalf("repeated put pending: %v", err)
	}
	if again != pending {
		t.Errorf("repeated put pending made version %s, want %s", again, pending)
	}
	// AWSCURRENT did not move.
	wantStages(t, v, name, map[string][]string{first: {StageCurrent}, pending: {StagePending}})
	wantCurrent(t, v, name, valueA, first)

	for _, ref := range []string{StagePending, pending} {
		got, version, err := v.GetVersion(ctx, name, ref)
		if err != nil {
			t.Fatalf("get %s: %v", ref, err)
		}
		if string(got) != valueB || version != pending {
			t.Errorf("get %s: version %s, value is the expected one: %v", ref, version, string(got) == valueB)
		}
	}

	// Finishing the rotation: the pending version becomes current and loses
	// its pending label.
	if err := v.Promote(ctx, name, pending); err != nil {
		t.Fatal(err)
	}
	wantStages(t, v, name, map[string][]string{first: {StagePrevious}, pending: {StageCurrent}})
	wantCurrent(t, v, name, valueB, pending)
	if _, prev, err := v.GetVersion(ctx, name, StagePrevious); err != nil || prev != first {
		t.Errorf("previous: %s, %v", prev, err)
	}

	_, err = v.PutPending(ctx, name, []byte(valueC), "short")
	if err == nil || fault.KindOf(err) != fault.Internal {
		t.Errorf("short token: %v", err)
	}
}

func TestScheduleDeletionThenRestore(t *testing.T) {
	ctx := context.Background()
	v, _ := newVault(t)
	name := secretName(t)
	mustCreate(t, v, name, valueA)

	if err := v.ScheduleDeletion(ctx, name, 7); err != nil {
		t.Fatal(err)
	}
	_, _, err := v.Current(ctx, name)
	wantCode(t, err, fault.Conflict, "secret_state_conflict")
	// A retried delete finds it already scheduled.
	if err := v.ScheduleDeletion(ctx, name, 7); err != nil {
		t.Fatalf("second schedule: %v", err)
	}

	if err := v.Restore(ctx, name); err != nil {
		t.Fatal(err)
	}
	wantCurrent(t, v, name, valueA, "")
}

func TestScheduleDeletionValidatesWindow(t *testing.T) {
	fake := &fakeAPI{} // any call would panic: the window is checked first
	v, err := New(aws.Config{}, WithAPI(fake))
	if err != nil {
		t.Fatal(err)
	}
	for _, days := range []int{0, 6, 31} {
		err := v.ScheduleDeletion(context.Background(), "x", days)
		wantCode(t, err, fault.Invalid, "recovery_window_invalid")
	}
}

func TestPurge(t *testing.T) {
	ctx := context.Background()
	v, _ := newVault(t)

	name := secretName(t)
	mustCreate(t, v, name, valueA)
	if err := v.Purge(ctx, name); err != nil {
		t.Fatal(err)
	}
	_, _, err := v.Current(ctx, name)
	wantCode(t, err, fault.NotFound, "secret_not_found")
	// A repeated rollback learns the secret is gone.
	wantCode(t, v.Purge(ctx, name), fault.NotFound, "secret_not_found")
	// A purged name can be created again (a scheduled deletion would block it).
	mustCreate(t, v, name, valueB)

	used := secretName(t)
	mustCreate(t, v, used, valueA)
	mustPut(t, v, used, valueB)
	wantCode(t, v.Purge(ctx, used), fault.PreconditionFailed, "secret_in_use")
	wantCurrent(t, v, used, valueB, "")
}

func TestNotFound(t *testing.T) {
	ctx := context.Background()
	v, _ := newVault(t)
	name := secretName(t)

	_, _, err := v.Current(ctx, name)
	wantCode(t, err, fault.NotFound, "secret_not_found")
	_, err = v.Put(ctx, name, []byte(valueA))
	wantCode(t, err, fault.NotFound, "secret_not_found")
	_, err = v.Stages(ctx, name)
	wantCode(t, err, fault.NotFound, "secret_not_found")
	wantCode(t, v.Promote(ctx, name, RequestToken("x")), fault.NotFound, "secret_not_found")
	wantCode(t, v.ScheduleDeletion(ctx, name, 7), fault.NotFound, "secret_not_found")
	wantCode(t, v.Restore(ctx, name), fault.NotFound, "secret_not_found")

	mustCreate(t, v, name, valueA)
	_, _, err = v.GetVersion(ctx, name, RequestToken("no such version"))
	wantCode(t, err, fault.NotFound, "secret_not_found")
	_, _, err = v.GetVersion(ctx, name, StagePending)
	wantCode(t, err, fault.NotFound, "secret_not_found")
}

func TestValueMustBeJSON(t *testing.T) {
	v, _ := newVault(t)
	_, err := v.Create(context.Background(), secretName(t), []byte("vault-s3cr3t-not-json"), nil)
	if err == nil || fault.KindOf(err) != fault.Internal {
		t.Fatalf("want an internal error, got %v", err)
	}
	noSecret(t, err)
}

// fakeAPI fails every call it implements with err; any other call reaches
// the nil embedded API and panics.
type fakeAPI struct {
	API
	err   error
	calls atomic.Int32
}

func (f *fakeAPI) fail() error { f.calls.Add(1); return f.err }

func (f *fakeAPI) CreateSecret(context.Context, *secretsmanager.CreateSecretInput, ...func(*secretsmanager.Options)) (*secretsmanager.CreateSecretOutput, error) {
	return nil, f.fail()
}

func (f *fakeAPI) PutSecretValue(context.Context, *secretsmanager.PutSecretValueInput, ...func(*secretsmanager.Options)) (*secretsmanager.PutSecretValueOutput, error) {
	return nil, f.fail()
}

func (f *fakeAPI) GetSecretValue(context.Context, *secretsmanager.GetSecretValueInput, ...func(*secretsmanager.Options)) (*secretsmanager.GetSecretValueOutput, error) {
	return nil, f.fail()
}

func (f *fakeAPI) DescribeSecret(context.Context, *secretsmanager.DescribeSecretInput, ...func(*secretsmanager.Options)) (*secretsmanager.DescribeSecretOutput, error) {
	return nil, f.fail()
}

func TestErrorTranslation(t *testing.T) {
	ctx := context.Background()
	apiErr := func(code string) error {
		return &smithy.OperationError{ServiceID: "Secrets Manager", OperationName: "X",
			Err: &smithy.GenericAPIError{Code: code, Message: "message from AWS"}}
	}
	cases := []struct {
		name string
		err  error
		kind fault.Kind
		code string
	}{
		{"throttling", apiErr("ThrottlingException"), fault.Unavailable, "secrets_unavailable"},
		{"throttling after retries", &retry.MaxAttemptsError{Attempt: 3, Err: apiErr("ThrottlingException")}, fault.Unavailable, "secrets_unavailable"},
		{"internal service error", apiErr("InternalServiceError"), fault.Unavailable, "secrets_unavailable"},
		{"deadline", fmt.Errorf("send: %w", context.DeadlineExceeded), fault.Unavailable, "secrets_unavailable"},
		{"connection refused", &smithy.OperationError{Err: &url.Error{Op: "Post", Err: &net.OpError{Op: "dial", Err: errors.New("connection refused")}}}, fault.Unavailable, "secrets_unavailable"},
		{"dns", &smithy.OperationError{Err: &url.Error{Op: "Post", Err: &net.DNSError{Err: "no such host", IsNotFound: true}}}, fault.Unavailable, "secrets_unavailable"},
		{"access denied", apiErr("AccessDeniedException"), fault.Internal, "secrets_access_denied"},
		{"not found", apiErr("ResourceNotFoundException"), fault.NotFound, "secret_not_found"},
		{"deleted", apiErr("InvalidRequestException"), fault.Conflict, "secret_state_conflict"},
		{"kms", apiErr("DecryptionFailure"), fault.Internal, "secrets_error"},
		{"canceled", fmt.Errorf("send: %w", context.Canceled), fault.Internal, "secrets_error"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			v, err := New(aws.Config{}, WithAPI(&fakeAPI{err: c.err}))
			if err != nil {
				t.Fatal(err)
			}
			_, _, err = v.Current(ctx, "n")
			e := wantCode(t, err, c.kind, c.code)
			if c.kind == fault.Unavailable && e.RetryAfter != 1 {
				t.Errorf("retry after %d", e.RetryAfter)
			}
			if !errors.Is(err, c.err) {
				t.Error("the SDK error is not wrapped")
			}
		})
	}

	// The same AWS code means different things to a create and to a put.
	v, _ := New(aws.Config{}, WithAPI(&fakeAPI{err: apiErr("ResourceExistsException")}))
	_, err := v.Create(ctx, "n", []byte(valueA), nil)
	wantCode(t, err, fault.Conflict, "secret_exists")
	_, err = v.PutPending(ctx, "n", []byte(valueA), RequestToken("t"))
	wantCode(t, err, fault.Conflict, "secret_version_exists")
}

// A throttled Secrets Manager, behind the real client and the SDK's
// standard retryer: the vault reports unavailable after the configured
// number of attempts.
func TestThrottledAfterRetries(t *testing.T) {
	var hits atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		w.Header().Set("Content-Type", "application/x-amz-json-1.1")
		w.Header().Set("X-Amzn-ErrorType", "ThrottlingException")
		w.WriteHeader(http.StatusBadRequest)
		_, _ = w.Write([]byte(`{"__type":"ThrottlingException","message":"Rate exceeded"}`))
	}))
	defer srv.Close()

	cfg := aws.Config{
		Region:       "us-east-1",
		BaseEndpoint: aws.String(srv.URL),
		Credentials:  credentials.NewStaticCredentialsProvider("AKIAVAULTTEST0000000", "vault-s3cr3t-signing-key", ""),
		Retryer: func() aws.Retryer {
			return retry.NewStandard(func(o *retry.StandardOptions) {
				o.Backoff = retry.BackoffDelayerFunc(func(int, error) (time.Duration, error) { return 0, nil })
				o.RateLimiter = ratelimit.None
			})
		},
	}
	v, err := New(cfg, WithMaxAttempts(3))
	if err != nil {
		t.Fatal(err)
	}
	_, _, err = v.Current(context.Background(), "n")
	wantCode(t, err, fault.Unavailable, "secrets_unavailable")
	if n := hits.Load(); n != 3 {
		t.Errorf("%d attempts, want 3", n)
	}
}
