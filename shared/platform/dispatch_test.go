package platform

import (
	"bytes"
	"context"
	"errors"
	"testing"

	"github.com/aws/aws-lambda-go/events"

	"github.com/dflow-sh/cloud-accounts/shared/api"
	"github.com/dflow-sh/cloud-accounts/shared/audit"
	"github.com/dflow-sh/cloud-accounts/shared/logging"
	"github.com/dflow-sh/cloud-accounts/shared/tenancy"
)

type noAuth struct{}

func (noAuth) MemberRole(context.Context, string, string) (tenancy.Role, error) {
	return tenancy.Role{}, errors.New("unused")
}
func (noAuth) OrgExists(context.Context, string) (bool, error) { return false, nil }

type noAudit struct{}

func (noAudit) Record(context.Context, audit.Event) error { return nil }

type noIdem struct{ api.IdempotencyStore }

type rotator struct{ calls []string }

func (r *rotator) RotateSecretStep(_ context.Context, secretID, token, step string) error {
	r.calls = append(r.calls, secretID+"|"+token+"|"+step)
	if step == "testSecret" {
		return errors.New("new key not working yet")
	}
	return nil
}

func TestDispatch(t *testing.T) {
	srv, err := api.NewServer(api.Deps{Authorizer: noAuth{}, Auditor: noAudit{}, Idempotency: noIdem{}, Logger: logging.New(&bytes.Buffer{}, "INFO")},
		[]api.Route{{Key: "GET /v1/orgs", Permission: api.AnyUser(), Handler: func(context.Context, *api.Request) (*api.Response, error) {
			return api.OK(map[string]string{"ok": "yes"}), nil
		}}})
	if err != nil {
		t.Fatal(err)
	}
	ran := 0
	rot := &rotator{}
	h := dispatch(srv, map[string]Job{"sweep": func(context.Context) (any, error) { ran++; return map[string]int{"checked": 3}, nil }}, rot, logging.New(&bytes.Buffer{}, "INFO"))
	ctx := context.Background()

	out, err := h(ctx, []byte(`{"version":"2.0","routeKey":"GET /v1/orgs","requestContext":{"requestId":"r1","authorizer":{"jwt":{"claims":{"sub":"alice"}}}}}`))
	if resp, ok := out.(events.APIGatewayV2HTTPResponse); err != nil || !ok || resp.StatusCode != 200 {
		t.Fatalf("API event: %#v %v", out, err)
	}
	if out, err = h(ctx, []byte(`{"job":"sweep"}`)); err != nil || ran != 1 || out.(map[string]int)["checked"] != 3 {
		t.Fatalf("job: %v %v", out, err)
	}
	if _, err = h(ctx, []byte(`{"job":"nope"}`)); err == nil {
		t.Fatal("an unknown job ran")
	}
	if _, err = h(ctx, []byte(`{"SecretId":"arn:s","ClientRequestToken":"tok","Step":"createSecret"}`)); err != nil {
		t.Fatal(err)
	}
	// A failing step fails the invocation, so Secrets Manager retries it.
	if _, err = h(ctx, []byte(`{"SecretId":"arn:s","ClientRequestToken":"tok","Step":"testSecret"}`)); err == nil {
		t.Fatal("a failed step succeeded")
	}
	if len(rot.calls) != 2 || rot.calls[0] != "arn:s|tok|createSecret" {
		t.Fatalf("rotator calls %v", rot.calls)
	}
	// Anything else is an API event, answered by the pipeline (404).
	if out, err = h(ctx, []byte(`{}`)); err != nil || out.(events.APIGatewayV2HTTPResponse).StatusCode != 404 {
		t.Fatalf("empty event: %#v %v", out, err)
	}
}
