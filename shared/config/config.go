// Package config reads the environment once, at cold start, into a struct.
package config

import (
	"fmt"
	"slices"
	"strings"
)

// Config is what every function reads from its environment.
type Config struct {
	TableName    string
	SecretPrefix string
	Stage        string
	LogLevel     string
}

// Load reads the environment through getenv (os.Getenv in main), reporting
// every missing variable in one error.
func Load(getenv func(string) string) (Config, error) {
	c := Config{
		TableName:    getenv("TABLE_NAME"),
		SecretPrefix: getenv("SECRET_PREFIX"),
		Stage:        getenv("STAGE"),
		LogLevel:     getenv("LOG_LEVEL"),
	}
	var missing []string
	for name, v := range map[string]string{"TABLE_NAME": c.TableName, "SECRET_PREFIX": c.SecretPrefix, "STAGE": c.Stage} {
		if v == "" {
			missing = append(missing, name)
		}
	}
	if len(missing) > 0 {
		slices.Sort(missing)
		return c, fmt.Errorf("missing environment variables: %s", strings.Join(missing, ", "))
	}
	if c.LogLevel == "" {
		c.LogLevel = "INFO"
	}
	return c, nil
}
