// TenantsFunction serves organisations, their members, roles and audit trail.
package main

import (
	"github.com/dflow-sh/cloud-accounts/shared/platform"
)

func main() {
	platform.Serve(func(p *platform.Platform) (platform.Router, error) { return platform.RouteList(routes(p)), nil })
}
