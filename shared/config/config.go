// Package config reads the environment once, at cold start, into a struct.
package config

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Config is what the functions read from their environment.
type Config struct {
	TableName    string
	SecretPrefix string
	Stage        string
	LogLevel     string

	// PrincipalARNs are the dFlow principals customers' roles trust, one per
	// partition (DFLOW_PRINCIPAL_ARNS, comma separated).
	PrincipalARNs []string
	// SetupTemplateURL is where the customer role template is published, for
	// CloudFormation quick-create links (optional).
	SetupTemplateURL string
	// RecoveryDays is how long an unlinked account's secret stays restorable.
	RecoveryDays int
	// RotationGrace is how long a rotated-out key stays (inactive) before
	// it is deleted (ROTATION_GRACE, a Go duration; default 24h).
	RotationGrace time.Duration
}

// Load reads the environment through getenv (os.Getenv in main), reporting
// every missing or malformed variable in one error.
func Load(getenv func(string) string) (Config, error) {
	c := Config{
		TableName:        getenv("TABLE_NAME"),
		SecretPrefix:     getenv("SECRET_PREFIX"),
		Stage:            getenv("STAGE"),
		LogLevel:         getenv("LOG_LEVEL"),
		SetupTemplateURL: getenv("SETUP_TEMPLATE_URL"),
		RecoveryDays:     7,
		RotationGrace:    24 * time.Hour,
	}
	var problems []string
	for name, v := range map[string]string{"TABLE_NAME": c.TableName, "SECRET_PREFIX": c.SecretPrefix, "STAGE": c.Stage} {
		if v == "" {
			problems = append(problems, name+" is missing")
		}
	}
	for _, p := range strings.Split(getenv("DFLOW_PRINCIPAL_ARNS"), ",") {
		if p = strings.TrimSpace(p); p != "" {
			c.PrincipalARNs = append(c.PrincipalARNs, p)
		}
	}
	if s := getenv("SECRET_RECOVERY_DAYS"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 7 || n > 30 {
			problems = append(problems, "SECRET_RECOVERY_DAYS must be a whole number of days from 7 to 30")
		}
		c.RecoveryDays = n
	}
	if s := getenv("ROTATION_GRACE"); s != "" {
		d, err := time.ParseDuration(s)
		if err != nil || d < 0 || d > 30*24*time.Hour {
			problems = append(problems, "ROTATION_GRACE must be a duration from 0s to 720h")
		}
		c.RotationGrace = d
	}
	if len(problems) > 0 {
		slices.Sort(problems)
		return c, fmt.Errorf("environment: %s", strings.Join(problems, "; "))
	}
	if c.LogLevel == "" {
		c.LogLevel = "INFO"
	}
	return c, nil
}
