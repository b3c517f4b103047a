package awsperms

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strings"

	"github.com/dflow-sh/cloud-accounts/shared/partition"
)

// Names in the role template.
const (
	DefaultRoleName   = "dflow-access"
	RoleNameParameter = "RoleName"
	RoleARNOutput     = "RoleArn"
	// RoleSessionSeconds is the role's MaxSessionDuration: dFlow's sessions
	// are short and refreshed, so an hour (the minimum AWS allows) is enough.
	RoleSessionSeconds = 3600
	inlinePolicyName   = "dflow-access"
	roleLogicalID      = "DflowAccessRole"
)

// External IDs as sts:AssumeRole accepts them.
const (
	minExternalIDLen = 2
	maxExternalIDLen = 1224
)

type cfnTemplate struct {
	AWSTemplateFormatVersion string                  `json:"AWSTemplateFormatVersion"`
	Description              string                  `json:"Description"`
	Parameters               map[string]cfnParameter `json:"Parameters"`
	Resources                map[string]cfnResource  `json:"Resources"`
	Outputs                  map[string]cfnOutput    `json:"Outputs"`
}

type cfnParameter struct {
	Type                  string `json:"Type"`
	Default               string `json:"Default,omitempty"`
	Description           string `json:"Description,omitempty"`
	MinLength             int    `json:"MinLength,omitempty"`
	MaxLength             int    `json:"MaxLength,omitempty"`
	AllowedPattern        string `json:"AllowedPattern,omitempty"`
	ConstraintDescription string `json:"ConstraintDescription,omitempty"`
}

type cfnResource struct {
	Type       string `json:"Type"`
	Properties any    `json:"Properties"`
}

type cfnRoleProperties struct {
	RoleName                 map[string]string `json:"RoleName"`
	Description              string            `json:"Description"`
	MaxSessionDuration       int               `json:"MaxSessionDuration"`
	AssumeRolePolicyDocument any               `json:"AssumeRolePolicyDocument"`
	Policies                 []cfnInlinePolicy `json:"Policies"`
	Tags                     []cfnTag          `json:"Tags"`
}

type cfnInlinePolicy struct {
	PolicyName     string `json:"PolicyName"`
	PolicyDocument Policy `json:"PolicyDocument"`
}

type cfnTag struct {
	Key   string `json:"Key"`
	Value string `json:"Value"`
}

type cfnOutput struct {
	Description string         `json:"Description"`
	Value       map[string]any `json:"Value"`
}

// RoleTemplate returns a CloudFormation template (JSON) that creates, in a
// customer account of partition p, the IAM role dFlow assumes: trusted by
// principalARN with externalID, holding PermissionsPolicy(p, false) inline.
// Its RoleName parameter defaults to DefaultRoleName; its RoleArn output is
// what the customer gives back to dFlow. Because the role is named, the
// stack needs CAPABILITY_NAMED_IAM (the console asks the customer to agree).
//
// The external id is the ExternalId parameter's default, so the template
// works as it is; GenericRoleTemplate leaves it to the stack's parameters.
func RoleTemplate(p partition.Partition, principalARN, externalID string) (string, error) {
	if err := checkExternalID(externalID); err != nil {
		return "", fmt.Errorf("role template: %w", err)
	}
	return roleTemplate(p, principalARN, externalID)
}

// GenericRoleTemplate is RoleTemplate for every organisation: the external
// id comes in as the ExternalId parameter. An operator publishes it (one per
// partition) at the URL quick-create links load, which pass
// param_ExternalId=<the organisation's id>.
func GenericRoleTemplate(p partition.Partition, principalARN string) (string, error) {
	return roleTemplate(p, principalARN, "")
}

// ExternalIDParameter names the template parameter carrying the external id.
const ExternalIDParameter = "ExternalId"

