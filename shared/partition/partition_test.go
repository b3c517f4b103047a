package partition

import (
	"errors"
	"regexp"
	"slices"
	"strings"
	"testing"
)

func TestPartitionsData(t *testing.T) {
	code := regexp.MustCompile(`^[a-z]{2}(-[a-z]+)+-\d+$`)
	seen := map[string]string{}
	for _, p := range All() {
		if p.ID == "" || p.Name == "" || p.DNSSuffix == "" || p.ConsoleHost == "" {
			t.Errorf("%s: incomplete partition %+v", p.ID, p)
		}
		if !p.HasRegion(p.DefaultRegion) || !p.HasRegion(p.GlobalRegion) {
			t.Errorf("%s: default region %q or global region %q is not one of its regions", p.ID, p.DefaultRegion, p.GlobalRegion)
		}
		for _, r := range p.Regions {
			if !code.MatchString(r.Code) || r.Name == "" {
				t.Errorf("%s: malformed region %+v", p.ID, r)
			}
			if other, dup := seen[r.Code]; dup {
				t.Errorf("region %s is in both %s and %s", r.Code, other, p.ID)
			}
			seen[r.Code] = p.ID
		}
	}
}

func TestRegionsPinned(t *testing.T) {
	// The set each partition must hold; edit together with the table.
	want := map[string][]string{
		Standard: {
			"af-south-1", "ap-east-1", "ap-east-2", "ap-northeast-1", "ap-northeast-2", "ap-northeast-3",
			"ap-south-1", "ap-south-2", "ap-southeast-1", "ap-southeast-2", "ap-southeast-3",
			"ap-southeast-4", "ap-southeast-5", "ap-southeast-6", "ap-southeast-7",
			"ca-central-1", "ca-west-1", "eu-central-1", "eu-central-2", "eu-north-1",
			"eu-south-1", "eu-south-2", "eu-west-1", "eu-west-2", "eu-west-3", "il-central-1",
			"me-central-1", "me-south-1", "me-west-1", "mx-central-1", "sa-east-1", "sa-west-1",
			"us-east-1", "us-east-2", "us-west-1", "us-west-2",
		},
		GovCloud: {"us-gov-east-1", "us-gov-west-1"},
		China:    {"cn-north-1", "cn-northwest-1"},
	}
	optIn := []string{
		"af-south-1", "ap-east-1", "ap-east-2", "ap-south-2", "ap-southeast-3", "ap-southeast-4",
		"ap-southeast-5", "ap-southeast-6", "ap-southeast-7", "ca-west-1", "eu-central-2",
		"eu-south-1", "eu-south-2", "il-central-1", "me-central-1", "me-south-1", "me-west-1",
		"mx-central-1", "sa-west-1",
	}
	for id, codes := range want {
		p, ok := ByID(id)
		if !ok {
			t.Fatalf("ByID(%q) not found", id)
		}
		var got []string
		for _, r := range p.Regions {
			got = append(got, r.Code)
			if r.OptIn != slices.Contains(optIn, r.Code) {
				t.Errorf("%s: OptIn = %v", r.Code, r.OptIn)
			}
		}
		slices.Sort(got)
		if !slices.Equal(got, codes) {
			t.Errorf("%s regions\n got %v\nwant %v", id, got, codes)
		}
	}
}

func TestByIDReturnsCopy(t *testing.T) {
	p, _ := ByID(Standard)
	p.Regions[0].Code = "xx-mutated-1"
	q, _ := ByID(Standard)
	if q.Regions[0].Code == "xx-mutated-1" {
		t.Fatal("ByID shares its region slice with the package table")
	}
	if _, ok := ByID("aws-iso"); ok {
		t.Error("ByID(aws-iso) found an unsupported partition")
	}
}

func TestForRegionAndValidRegion(t *testing.T) {
	tests := []struct {
		region string
		want   string // partition ID, "" for none
	}{
		{"us-east-1", Standard},
		{"eu-central-2", Standard},
		{"ap-southeast-7", Standard},
		{"mx-central-1", Standard},
		{"us-gov-west-1", GovCloud},
		{"us-gov-east-1", GovCloud},
		{"cn-north-1", China},
		{"cn-northwest-1", China},
		{"", ""},
		{"us-east-9", ""},
		{"US-EAST-1", ""},
		{"us-east-1 ", ""},
		{"aws-global", ""},
		{"us-iso-east-1", ""},
		{"us-east-1a", ""},
	}
	for _, tt := range tests {
		t.Run(tt.region, func(t *testing.T) {
			p, ok := ForRegion(tt.region)
			if ok != (tt.want != "") || p.ID != tt.want {
				t.Errorf("ForRegion(%q) = %q, %v; want %q", tt.region, p.ID, ok, tt.want)
			}
			if got := ValidRegion(tt.region); got != (tt.want != "") {
				t.Errorf("ValidRegion(%q) = %v", tt.region, got)
			}
		})
	}
}

