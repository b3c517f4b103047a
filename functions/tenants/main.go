// TenantsFunction serves organisations, their members, roles and audit trail.
package main

import (
	"github.com/dflow-sh/cloud-accounts/shared/api"
	"github.com/dflow-sh/cloud-accounts/shared/platform"
)

func main() {
	platform.Serve(func(p *platform.Platform) ([]api.Route, error) { return routes(p), nil })
}
