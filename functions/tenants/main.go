// TenantsFunction serves organisations, their members, roles and audit trail.
package main

import (
	"context"
	"log/slog"
	"os"

	"github.com/aws/aws-lambda-go/lambda"

	"github.com/dflow-sh/cloud-accounts/shared/platform"
)

func main() {
	ctx := context.Background()
	p, err := platform.Load(ctx)
	if err != nil {
		slog.Error("init", "error", err.Error())
		os.Exit(1)
	}
	srv, err := p.Server(routes(p))
	if err != nil {
		p.Logger.Error("init", "error", err.Error())
		os.Exit(1)
	}
	lambda.Start(srv.Handle)
}
