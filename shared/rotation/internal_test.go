package rotation

import (
	"sort"
	"testing"
	"time"

	"github.com/dflow-sh/cloud-accounts/shared/ids"
)

func TestNewIDSortsByTime(t *testing.T) {
	t0 := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	var got []string
	for i := range 50 {
		got = append(got, NewID(t0.Add(time.Duration(i)*time.Millisecond*37)))
	}
	if !sort.StringsAreSorted(got) {
		t.Fatalf("not sorted: %v", got)
	}
	for _, id := range append(got, idForToken("x")) {
		if !ids.Valid(ids.Rotation, id) {
			t.Fatalf("invalid id %s", id)
		}
	}
}

func TestParseSecretID(t *testing.T) {
	for _, c := range []struct{ in, org, link, name string }{
		{"dflow/s/orgs/org_a/accounts/acc_b", "org_a", "acc_b", "dflow/s/orgs/org_a/accounts/acc_b"},
		{"arn:aws:secretsmanager:us-east-1:123456789012:secret:dflow/s/orgs/org_a/accounts/acc_b-AbC123", "org_a", "acc_b", "dflow/s/orgs/org_a/accounts/acc_b"},
		{"dflow/s/orgs/org_a/other/acc_b", "", "", ""},
		{"arn:aws:secretsmanager:us-east-1:1:secret:x", "", "", ""},
	} {
		org, link, name, ok := parseSecretID(c.in)
		if org != c.org || link != c.link || (ok && name != c.name) || ok != (c.org != "") {
			t.Errorf("%s: %s %s %s %v", c.in, org, link, name, ok)
		}
	}
}

func TestUserFromARN(t *testing.T) {
	for in, want := range map[string]string{
		"arn:aws:iam::123456789012:user/alice":          "alice",
		"arn:aws-us-gov:iam::123456789012:user/ops/bob": "bob",
		"arn:aws:iam::123456789012:role/x":              "",
		"arn:aws:sts::123456789012:assumed-role/x/y":    "",
		"not an arn": "",
	} {
		if got, _ := userFromARN(in); got != want {
			t.Errorf("%s: %q", in, got)
		}
	}
}
