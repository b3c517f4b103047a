package groups

import (
	"fmt"
	"regexp"
	"strings"

	"github.com/dflow-sh/cloud-accounts/shared/fault"
	"github.com/dflow-sh/cloud-accounts/shared/sgrules"
)

// Limits of EC2 security groups (CreateSecurityGroup).
const (
	MaxNameLen        = 255
	MaxDescriptionLen = 255
	// DefaultDescription is the AWS group's description when none is given
	// (EC2 requires one).
	DefaultDescription = "Managed by dFlow"
)

// ec2Allowed is EC2's character set for VPC security group names and
// descriptions: a-zA-Z0-9, spaces and ._-:/()#,@[]+=&;{}!$*
const ec2Allowed = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 ._-:/()#,@[]+=&;{}!$*"

var vpcIDPattern = regexp.MustCompile(`^vpc-[0-9a-f]{8}([0-9a-f]{9})?$`)

type problems []fault.FieldError

func (p *problems) add(field, format string, args ...any) {
	*p = append(*p, fault.FieldError{Field: field, Message: fmt.Sprintf(format, args...)})
}

func (p problems) err() error {
	if len(p) == 0 {
		return nil
	}
	return fault.Validation(p...)
}

func checkEC2Text(p *problems, field, v string, max int) {
	for _, c := range v {
		if !strings.ContainsRune(ec2Allowed, c) {
			p.add(field, "contains %q, which EC2 does not allow (allowed: letters, digits, space and ._-:/()#,@[]+=&;{}!$*)", c)
			return
		}
	}
	if len(v) > max {
		p.add(field, "must be at most %d characters; got %d", max, len(v))
	}
}

func checkName(p *problems, name string) {
	switch {
	case name == "":
		p.add("name", "must be 1 to %d characters", MaxNameLen)
	case strings.TrimSpace(name) != name:
		p.add("name", "must not start or end with spaces")
	case strings.HasPrefix(strings.ToLower(name), "sg-"):
		p.add("name", `must not start with "sg-", which EC2 reserves for group ids`)
	default:
		checkEC2Text(p, "name", name, MaxNameLen)
	}
}

func checkDescription(p *problems, d string) {
	checkEC2Text(p, "description", d, MaxDescriptionLen)
}

// parseDirection parses one rule list, adding its errors to p.
func parseDirection(p *problems, field string, in []sgrules.RuleInput) []sgrules.Rule {
	rules, errs := sgrules.Parse(field, in)
	*p = append(*p, errs...)
	if rules == nil {
		rules = []sgrules.Rule{}
	}
	return rules
}
