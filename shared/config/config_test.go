package config

import (
	"strings"
	"testing"
	"time"
)

func TestLoad(t *testing.T) {
	env := map[string]string{"TABLE_NAME": "t", "SECRET_PREFIX": "dflow/x", "STAGE": "dev"}
	c, err := Load(func(k string) string { return env[k] })
	if err != nil {
		t.Fatal(err)
	}
	if c.TableName != "t" || c.SecretPrefix != "dflow/x" || c.Stage != "dev" || c.LogLevel != "INFO" {
		t.Fatalf("config = %+v", c)
	}
}

func TestLoadReportsAllMissing(t *testing.T) {
	_, err := Load(func(string) string { return "" })
	if err == nil {
		t.Fatal("no error for an empty environment")
	}
	for _, name := range []string{"TABLE_NAME", "SECRET_PREFIX", "STAGE"} {
		if !strings.Contains(err.Error(), name) {
			t.Errorf("error %q does not name %s", err, name)
		}
	}
}

func TestOptional(t *testing.T) {
	env := map[string]string{
		"TABLE_NAME": "t", "SECRET_PREFIX": "p", "STAGE": "dev",
		"DFLOW_PRINCIPAL_ARNS": "arn:aws:iam::111122223333:root, arn:aws-us-gov:iam::222233334444:root",
		"SECRET_RECOVERY_DAYS": "14",
	}
	c, err := Load(func(k string) string { return env[k] })
	if err != nil {
		t.Fatal(err)
	}
	if len(c.PrincipalARNs) != 2 || c.PrincipalARNs[1] != "arn:aws-us-gov:iam::222233334444:root" || c.RecoveryDays != 14 {
		t.Fatalf("config = %+v", c)
	}
	env["SECRET_RECOVERY_DAYS"] = "3"
	if _, err := Load(func(k string) string { return env[k] }); err == nil || !strings.Contains(err.Error(), "SECRET_RECOVERY_DAYS") {
		t.Fatalf("bad recovery days: %v", err)
	}
}

func TestRotationGrace(t *testing.T) {
	env := map[string]string{"TABLE_NAME": "t", "SECRET_PREFIX": "p", "STAGE": "dev"}
	c, err := Load(func(k string) string { return env[k] })
	if err != nil || c.RotationGrace != 24*time.Hour {
		t.Fatalf("default grace: %v %v", c.RotationGrace, err)
	}
	env["ROTATION_GRACE"] = "36h"
	if c, err = Load(func(k string) string { return env[k] }); err != nil || c.RotationGrace != 36*time.Hour {
		t.Fatalf("grace: %v %v", c.RotationGrace, err)
	}
	env["ROTATION_GRACE"] = "forever"
	if _, err := Load(func(k string) string { return env[k] }); err == nil || !strings.Contains(err.Error(), "ROTATION_GRACE") {
		t.Fatalf("bad grace: %v", err)
	}
}