func TestFromARN(t *testing.T) {
	tests := []struct {
		arn  string
		want string
	}{
		{"arn:aws:iam::111122223333:role/dflow", Standard},
		{"arn:aws-us-gov:iam::111122223333:role/dflow", GovCloud},
		{"arn:aws-cn:ec2:cn-north-1:111122223333:instance/i-0123", China},
		{"arn:aws-iso:iam::111122223333:role/dflow", ""},
		{"arn:AWS:iam::111122223333:role/dflow", ""},
		{"arn:aws", ""},
		{"aws:iam::111122223333:role/dflow", ""},
		{"", ""},
	}
	for _, tt := range tests {
		t.Run(tt.arn, func(t *testing.T) {
			p, ok := FromARN(tt.arn)
			if ok != (tt.want != "") || p.ID != tt.want {
				t.Errorf("FromARN(%q) = %q, %v; want %q", tt.arn, p.ID, ok, tt.want)
			}
		})
	}
}

func TestARNEndpointConsole(t *testing.T) {
	tests := []struct {
		id                        string
		arn, ec2, sts, iam, noReg string
		console                   string
	}{
		{
			id:      Standard,
			arn:     "arn:aws:ec2:eu-west-1:111122223333:instance/i-1",
			ec2:     "https://ec2.eu-west-1.amazonaws.com",
			sts:     "https://sts.eu-west-1.amazonaws.com",
			iam:     "https://iam.amazonaws.com",
			noReg:   "https://ec2.us-east-1.amazonaws.com",
			console: "https://console.aws.amazon.com/iam/home#/roles",
		},
		{
			id:      GovCloud,
			arn:     "arn:aws-us-gov:ec2:us-gov-east-1:111122223333:instance/i-1",
			ec2:     "https://ec2.us-gov-east-1.amazonaws.com",
			sts:     "https://sts.us-gov-east-1.amazonaws.com",
			iam:     "https://iam.us-gov.amazonaws.com",
			noReg:   "https://ec2.us-gov-west-1.amazonaws.com",
			console: "https://console.amazonaws-us-gov.com/iam/home#/roles",
		},
		{
			id:      China,
			arn:     "arn:aws-cn:ec2:cn-northwest-1:111122223333:instance/i-1",
			ec2:     "https://ec2.cn-northwest-1.amazonaws.com.cn",
			sts:     "https://sts.cn-northwest-1.amazonaws.com.cn",
			iam:     "https://iam.cn-north-1.amazonaws.com.cn",
			noReg:   "https://ec2.cn-north-1.amazonaws.com.cn",
			console: "https://console.amazonaws.cn/iam/home#/roles",
		},
	}
	for _, tt := range tests {
		t.Run(tt.id, func(t *testing.T) {
			p, _ := ByID(tt.id)
			region := p.Regions[len(p.Regions)-1].Code
			if tt.id == Standard {
				region = "eu-west-1"
			}
			if got := p.ARN("ec2", region, "111122223333", "instance/i-1"); got != tt.arn {
				t.Errorf("ARN = %s, want %s", got, tt.arn)
			}
			if got := p.Endpoint("ec2", region); got != tt.ec2 {
				t.Errorf("Endpoint(ec2) = %s, want %s", got, tt.ec2)
			}
			if got := p.Endpoint("sts", region); got != tt.sts {
				t.Errorf("Endpoint(sts) = %s, want %s", got, tt.sts)
			}
			if got := p.Endpoint("iam", region); got != tt.iam {
				t.Errorf("Endpoint(iam) = %s, want %s", got, tt.iam)
			}
			if got := p.Endpoint("ec2", ""); got != tt.noReg {
				t.Errorf("Endpoint(ec2, \"\") = %s, want %s", got, tt.noReg)
			}
			for _, path := range []string{"iam/home#/roles", "/iam/home#/roles"} {
				if got := p.ConsoleURL(path); got != tt.console {
					t.Errorf("ConsoleURL(%q) = %s, want %s", path, got, tt.console)
				}
			}
		})
	}
}

