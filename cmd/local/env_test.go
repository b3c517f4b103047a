package main

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/dflow-sh/cloud-accounts/shared/samtemplate"
)

const envTemplate = `
Globals:
  Function:
    Timeout: 20
    Environment:
      Variables:
        TABLE_NAME: !Ref AppTable
        STAGE: !Ref Stage
        LOG_LEVEL: DEBUG
        PORT_NUMBER: 8080
        ARN_PREFIX: !Sub "arn:aws:secretsmanager:${AWS::Region}:${AWS::AccountId}:secret"
Resources:
  AppTable:
    Type: AWS::DynamoDB::Table
  TenantsFunction:
    Type: AWS::Serverless::Function
    Properties:
      MemorySize: 512
      Environment:
        Variables:
          SECRET_PREFIX: !Sub "${Stage}/secrets"
  OtherFunction:
    Type: AWS::Serverless::Function
`

func writeFile(t *testing.T, name, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestResolveEnv(t *testing.T) {
	tpl, err := samtemplate.Parse([]byte(envTemplate))
	if err != nil {
		t.Fatal(err)
	}
	ef, err := loadEnvFile(writeFile(t, "env.json", `{
		"Parameters": {"TABLE_NAME": "dflow-local", "STAGE": "local", "SECRET_PREFIX": "dflow/local", "NOT_DECLARED": "x"},
		"TenantsFunction": {"STAGE": "tenants-stage", "LOG_LEVEL": 7}
	}`), true)
	if err != nil {
		t.Fatal(err)
	}
	envs, err := resolveEnv(tpl, ef, "eu-west-1")
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]map[string]string{
		"TenantsFunction": {
			"TABLE_NAME": "dflow-local", "STAGE": "tenants-stage", "LOG_LEVEL": "7", "PORT_NUMBER": "8080",
			"ARN_PREFIX": "arn:aws:secretsmanager:eu-west-1:123456789012:secret", "SECRET_PREFIX": "dflow/local",
		},
		"OtherFunction": {
			"TABLE_NAME": "dflow-local", "STAGE": "local", "LOG_LEVEL": "DEBUG", "PORT_NUMBER": "8080",
			"ARN_PREFIX": "arn:aws:secretsmanager:eu-west-1:123456789012:secret",
		},
	}
	if !reflect.DeepEqual(envs, want) {
		t.Errorf("envs = %v\nwant %v", envs, want)
	}

	mem, timeout := functionSettings(tpl, "TenantsFunction")
	if mem != 512 || timeout != 20*time.Second {
		t.Errorf("TenantsFunction settings = %d MB, %s", mem, timeout)
	}
	mem, timeout = functionSettings(tpl, "OtherFunction")
	if mem != 128 || timeout != 20*time.Second {
		t.Errorf("OtherFunction settings = %d MB, %s", mem, timeout)
	}
}

func TestResolveEnvReportsEveryMissingVariable(t *testing.T) {
	tpl, err := samtemplate.Parse([]byte(envTemplate))
	if err != nil {
		t.Fatal(err)
	}
	ef, err := loadEnvFile(writeFile(t, "env.json", `{"Parameters": {"STAGE": "local"}}`), true)
	if err != nil {
		t.Fatal(err)
	}
	_, err = resolveEnv(tpl, ef, "us-east-1")
	if err == nil {
		t.Fatal("want an error")
	}
	for _, want := range []string{"TABLE_NAME of TenantsFunction", "TABLE_NAME of OtherFunction", "SECRET_PREFIX of TenantsFunction", `{"Ref":"AppTable"}`, "env.json"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
	if strings.Contains(err.Error(), "STAGE of") {
		t.Errorf("error names STAGE, which env.json sets: %v", err)
	}
}

func TestLoadEnvFile(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "env.json")
	if _, err := loadEnvFile(missing, false); err != nil {
		t.Errorf("optional missing file: %v", err)
	}
	if _, err := loadEnvFile(missing, true); err == nil {
		t.Error("required missing file: want an error")
	}
	if _, err := loadEnvFile(writeFile(t, "env.json", `{"Parameters": ["x"]}`), true); err == nil {
		t.Error("malformed file: want an error")
	}
	if _, err := loadEnvFile(writeFile(t, "env.json", `{"Parameters": {"X": {"a": 1}}}`), true); err == nil {
		t.Error("object value: want an error")
	}
}
