package apitest

import (
	"context"
	"encoding/json"
	"testing"

	"github.com/aws/aws-sdk-go-v2/feature/dynamodb/attributevalue"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/dflow-sh/cloud-accounts/shared/platform"
	"github.com/dflow-sh/cloud-accounts/shared/tenancy"
)

// SeedOrg creates an organisation owned by admin, adds members with the
// given built-in roles, and a custom role granting nothing held by
// customUser. It returns the organisation's and the custom role's ids.
func SeedOrg(t testing.TB, p *platform.Platform, admin string, members map[string]string, customUser string) (string, string) {
	t.Helper()
	ctx := context.Background()
	svc := p.Tenancy
	org, err := svc.CreateOrg(ctx, admin, "Acme")
	if err != nil {
		t.Fatalf("seed org: %v", err)
	}
	caller, err := svc.MemberRole(ctx, org.ID, admin)
	if err != nil {
		t.Fatalf("seed org: %v", err)
	}
	owner := tenancy.Caller{UserID: admin, Role: caller}
	for user, role := range members {
		if _, _, err := svc.PutMember(ctx, owner, org.ID, user, role, nil); err != nil {
			t.Fatalf("seed member %s: %v", user, err)
		}
	}
	name := "Nothing"
	role, err := svc.CreateRole(ctx, owner, org.ID, tenancy.RoleInput{Name: &name})
	if err != nil {
		t.Fatalf("seed role: %v", err)
	}
	if customUser != "" {
		if _, _, err := svc.PutMember(ctx, owner, org.ID, customUser, role.ID, nil); err != nil {
			t.Fatalf("seed member %s: %v", customUser, err)
		}
	}
	return org.ID, role.ID
}

// Flatten renders DynamoDB items as JSON text per attribute, for tests that
// search every stored byte (e.g. for a secret that must not be there).
func Flatten(items []map[string]types.AttributeValue) []map[string]string {
	out := make([]map[string]string, 0, len(items))
	for _, it := range items {
		m := map[string]string{}
		for k, v := range it {
			var x any
			if err := attributevalue.Unmarshal(v, &x); err != nil {
				m[k] = "<undecodable>"
				continue
			}
			b, _ := json.Marshal(x)
			m[k] = string(b)
		}
		out = append(out, m)
	}
	return out
}
