package partition

import (
	"errors"
	"fmt"
	"strings"
)

// ErrInvalidRoleARN is wrapped by every error of ParseRoleARN. Its text, and
// the detail after it, are written for an API client: they never echo the
// whole input.
var ErrInvalidRoleARN = errors.New("must be an IAM role ARN such as arn:aws:iam::111122223333:role/dflow")

// IAM limits (IAM API reference: Role, CreateRole).
const (
	maxARNLen      = 2048
	maxRoleNameLen = 64
	maxPathLen     = 512
)

// RoleARN is a parsed IAM role ARN:
// arn:<partition>:iam::<account>:role<path><name>.
type RoleARN struct {
	Partition Partition
	AccountID string // 12 digits
	Path      string // "/" or "/a/b/": starts and ends with a slash
	Name      string
}

// String returns the ARN in its canonical form.
func (r RoleARN) String() string {
	return r.Partition.ARN("iam", "", r.AccountID, "role"+r.Path+r.Name)
}

func invalid(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrInvalidRoleARN}, args...)...)
}

// ParseRoleARN parses and checks an IAM role ARN of a supported partition.
// The role's path and name follow IAM's rules: a name of 1–64 characters of
// letters, digits and +=,.@_-; a path of at most 512 printable ASCII
// characters that begins and ends with "/".
func ParseRoleARN(s string) (RoleARN, error) {
	switch {
	case s == "":
		return RoleARN{}, invalid("the value is empty")
	case len(s) > maxARNLen:
		return RoleARN{}, invalid("it is longer than %d characters", maxARNLen)
	}
	f := strings.SplitN(s, ":", 6)
	if len(f) != 6 || f[0] != "arn" {
		return RoleARN{}, invalid("it is not an ARN (arn:partition:service:region:account:resource)")
	}
	p, ok := ByID(f[1])
	if !ok {
		return RoleARN{}, invalid("the partition %s is not one of %s, %s, %s", quoteShort(f[1]), Standard, GovCloud, China)
	}
	if f[2] != "iam" {
		return RoleARN{}, invalid("the service is %s, not iam", quoteShort(f[2]))
	}
	if f[3] != "" {
		return RoleARN{}, invalid("IAM ARNs have no region")
	}
	if !accountID(f[4]) {
		return RoleARN{}, invalid("the account ID must be 12 digits")
	}
	rest, ok := strings.CutPrefix(f[5], "role/")
	if !ok {
		kind, _, _ := strings.Cut(f[5], "/")
		return RoleARN{}, invalid("the resource is %s, not a role", quoteShort(kind))
	}
	path, name := "/", rest
	if i := strings.LastIndexByte(rest, '/'); i >= 0 {
		path, name = "/"+rest[:i+1], rest[i+1:]
	}
	switch {
	case name == "":
		return RoleARN{}, invalid("the role name is missing")
	case len(name) > maxRoleNameLen:
		return RoleARN{}, invalid("the role name is longer than %d characters", maxRoleNameLen)
	case !roleName(name):
		return RoleARN{}, invalid("the role name may hold only letters, digits and +=,.@_-")
	case len(path) > maxPathLen:
		return RoleARN{}, invalid("the role path is longer than %d characters", maxPathLen)
	case !rolePath(path):
		return RoleARN{}, invalid("the role path may hold only printable ASCII characters other than space")
	}
	return RoleARN{Partition: p, AccountID: f[4], Path: path, Name: name}, nil
}

// ValidAccountID reports whether s is an AWS account ID: exactly 12 digits.
func ValidAccountID(s string) bool { return accountID(s) }

func accountID(s string) bool {
	if len(s) != 12 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// roleName is IAM's [\w+=,.@-]+ (ASCII word characters).
func roleName(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		case strings.IndexByte("_+=,.@-", c) >= 0:
		default:
			return false
		}
	}
	return true
}

// rolePath is IAM's (\u002F)|(\u002F[\u0021-\u007E]+\u002F); the caller has
// already made it begin and end with a slash.
func rolePath(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x21 || s[i] > 0x7e {
			return false
		}
	}
	return true
}

// quoteShort quotes a fragment of the input for an error message, cut short
// so a hostile value cannot fill the response.
func quoteShort(s string) string {
	const limit = 32
	if len(s) > limit {
		s = s[:limit] + "…"
	}
	return fmt.Sprintf("%q", s)
}
