package awsperms

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/dflow-sh/cloud-accounts/shared/partition"
)

func TestRoleTemplate(t *testing.T) {
	for _, p := range partitions(t) {
		t.Run(p.ID, func(t *testing.T) {
			principal := p.ARN("iam", "", "123456789012", "role/dflow-control-plane")
			tpl, err := RoleTemplate(p, principal, "org_abc123")
			if err != nil {
				t.Fatalf("RoleTemplate: %v", err)
			}
			var doc struct {
				Parameters map[string]struct{ Default string }
				Resources  map[string]struct {
					Type       string
					Properties struct {
						RoleName                 map[string]string
						MaxSessionDuration       int
						AssumeRolePolicyDocument struct {
							Statement []struct {
								Principal map[string]string
								Condition map[string]map[string]map[string]string
							}
						}
						Policies []struct {
							PolicyName     string
							PolicyDocument json.RawMessage
						}
					}
				}
				Outputs map[string]struct{ Value map[string][]string }
			}
			if err := json.Unmarshal([]byte(tpl), &doc); err != nil {
				t.Fatalf("template is not JSON: %v", err)
			}
			if doc.Parameters[RoleNameParameter].Default != DefaultRoleName {
				t.Errorf("RoleName default %q", doc.Parameters[RoleNameParameter].Default)
			}
			role := doc.Resources[roleLogicalID]
			if role.Type != "AWS::IAM::Role" || role.Properties.RoleName["Ref"] != RoleNameParameter || role.Properties.MaxSessionDuration != 3600 {
				t.Errorf("role %+v", role)
			}
			trust := role.Properties.AssumeRolePolicyDocument.Statement
			if len(trust) != 1 || trust[0].Condition["StringEquals"]["sts:ExternalId"]["Ref"] != ExternalIDParameter || trust[0].Principal["AWS"] != principal {
				t.Errorf("trust policy %+v", trust)
			}
			if doc.Parameters[ExternalIDParameter].Default != "org_abc123" {
				t.Errorf("ExternalId default %q", doc.Parameters[ExternalIDParameter].Default)
			}
			generic, err := GenericRoleTemplate(p, principal)
			if err != nil || strings.Contains(generic, "org_abc123") || !strings.Contains(generic, `"`+ExternalIDParameter+`"`) {
				t.Errorf("generic template: %v", err)
			}
			want, _ := json.Marshal(PermissionsPolicy(p, false))
			if len(role.Properties.Policies) != 1 {
				t.Fatalf("policies %+v", role.Properties.Policies)
			}
			var got bytes.Buffer
			if err := json.Compact(&got, role.Properties.Policies[0].PolicyDocument); err != nil {
				t.Fatal(err)
			}
			if got.String() != string(want) {
				t.Errorf("inline policy\n got %s\nwant %s", got.String(), want)
			}
			if strings.Contains(tpl, `"iam:`) {
				t.Error("the role template grants IAM actions; role links need none")
			}
			if v := doc.Outputs[RoleARNOutput].Value["Fn::GetAtt"]; len(v) != 2 || v[0] != roleLogicalID || v[1] != "Arn" {
				t.Errorf("RoleArn output %v", doc.Outputs)
			}
		})
	}
}

func TestRoleTemplateRejects(t *testing.T) {
	aws, _ := partition.ByID(partition.Standard)
	good := "arn:aws:iam::123456789012:role/dflow"
	tests := []struct {
		name, principal, externalID, errPart string
	}{
		{"other partition", "arn:aws-cn:iam::123456789012:role/dflow", "org_abc", "partition aws"},
		{"not an ARN", "dflow", "org_abc", "not an ARN"},
		{"not IAM", "arn:aws:sts::123456789012:assumed-role/dflow/x", "org_abc", "not an IAM ARN"},
		{"short account", "arn:aws:iam::12345678901:role/dflow", "org_abc", "12-digit"},
		{"group", "arn:aws:iam::123456789012:group/dflow", "org_abc", "role, user or account root"},
		{"empty external ID", good, "", "external ID must be"},
		{"one-char external ID", good, "x", "external ID must be"},
		{"long external ID", good, strings.Repeat("x", 1225), "external ID must be"},
		{"space in external ID", good, "org abc", "external ID may hold"},
		{"quote in external ID", good, `org"abc`, "external ID may hold"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := RoleTemplate(aws, tt.principal, tt.externalID)
			if err == nil || !strings.Contains(err.Error(), tt.errPart) {
				t.Errorf("RoleTemplate(%q, %q) error = %v, want one containing %q", tt.principal, tt.externalID, err, tt.errPart)
			}
		})
	}
	for _, principal := range []string{good, "arn:aws:iam::123456789012:root", "arn:aws:iam::123456789012:user/ci"} {
		if _, err := RoleTemplate(aws, principal, "a:b/c-d_e+f=g,h.i@j"); err != nil {
			t.Errorf("RoleTemplate(%q): %v", principal, err)
		}
	}
}