func TestParseRoleARN(t *testing.T) {
	long := "arn:aws:iam::111122223333:role/" + strings.Repeat("p/", 1010) + "n"
	tests := []struct {
		name      string
		in        string
		partition string
		path      string
		role      string
		errPart   string // substring of the error; "" for success
	}{
		{name: "plain", in: "arn:aws:iam::111122223333:role/dflow", partition: Standard, path: "/", role: "dflow"},
		{name: "with path", in: "arn:aws:iam::111122223333:role/dflow/prod/dflow-access", partition: Standard, path: "/dflow/prod/", role: "dflow-access"},
		{name: "service role path", in: "arn:aws:iam::111122223333:role/service-role/x+=,.@_-y", partition: Standard, path: "/service-role/", role: "x+=,.@_-y"},
		{name: "govcloud", in: "arn:aws-us-gov:iam::111122223333:role/dflow", partition: GovCloud, path: "/", role: "dflow"},
		{name: "china", in: "arn:aws-cn:iam::111122223333:role/dflow", partition: China, path: "/", role: "dflow"},
		{name: "64-char name", in: "arn:aws:iam::111122223333:role/" + strings.Repeat("a", 64), partition: Standard, path: "/", role: strings.Repeat("a", 64)},
		{name: "empty", in: "", errPart: "empty"},
		{name: "not an arn", in: "dflow", errPart: "not an ARN"},
		{name: "wrong partition", in: "arn:aws-iso:iam::111122223333:role/dflow", errPart: `partition "aws-iso"`},
		{name: "upper-case partition", in: "arn:AWS:iam::111122223333:role/dflow", errPart: "partition"},
		{name: "other service", in: "arn:aws:sts::111122223333:assumed-role/dflow/s", errPart: `service is "sts"`},
		{name: "region", in: "arn:aws:iam:us-east-1:111122223333:role/dflow", errPart: "no region"},
		{name: "11-digit account", in: "arn:aws:iam::11112222333:role/dflow", errPart: "12 digits"},
		{name: "13-digit account", in: "arn:aws:iam::1111222233334:role/dflow", errPart: "12 digits"},
		{name: "letters in account", in: "arn:aws:iam::11112222333x:role/dflow", errPart: "12 digits"},
		{name: "user ARN", in: "arn:aws:iam::111122223333:user/dflow", errPart: `"user", not a role`},
		{name: "root", in: "arn:aws:iam::111122223333:root", errPart: `"root", not a role`},
		{name: "missing name", in: "arn:aws:iam::111122223333:role/", errPart: "name is missing"},
		{name: "path without name", in: "arn:aws:iam::111122223333:role/dflow/", errPart: "name is missing"},
		{name: "bare role", in: "arn:aws:iam::111122223333:role", errPart: "not a role"},
		{name: "65-char name", in: "arn:aws:iam::111122223333:role/" + strings.Repeat("a", 65), errPart: "longer than 64"},
		{name: "bad name char", in: "arn:aws:iam::111122223333:role/dflow*", errPart: "role name may hold"},
		{name: "space in name", in: "arn:aws:iam::111122223333:role/dflow ", errPart: "role name may hold"},
		{name: "space in path", in: "arn:aws:iam::111122223333:role/a b/dflow", errPart: "role path"},
		{name: "long path", in: "arn:aws:iam::111122223333:role/" + strings.Repeat("p", 512) + "/n", errPart: "path is longer than 512"},
		{name: "too long", in: long, errPart: "longer than 2048"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseRoleARN(tt.in)
			if tt.errPart != "" {
				if err == nil {
					t.Fatalf("ParseRoleARN(%q) = %+v, want an error", tt.in, got)
				}
				if !errors.Is(err, ErrInvalidRoleARN) {
					t.Errorf("error %v does not wrap ErrInvalidRoleARN", err)
				}
				if !strings.Contains(err.Error(), tt.errPart) || !strings.HasPrefix(err.Error(), "must be an IAM role ARN such as arn:aws:iam::111122223333:role/dflow") {
					t.Errorf("error %q, want it to contain %q", err, tt.errPart)
				}
				if len(err.Error()) > 200 {
					t.Errorf("error is %d bytes long; it must not echo the input", len(err.Error()))
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseRoleARN(%q): %v", tt.in, err)
			}
			if got.Partition.ID != tt.partition || got.AccountID != "111122223333" || got.Path != tt.path || got.Name != tt.role {
				t.Errorf("ParseRoleARN(%q) = {%s %s %s %s}", tt.in, got.Partition.ID, got.AccountID, got.Path, got.Name)
			}
			if got.String() != tt.in {
				t.Errorf("String() = %s, want %s", got.String(), tt.in)
			}
		})
	}
}
