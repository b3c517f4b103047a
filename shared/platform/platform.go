// Package platform builds, once per cold start, what every API function
// shares: configuration, the JSON logger, AWS clients, the table and the
// request pipeline's dependencies.
package platform

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-lambda-go/lambda"
	"github.com/aws/aws-sdk-go-v2/aws"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"

	"github.com/dflow-sh/cloud-accounts/shared/api"
	"github.com/dflow-sh/cloud-accounts/shared/config"
	"github.com/dflow-sh/cloud-accounts/shared/dynamo"
	"github.com/dflow-sh/cloud-accounts/shared/logging"
	"github.com/dflow-sh/cloud-accounts/shared/tenancy"
)

// Platform is what a function's main builds before it starts serving.
type Platform struct {
	Config  config.Config
	AWS     aws.Config
	Logger  *slog.Logger
	Store   *dynamo.Store
	Tenancy *tenancy.Service
	Now     func() time.Time
}

// Load reads the environment and builds the clients. AWS_ENDPOINT_URL, when
// set, points every client at an emulator (the SDK reads it itself).
func Load(ctx context.Context) (*Platform, error) {
	cfg, err := config.Load(os.Getenv)
	if err != nil {
		return nil, err
	}
	awsCfg, err := awsconfig.LoadDefaultConfig(ctx)
	if err != nil {
		return nil, fmt.Errorf("load aws config: %w", err)
	}
	return New(cfg, awsCfg, logging.New(os.Stdout, cfg.LogLevel), time.Now), nil
}

// New assembles a platform from parts; tests use it with an emulator's config.
func New(cfg config.Config, awsCfg aws.Config, logger *slog.Logger, now func() time.Time) *Platform {
	store := dynamo.New(dynamodb.NewFromConfig(awsCfg), cfg.TableName)
	return &Platform{
		Config:  cfg,
		AWS:     awsCfg,
		Logger:  logger,
		Store:   store,
		Tenancy: tenancy.NewService(store, now),
		Now:     now,
	}
}

// Server builds the request pipeline over routes.
func (p *Platform) Server(routes []api.Route) (*api.Server, error) {
	return api.NewServer(api.Deps{
		Authorizer:  p.Tenancy,
		Auditor:     p.Store,
		Idempotency: dynamo.NewIdempotency(p.Store, p.Now),
		Logger:      p.Logger,
		Now:         p.Now,
	}, routes)
}

// Router is what a function serves: its route table.
type Router interface{ Routes() []api.Route }

// RouteList is a Router over a fixed list.
type RouteList []api.Route

// Routes returns the list.
func (l RouteList) Routes() []api.Route { return l }

// Serve is a function's main: it builds the platform once, asks build for
// the function's routes, and serves API Gateway events until the runtime
// stops it. A failure at cold start is logged and exits, so Lambda reports
// an init error instead of serving half-built.
func Serve(build func(*Platform) (Router, error)) {
	ctx := context.Background()
	p, err := Load(ctx)
	if err != nil {
		slog.Error("init", "error", err.Error())
		os.Exit(1)
	}
	r, err := build(p)
	if err == nil {
		var srv *api.Server
		if srv, err = p.Server(r.Routes()); err == nil {
			if j, ok := r.(Scheduled); ok {
				rot, _ := r.(SecretRotator)
				lambda.Start(dispatch(srv, j.Jobs(), rot, p.Logger))
				return
			}
			lambda.Start(srv.Handle)
			return
		}
	}
	p.Logger.Error("init", "error", err.Error())
	os.Exit(1)
}

// Job is a scheduled piece of work; its result is the invocation's answer.
type Job func(ctx context.Context) (any, error)

// Scheduled is a Router that also runs jobs from EventBridge Scheduler,
// whose Input ({"job": "<name>"}) arrives as-is, without an envelope.
type Scheduled interface {
	Router
	Jobs() map[string]Job
}

// SecretRotator answers Secrets Manager's rotation events ({"SecretId",
// "ClientRequestToken", "Step"}), for a function that is a secret's
// rotation function.
type SecretRotator interface {
	RotateSecretStep(ctx context.Context, secretID, token, step string) error
}

// dispatch serves API Gateway events, schedule inputs and, when rot is set,
// Secrets Manager rotation events.
func dispatch(srv *api.Server, jobs map[string]Job, rot SecretRotator, log *slog.Logger) func(context.Context, json.RawMessage) (any, error) {
	return func(ctx context.Context, raw json.RawMessage) (any, error) {
		var probe struct {
			RouteKey string `json:"routeKey"`
			Job      string `json:"job"`
			SecretID string `json:"SecretId"`
			Token    string `json:"ClientRequestToken"`
			Step     string `json:"Step"`
		}
		if err := json.Unmarshal(raw, &probe); err != nil {
			return nil, fmt.Errorf("unreadable event: %w", err)
		}
		if probe.Step != "" && probe.SecretID != "" && rot != nil {
			err := rot.RotateSecretStep(ctx, probe.SecretID, probe.Token, probe.Step)
			if err != nil {
				log.ErrorContext(ctx, "secret rotation step failed", "step", probe.Step, "error", err.Error())
			}
			return nil, err
		}
		// Anything that is not a job is served as an API event (an event
		// without a route gets the pipeline's 404, as elsewhere).
		if probe.RouteKey != "" || probe.Job == "" {
			var e events.APIGatewayV2HTTPRequest
			if err := json.Unmarshal(raw, &e); err != nil {
				return nil, fmt.Errorf("unreadable API Gateway event: %w", err)
			}
			return srv.Handle(ctx, e)
		}
		job, ok := jobs[probe.Job]
		if !ok {
			return nil, fmt.Errorf("unknown job %q", probe.Job)
		}
		start := time.Now()
		out, err := job(ctx)
		attrs := []any{"job", probe.Job, "durationMs", float64(time.Since(start).Microseconds()) / 1000}
		if err != nil {
			log.ErrorContext(ctx, "job failed", append(attrs, "error", err.Error())...)
			return nil, err
		}
		log.InfoContext(ctx, "job", attrs...)
		return out, nil
	}
}