// cfnLint finds cfn-lint: the project's .venv (made by `make tools`, used by
// CI) first, then PATH.
func cfnLint(t *testing.T) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			break
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("go.mod not found above the test's directory")
		}
		dir = parent
	}
	venv := filepath.Join(dir, ".venv", "bin", "cfn-lint")
	if _, err := os.Stat(venv); err == nil {
		return venv
	}
	if path, err := exec.LookPath("cfn-lint"); err == nil {
		return path
	}
	t.Fatal("cfn-lint not found in .venv/bin or on PATH: run `make tools`")
	return ""
}

// TestTemplatesPassCfnLint lints the role template of every partition, and a
// managed policy holding the full permissions policy (IAM rotation included),
// so cfn-lint also checks every action name against its IAM catalogue.
func TestTemplatesPassCfnLint(t *testing.T) {
	lint := cfnLint(t)
	dir := t.TempDir()
	var files, regions []string
	for _, p := range partitions(t) {
		tpl, err := RoleTemplate(p, p.ARN("iam", "", "123456789012", "role/dflow-control-plane"), "org_abc123")
		if err != nil {
			t.Fatal(err)
		}
		full, err := json.MarshalIndent(map[string]any{
			"AWSTemplateFormatVersion": "2010-09-09",
			"Resources": map[string]any{
				"Policy": map[string]any{
					"Type": "AWS::IAM::ManagedPolicy",
					"Properties": map[string]any{
						"PolicyDocument": PermissionsPolicy(p, true),
						"Users":          []string{"dflow"},
					},
				},
			},
		}, "", "  ")
		if err != nil {
			t.Fatal(err)
		}
		for name, body := range map[string][]byte{"role-" + p.ID + ".json": []byte(tpl), "policy-" + p.ID + ".json": full} {
			f := filepath.Join(dir, name)
			if err := os.WriteFile(f, body, 0o600); err != nil {
				t.Fatal(err)
			}
			files = append(files, f)
		}
		regions = append(regions, p.DefaultRegion)
	}
	args := append(append([]string{"--format", "parseable", "--regions"}, regions...), "--")
	cmd := exec.Command(lint, append(args, files...)...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		var exit *exec.ExitError
		if !errors.As(err, &exit) {
			t.Fatalf("run %s: %v", lint, err)
		}
		const limit = 4000 // cfn-lint lists every valid action on a bad one
		if len(out) > limit {
			out = append(out[:limit], "…"...)
		}
		t.Fatalf("cfn-lint rejects the templates (exit %d):\n%s", exit.ExitCode(), out)
	}
}

func TestQuickCreateURL(t *testing.T) {
	aws, _ := partition.ByID(partition.Standard)
	gov, _ := partition.ByID(partition.GovCloud)
	cn, _ := partition.ByID(partition.China)
	tpl := "https://dflow-templates.s3.amazonaws.com/role.json?v=2&x=a b"
	tests := []struct {
		name      string
		p         partition.Partition
		region    string
		stackName string
		params    map[string]string
		want      string
	}{
		{
			name: "commercial", p: aws, region: "eu-west-1", stackName: "dflow-access",
			params: map[string]string{"RoleName": "dflow-access"},
			want: "https://console.aws.amazon.com/cloudformation/home?region=eu-west-1#/stacks/quickcreate?" +
				"templateURL=https%3A%2F%2Fdflow-templates.s3.amazonaws.com%2Frole.json%3Fv%3D2%26x%3Da%20b" +
				"&stackName=dflow-access&param_RoleName=dflow-access",
		},
		{
			name: "escaping and order", p: gov, region: "us-gov-east-1", stackName: "my stack&co",
			params: map[string]string{"Z": "1+1=2", "A": "a#b/c?d", "Name With Space": "ü"},
			want: "https://console.amazonaws-us-gov.com/cloudformation/home?region=us-gov-east-1#/stacks/quickcreate?" +
				"templateURL=https%3A%2F%2Fdflow-templates.s3.amazonaws.com%2Frole.json%3Fv%3D2%26x%3Da%20b" +
				"&stackName=my%20stack%26co&param_A=a%23b%2Fc%3Fd&param_Name%20With%20Space=%C3%BC&param_Z=1%2B1%3D2",
		},
		{
			name: "default region, no stack name", p: cn,
			want: "https://console.amazonaws.cn/cloudformation/home?region=cn-north-1#/stacks/quickcreate?" +
				"templateURL=https%3A%2F%2Fdflow-templates.s3.amazonaws.com%2Frole.json%3Fv%3D2%26x%3Da%20b",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := QuickCreateURL(tt.p, tt.region, tpl, tt.stackName, tt.params)
			if got != tt.want {
				t.Fatalf("QuickCreateURL\n got %s\nwant %s", got, tt.want)
			}
			// What the console reads back from the fragment.
			u, err := url.Parse(got)
			if err != nil {
				t.Fatal(err)
			}
			_, query, _ := strings.Cut(u.EscapedFragment(), "?")
			q, err := url.ParseQuery(query)
			if err != nil {
				t.Fatal(err)
			}
			if q.Get("templateURL") != tpl || q.Get("stackName") != tt.stackName {
				t.Errorf("fragment decodes to %v", q)
			}
			for k, v := range tt.params {
				if q.Get("param_"+k) != v {
					t.Errorf("param_%s decodes to %q, want %q", k, q.Get("param_"+k), v)
				}
			}
		})
	}
}
