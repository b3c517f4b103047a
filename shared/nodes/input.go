package nodes

import (
	"encoding/base64"
	"fmt"
	"regexp"
	"strings"
	"unicode/utf8"

	"github.com/dflow-sh/cloud-accounts/shared/discovery"
	"github.com/dflow-sh/cloud-accounts/shared/fault"
	"github.com/dflow-sh/cloud-accounts/shared/ids"
	"github.com/dflow-sh/cloud-accounts/shared/partition"
)

// Input is the body of POST /worker-nodes.
type Input struct {
	Name        string `json:"name"`
	Environment string `json:"environment"`
	AccountID   string `json:"accountId"`
	Region      string `json:"region"`
	// SubnetID is optional: by default a subnet of the groups' VPC is
	// chosen (its zone's default subnet first, then the one with the most
	// free addresses).
	SubnetID         string     `json:"subnetId,omitempty"`
	SecurityGroupIDs []string   `json:"securityGroupIds"`
	InstanceType     string     `json:"instanceType"`
	Image            ImageInput `json:"image"`
	DiskGiB          int        `json:"diskGiB"`
	SSHKeyID         string     `json:"sshKeyId"`
	// UserData is base64, at most MaxUserData bytes once decoded.
	UserData string `json:"userData,omitempty"`
}

// ImageInput is an AMI id, or an OS (and version; the newest when empty)
// whose current official image is resolved in the region.
type ImageInput struct {
	ID      string `json:"id,omitempty"`
	OS      string `json:"os,omitempty"`
	Version string `json:"version,omitempty"`
}

// Bounds of the input.
const (
	MaxNameLen   = 64
	MinDiskGiB   = 8
	MaxDiskGiB   = 2048
	MaxUserData  = 16 << 10
	MaxGroups    = 5 // EC2's default limit of groups per network interface
	maxTypeLen   = 64
	maxVersionLn = 16
)

var (
	envName      = regexp.MustCompile(`^[a-z][a-z0-9-]{0,31}$`)
	amiID        = regexp.MustCompile(`^ami-[0-9a-f]{8,17}$`)
	subnetID     = regexp.MustCompile(`^subnet-[0-9a-f]{8,17}$`)
	instanceType = regexp.MustCompile(`^[a-z0-9-]+\.[a-z0-9-]+$`)
	osVersion    = regexp.MustCompile(`^[0-9][0-9.]*$`)
)

type problems []fault.FieldError

func (p *problems) add(field, format string, args ...any) {
	*p = append(*p, fault.FieldError{Field: field, Message: fmt.Sprintf(format, args...)})
}

// check validates the input's form (400); what needs AWS or the store is
// checked by Create.
func (in *Input) check() error {
	var p problems
	n := utf8.RuneCountInString(in.Name)
	switch {
	case n < 1 || n > MaxNameLen:
		p.add("name", "must be 1 to %d characters", MaxNameLen)
	case strings.TrimSpace(in.Name) != in.Name:
		p.add("name", "must not start or end with spaces")
	case strings.ContainsFunc(in.Name, func(r rune) bool { return r < 0x20 || r == 0x7f }):
		p.add("name", "must not contain control characters")
	}
	if !envName.MatchString(in.Environment) {
		p.add("environment", "must be an environment name such as production or staging")
	}
	if !ids.Valid(ids.Account, in.AccountID) {
		p.add("accountId", "must be a linked account id (acc_…)")
	}
	if !partition.ValidRegion(in.Region) {
		p.add("region", "must be an AWS region code such as eu-west-1")
	}
	if in.SubnetID != "" && !subnetID.MatchString(in.SubnetID) {
		p.add("subnetId", "must be a subnet id (subnet-…)")
	}
	switch {
	case len(in.SecurityGroupIDs) == 0:
		p.add("securityGroupIds", "must name at least one security group")
	case len(in.SecurityGroupIDs) > MaxGroups:
		p.add("securityGroupIds", "at most %d security groups", MaxGroups)
	}
	seen := map[string]bool{}
	for i, g := range in.SecurityGroupIDs {
		switch {
		case !ids.Valid(ids.Group, g):
			p.add(fmt.Sprintf("securityGroupIds[%d]", i), "must be a dFlow security group id (sg_…)")
		case seen[g]:
			p.add(fmt.Sprintf("securityGroupIds[%d]", i), "is listed twice")
		}
		seen[g] = true
	}
	if len(in.InstanceType) > maxTypeLen || !instanceType.MatchString(in.InstanceType) {
		p.add("instanceType", "must be an EC2 instance type such as t3.micro")
	}
	im := in.Image
	switch {
	case im.ID != "" && (im.OS != "" || im.Version != ""):
		p.add("image", "give either id, or os and an optional version")
	case im.ID != "":
		if !amiID.MatchString(im.ID) {
			p.add("image.id", "must be an AMI id (ami-…)")
		}
	case im.OS == "":
		p.add("image", "give either id, or os and an optional version")
	default:
		if _, ok := sshUsers[im.OS]; !ok {
			p.add("image.os", "must be one of %s, %s, %s", discovery.OSUbuntu, discovery.OSDebian, discovery.OSAmazonLinux)
		}
		if im.Version != "" && (len(im.Version) > maxVersionLn || !osVersion.MatchString(im.Version)) {
			p.add("image.version", "must be a version such as 24.04, 12 or 2023")
		}
	}
	if in.DiskGiB < MinDiskGiB || in.DiskGiB > MaxDiskGiB {
		p.add("diskGiB", "must be between %d and %d", MinDiskGiB, MaxDiskGiB)
	}
	if !ids.Valid(ids.SSHKey, in.SSHKeyID) {
		p.add("sshKeyId", "must be an SSH key id (key_…)")
	}
	if in.UserData != "" {
		b, err := base64.StdEncoding.DecodeString(in.UserData)
		switch {
		case err != nil:
			p.add("userData", "must be base64 (standard alphabet, padded)")
		case len(b) > MaxUserData:
			p.add("userData", "must be at most %d bytes once decoded (it is %d)", MaxUserData, len(b))
		}
	}
	if len(p) > 0 {
		return fault.Validation(p...)
	}
	return nil
}
