// Command role-template prints the CloudFormation template customers use to
// create the IAM role dFlow assumes, for an operator to publish (one per
// partition) at the URL the stack's SetupTemplateUrl names. The template
// takes the organisation's external id as its ExternalId parameter, which
// quick-create links fill in.
//
//	go run ./cmd/role-template -principal arn:aws:iam::111122223333:root > dflow-role.json
package main

import (
	"flag"
	"fmt"
	"os"

	"github.com/dflow-sh/cloud-accounts/shared/awsperms"
	"github.com/dflow-sh/cloud-accounts/shared/partition"
)

func main() {
	principal := flag.String("principal", "", "the dFlow principal customers' roles trust (an IAM ARN)")
	flag.Parse()
	p, ok := partition.FromARN(*principal)
	if !ok {
		fmt.Fprintln(os.Stderr, "role-template: -principal must be an IAM ARN of a known partition")
		os.Exit(2)
	}
	tpl, err := awsperms.GenericRoleTemplate(p, *principal)
	if err != nil {
		fmt.Fprintln(os.Stderr, "role-template:", err)
		os.Exit(1)
	}
	fmt.Print(tpl)
}
