package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"

	"github.com/dflow-sh/cloud-accounts/shared/dynamo"
	"github.com/dflow-sh/cloud-accounts/shared/motoserver"
)

// Dummy credentials for an emulator; never real ones.
const (
	dummyAccessKeyID     = "AKIALOCALDUMMYKEY000"
	dummySecretAccessKey = "local-dummy-secret-not-a-real-key"
)

// awsBackend is where the functions' AWS calls go.
type awsBackend struct {
	Endpoint string
	// Env is added to every function's environment.
	Env    map[string]string
	Config aws.Config
	// moto is the emulator this process started; nil when it uses another one.
	moto *motoserver.Server
}

func (b *awsBackend) describe() string {
	if b.moto != nil {
		return "moto at " + b.Endpoint + " (started by the local API; its state is lost on exit)"
	}
	return b.Endpoint + " (AWS_ENDPOINT_URL)"
}

// Stop stops moto if this process started it.
func (b *awsBackend) Stop() {
	if b != nil && b.moto != nil {
		b.moto.Stop()
	}
}

// setupAWS uses the endpoint given (AWS_ENDPOINT_URL) or starts moto,
// installing it into .venv first when no moto_server is found.
func setupAWS(ctx context.Context, root, endpoint, region string, parentEnv map[string]string, out *syncWriter, log *slog.Logger) (*awsBackend, error) {
	if endpoint != "" {
		b := &awsBackend{Endpoint: endpoint, Env: map[string]string{"AWS_ENDPOINT_URL": endpoint, "AWS_REGION": region}}
		opts := []func(*config.LoadOptions) error{config.WithRegion(region), config.WithBaseEndpoint(endpoint)}
		keyID, secret, session := parentEnv["AWS_ACCESS_KEY_ID"], parentEnv["AWS_SECRET_ACCESS_KEY"], parentEnv["AWS_SESSION_TOKEN"]
		if keyID == "" && parentEnv["AWS_PROFILE"] == "" {
			// An emulator takes any key; give it one rather than fail for want of credentials.
			keyID, secret, session = dummyAccessKeyID, dummySecretAccessKey, ""
			b.Env["AWS_ACCESS_KEY_ID"], b.Env["AWS_SECRET_ACCESS_KEY"] = keyID, secret
		}
		if keyID != "" {
			// The functions' environment, not this process's, is the one to mirror.
			opts = append(opts, config.WithCredentialsProvider(credentials.NewStaticCredentialsProvider(keyID, secret, session)))
		}
		cfg, err := config.LoadDefaultConfig(ctx, opts...)
		if err != nil {
			return nil, fmt.Errorf("aws config for %s: %w", endpoint, err)
		}
		b.Config = cfg
		return b, nil
	}

	if _, err := motoserver.Binary(); errors.Is(err, motoserver.ErrNotInstalled) {
		if err := installMoto(ctx, root, out); err != nil {
			return nil, err
		}
	}
	srv, err := motoserver.Start(ctx, motoserver.Options{
		Env: motoserver.DefaultEnv,
		Log: &lineWriter{out: out, prefix: "[moto] ", skip: motoNoise.Match},
	})
	if err != nil {
		return nil, fmt.Errorf("start moto: %w", err)
	}
	cfg, err := srv.Config(ctx, region)
	if err != nil {
		srv.Stop()
		return nil, fmt.Errorf("aws config for moto: %w", err)
	}
	log.Info("moto started", "url", srv.URL)
	return &awsBackend{
		Endpoint: srv.URL,
		moto:     srv,
		Config:   cfg,
		Env: map[string]string{
			"AWS_ENDPOINT_URL":             srv.URL,
			"AWS_REGION":                   region,
			"AWS_ACCESS_KEY_ID":            dummyAccessKeyID,
			"AWS_SECRET_ACCESS_KEY":        dummySecretAccessKey,
			"AWS_SESSION_TOKEN":            "",
			"AWS_PROFILE":                  "",
			"AWS_EC2_METADATA_DISABLED":    "true",
			"AWS_CONFIG_FILE":              "/dev/null",
			"AWS_SHARED_CREDENTIALS_FILE":  "/dev/null",
			"AWS_ACCOUNT_ID_ENDPOINT_MODE": "disabled",
			// moto answers unimplemented calls with a 500 the SDK would retry.
			"AWS_MAX_ATTEMPTS": "1",
		},
	}, nil
}

// motoNoise matches the lines of moto's web server that only distract here:
// one per request, and its banner about being a development server.
var motoNoise = regexp.MustCompile(`^\S+ - - \[[^\]]*\] "|development server|Press CTRL\+C to quit`)

// installMoto makes .venv with the pinned moto from requirements-dev.txt,
// printing each step.
func installMoto(ctx context.Context, root string, out io.Writer) error {
	req := filepath.Join(root, "requirements-dev.txt")
	if _, err := os.Stat(req); err != nil {
		return fmt.Errorf("moto_server not found and %s is missing: install moto (pip install 'moto[server]'), set MOTO_SERVER to its path, or set AWS_ENDPOINT_URL to a running emulator", req)
	}
	fmt.Fprintln(out, "moto_server not found: installing it into .venv from requirements-dev.txt")
	steps := [][]string{}
	if _, err := os.Stat(filepath.Join(root, ".venv", "bin", "pip")); err != nil {
		steps = append(steps, []string{"python3", "-m", "venv", ".venv"})
	}
	steps = append(steps, []string{filepath.Join(".venv", "bin", "pip"), "install", "-r", "requirements-dev.txt"})
	for _, args := range steps {
		fmt.Fprintf(out, "$ %s\n", strings.Join(args, " "))
		bin := args[0]
		if strings.Contains(bin, string(filepath.Separator)) {
			bin = filepath.Join(root, bin)
		}
		cmd := exec.CommandContext(ctx, bin, args[1:]...)
		cmd.Dir = root
		cmd.Stdout, cmd.Stderr = out, out
		if err := cmd.Run(); err != nil {
			return fmt.Errorf("install moto: %s: %w", strings.Join(args, " "), err)
		}
	}
	if _, err := motoserver.Binary(); err != nil {
		return fmt.Errorf("install moto: still not found after pip install: %w", err)
	}
	return nil
}

// ensureTables creates every table the functions are configured with.
func ensureTables(ctx context.Context, cfg aws.Config, envs map[string]map[string]string, log *slog.Logger) error {
	names := map[string]bool{}
	for _, env := range envs {
		if t := env["TABLE_NAME"]; t != "" {
			names[t] = true
		}
	}
	sorted := make([]string, 0, len(names))
	for n := range names {
		sorted = append(sorted, n)
	}
	sort.Strings(sorted)
	client := dynamodb.NewFromConfig(cfg)
	for _, name := range sorted {
		if err := dynamo.EnsureTable(ctx, client, name); err != nil {
			return err
		}
		log.Info("table ready", "table", name)
	}
	return nil
}