func roleTemplate(p partition.Partition, principalARN, externalID string) (string, error) {
	if err := checkPrincipal(p, principalARN); err != nil {
		return "", fmt.Errorf("role template: %w", err)
	}
	trust := TrustPolicy(p, principalARN, "placeholder")
	// The trust policy's condition refers to the parameter.
	statement := map[string]any{
		"Sid": trust.Statement[0].Sid, "Effect": trust.Statement[0].Effect,
		"Principal": trust.Statement[0].Principal, "Action": trust.Statement[0].Action,
		"Condition": map[string]any{"StringEquals": map[string]any{"sts:ExternalId": map[string]string{"Ref": ExternalIDParameter}}},
	}
	t := cfnTemplate{
		AWSTemplateFormatVersion: "2010-09-09",
		Description:              "IAM role that lets dFlow manage servers in this account (" + p.Name + ").",
		Parameters: map[string]cfnParameter{
			RoleNameParameter: {
				Type:                  "String",
				Default:               DefaultRoleName,
				Description:           "Name of the IAM role dFlow assumes.",
				MinLength:             1,
				MaxLength:             64,
				AllowedPattern:        `^[\w+=,.@-]+$`,
				ConstraintDescription: "1 to 64 letters, digits and +=,.@_-",
			},
			ExternalIDParameter: {
				Type:                  "String",
				Default:               externalID,
				Description:           "Your organisation's external ID, from dFlow's AWS setup page.",
				MinLength:             minExternalIDLen,
				MaxLength:             maxExternalIDLen,
				AllowedPattern:        `^[\w+=,.@:/-]+$`,
				ConstraintDescription: "the external ID shown by dFlow",
			},
		},
		Resources: map[string]cfnResource{
			roleLogicalID: {
				Type: "AWS::IAM::Role",
				Properties: cfnRoleProperties{
					RoleName:                 map[string]string{"Ref": RoleNameParameter},
					Description:              "Assumed by dFlow with an external ID to manage servers.",
					MaxSessionDuration:       RoleSessionSeconds,
					AssumeRolePolicyDocument: map[string]any{"Version": trust.Version, "Statement": []any{statement}},
					Policies: []cfnInlinePolicy{{
						PolicyName:     inlinePolicyName,
						PolicyDocument: PermissionsPolicy(p, false),
					}},
					Tags: []cfnTag{{Key: ManagedTagKey, Value: ManagedTagValue}},
				},
			},
		},
		Outputs: map[string]cfnOutput{
			RoleARNOutput: {
				Description: "ARN of the role; paste it into dFlow.",
				Value:       map[string]any{"Fn::GetAtt": []string{roleLogicalID, "Arn"}},
			},
		},
	}
	b, err := json.MarshalIndent(t, "", "  ")
	if err != nil {
		return "", fmt.Errorf("role template: marshal: %w", err)
	}
	return string(b) + "\n", nil
}

// checkPrincipal accepts an IAM ARN (role, user or account root) of p.
func checkPrincipal(p partition.Partition, arn string) error {
	f := strings.SplitN(arn, ":", 6)
	switch {
	case len(f) != 6 || f[0] != "arn":
		return errors.New("principal is not an ARN")
	case f[1] != p.ID:
		return fmt.Errorf("principal is not in partition %s", p.ID)
	case f[2] != "iam" || f[3] != "" || !partition.ValidAccountID(f[4]):
		return errors.New("principal is not an IAM ARN with a 12-digit account")
	case f[5] != "root" && !strings.HasPrefix(f[5], "role/") && !strings.HasPrefix(f[5], "user/"):
		return errors.New("principal is not an IAM role, user or account root")
	}
	return nil
}

// checkExternalID applies sts:AssumeRole's rule: 2–1224 characters of
// letters, digits and +=,.@:/-_ (no spaces).
func checkExternalID(id string) error {
	if len(id) < minExternalIDLen || len(id) > maxExternalIDLen {
		return fmt.Errorf("external ID must be %d to %d characters", minExternalIDLen, maxExternalIDLen)
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		ok := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte("_+=,.@:/-", c) >= 0
		if !ok {
			return errors.New("external ID may hold only letters, digits and +=,.@:/-_")
		}
	}
	return nil
}

// QuickCreateURL returns the CloudFormation console link that opens the
// create-stack page with templateURL, stackName and parameters filled in:
// https://<console>/cloudformation/home?region=R#/stacks/quickcreate?templateURL=…&stackName=…&param_K=V.
// The console loads templateURL itself, so it must be an S3 URL the
// customer's browser session can read. Parameters come sorted by name; an
// empty region means p.DefaultRegion, an empty stackName is left out.
func QuickCreateURL(p partition.Partition, region, templateURL, stackName string, params map[string]string) string {
	if region == "" {
		region = p.DefaultRegion
	}
	q := []string{"templateURL=" + escape(templateURL)}
	if stackName != "" {
		q = append(q, "stackName="+escape(stackName))
	}
	names := make([]string, 0, len(params))
	for k := range params {
		names = append(names, k)
	}
	slices.Sort(names)
	for _, k := range names {
		q = append(q, escape("param_"+k)+"="+escape(params[k]))
	}
	return p.ConsoleURL("cloudformation/home?region=" + escape(region) + "#/stacks/quickcreate?" + strings.Join(q, "&"))
}

// escape is query escaping with %20 for a space: the values sit in the URL
// fragment, which the console decodes itself, and "+" is not a space there.
func escape(s string) string {
	return strings.ReplaceAll(url.QueryEscape(s), "+", "%20")
}
