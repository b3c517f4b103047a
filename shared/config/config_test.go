package config

import (
	"strings"
	"testing"
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
