package sgrules

import (
	"bytes"
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/dflow-sh/cloud-accounts/shared/fault"
)

func ptr[T any](v T) *T { return &v }

// decode reads a JSON list the way the API's strict decoder does.
func decode(t *testing.T, s string) []RuleInput {
	t.Helper()
	dec := json.NewDecoder(strings.NewReader(s))
	dec.DisallowUnknownFields()
	var in []RuleInput
	if err := dec.Decode(&in); err != nil {
		t.Fatalf("decode %s: %v", s, err)
	}
	return in
}

func TestParseValid(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name string
		in   string
		want Rule
	}{
		{"tcp single port", `{"protocol":"tcp","fromPort":22,"toPort":22,"cidrIpv4":"10.0.0.0/8","description":"office ssh"}`,
			Rule{Protocol: "tcp", FromPort: 22, ToPort: 22, CIDRv4: "10.0.0.0/8", Description: "office ssh"}},
		{"tcp full range", `{"protocol":"tcp","fromPort":0,"toPort":65535,"cidrIpv4":"192.168.1.0/24"}`,
			Rule{Protocol: "tcp", FromPort: 0, ToPort: 65535, CIDRv4: "192.168.1.0/24"}},
		{"udp range ipv6", `{"protocol":"udp","fromPort":51820,"toPort":51830,"cidrIpv6":"2001:db8::/32"}`,
			Rule{Protocol: "udp", FromPort: 51820, ToPort: 51830, CIDRv6: "2001:db8::/32"}},
		{"ipv6 written canonically", `{"protocol":"tcp","fromPort":443,"toPort":443,"cidrIpv6":"2001:0DB8:0000::/48"}`,
			Rule{Protocol: "tcp", FromPort: 443, ToPort: 443, CIDRv6: "2001:db8::/48"}},
		{"host route", `{"protocol":"tcp","fromPort":5432,"toPort":5432,"cidrIpv4":"10.1.2.3/32"}`,
			Rule{Protocol: "tcp", FromPort: 5432, ToPort: 5432, CIDRv4: "10.1.2.3/32"}},
		{"world v4", `{"protocol":"tcp","fromPort":443,"toPort":443,"cidrIpv4":"0.0.0.0/0"}`,
			Rule{Protocol: "tcp", FromPort: 443, ToPort: 443, CIDRv4: "0.0.0.0/0"}},
		{"icmp echo request", `{"protocol":"icmp","fromPort":8,"toPort":0,"cidrIpv4":"10.0.0.0/8"}`,
			Rule{Protocol: "icmp", FromPort: 8, ToPort: 0, CIDRv4: "10.0.0.0/8"}},
		{"icmp type all codes", `{"protocol":"icmp","fromPort":3,"toPort":-1,"cidrIpv4":"10.0.0.0/8"}`,
			Rule{Protocol: "icmp", FromPort: 3, ToPort: -1, CIDRv4: "10.0.0.0/8"}},
		{"icmp all", `{"protocol":"icmp","fromPort":-1,"toPort":-1,"sourceSecurityGroupId":"sg-0123456789abcdef0"}`,
			Rule{Protocol: "icmp", FromPort: -1, ToPort: -1, SourceGroupID: "sg-0123456789abcdef0"}},
		{"all without ports", `{"protocol":"all","sourceSecurityGroupId":"sg-01234567"}`,
			Rule{Protocol: "all", FromPort: -1, ToPort: -1, SourceGroupID: "sg-01234567"}},
		{"all with -1 ports", `{"protocol":"all","fromPort":-1,"toPort":-1,"cidrIpv6":"::/0"}`,
			Rule{Protocol: "all", FromPort: -1, ToPort: -1, CIDRv6: "::/0"}},
		{"null members are absent", `{"protocol":"all","fromPort":null,"cidrIpv4":"10.0.0.0/8","cidrIpv6":null,"description":null}`,
			Rule{Protocol: "all", FromPort: -1, ToPort: -1, CIDRv4: "10.0.0.0/8"}},
		{"description every allowed character", `{"protocol":"tcp","fromPort":1,"toPort":2,"cidrIpv4":"10.0.0.0/8","description":"aZ09. _-:/()#,@[]+=&;{}!$*"}`,
			Rule{Protocol: "tcp", FromPort: 1, ToPort: 2, CIDRv4: "10.0.0.0/8", Description: "aZ09. _-:/()#,@[]+=&;{}!$*"}},
		{"description 255", `{"protocol":"tcp","fromPort":1,"toPort":2,"cidrIpv4":"10.0.0.0/8","description":"` + strings.Repeat("d", 255) + `"}`,
			Rule{Protocol: "tcp", FromPort: 1, ToPort: 2, CIDRv4: "10.0.0.0/8", Description: strings.Repeat("d", 255)}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, errs := Parse(FieldInbound, decode(t, "["+tc.in+"]"))
			if len(errs) > 0 {
				t.Fatalf("errors %+v", errs)
			}
			if len(got) != 1 || got[0] != tc.want {
				t.Fatalf("got %+v, want %+v", got, tc.want)
			}
			if errs := Validate(FieldInbound, got); len(errs) > 0 {
				t.Errorf("Validate of Parse's output: %+v", errs)
			}
		})
	}
}

func TestParseErrors(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name  string
		in    string // one rule, at inboundRules[0]
		field string
		msg   string // part of the message
	}{
		{"protocol missing", `{"fromPort":22,"toPort":22,"cidrIpv4":"10.0.0.0/8"}`, "inboundRules[0].protocol", "is required"},
		{"protocol unknown", `{"protocol":"sctp","fromPort":22,"toPort":22,"cidrIpv4":"10.0.0.0/8"}`, "inboundRules[0].protocol", `got "sctp"`},
		{"protocol upper case", `{"protocol":"TCP","fromPort":22,"toPort":22,"cidrIpv4":"10.0.0.0/8"}`, "inboundRules[0].protocol", "one of tcp, udp, icmp, all"},
		{"protocol -1", `{"protocol":"-1","cidrIpv4":"10.0.0.0/8"}`, "inboundRules[0].protocol", "one of"},
		{"tcp fromPort missing", `{"protocol":"tcp","toPort":22,"cidrIpv4":"10.0.0.0/8"}`, "inboundRules[0].fromPort", "is required for tcp"},
		{"udp toPort missing", `{"protocol":"udp","fromPort":53,"cidrIpv4":"10.0.0.0/8"}`, "inboundRules[0].toPort", "is required for udp"},
		{"tcp port negative", `{"protocol":"tcp","fromPort":-1,"toPort":22,"cidrIpv4":"10.0.0.0/8"}`, "inboundRules[0].fromPort", "0–65535; got -1"},
		{"tcp port too big", `{"protocol":"tcp","fromPort":22,"toPort":65536,"cidrIpv4":"10.0.0.0/8"}`, "inboundRules[0].toPort", "got 65536"},
		{"tcp from after to", `{"protocol":"tcp","fromPort":443,"toPort":80,"cidrIpv4":"10.0.0.0/8"}`, "inboundRules[0].toPort", "at least fromPort (443)"},
		{"icmp type missing", `{"protocol":"icmp","toPort":0,"cidrIpv4":"10.0.0.0/8"}`, "inboundRules[0].fromPort", "ICMP type"},
		{"icmp code missing", `{"protocol":"icmp","fromPort":8,"cidrIpv4":"10.0.0.0/8"}`, "inboundRules[0].toPort", "ICMP code"},
		{"icmp type too big", `{"protocol":"icmp","fromPort":256,"toPort":0,"cidrIpv4":"10.0.0.0/8"}`, "inboundRules[0].fromPort", "got 256"},
		{"icmp code below -1", `{"protocol":"icmp","fromPort":8,"toPort":-2,"cidrIpv4":"10.0.0.0/8"}`, "inboundRules[0].toPort", "got -2"},
		{"icmp all types one code", `{"protocol":"icmp","fromPort":-1,"toPort":0,"cidrIpv4":"10.0.0.0/8"}`, "inboundRules[0].toPort", "must be -1 when fromPort"},
		{"icmp ipv6", `{"protocol":"icmp","fromPort":-1,"toPort":-1,"cidrIpv6":"::/0"}`, "inboundRules[0].cidrIpv6", "IPv4 ICMP only"},
		{"all with a port", `{"protocol":"all","fromPort":0,"cidrIpv4":"10.0.0.0/8"}`, "inboundRules[0].fromPort", "must be -1 or absent"},
		{"all with a to port", `{"protocol":"all","toPort":65535,"cidrIpv4":"10.0.0.0/8"}`, "inboundRules[0].toPort", "must be -1 or absent"},
		{"no source", `{"protocol":"tcp","fromPort":22,"toPort":22}`, "inboundRules[0]", "exactly one of cidrIpv4, cidrIpv6, sourceSecurityGroupId"},
		{"two sources", `{"protocol":"tcp","fromPort":22,"toPort":22,"cidrIpv4":"10.0.0.0/8","cidrIpv6":"::/0"}`, "inboundRules[0]", "got cidrIpv4 and cidrIpv6"},
		{"cidr and group", `{"protocol":"tcp","fromPort":22,"toPort":22,"cidrIpv4":"10.0.0.0/8","sourceSecurityGroupId":"sg-01234567"}`, "inboundRules[0]", "cidrIpv4 and sourceSecurityGroupId"},
		{"empty source is a source", `{"protocol":"tcp","fromPort":22,"toPort":22,"cidrIpv4":""}`, "inboundRules[0].cidrIpv4", "IPv4 CIDR block"},
		{"cidr not a cidr", `{"protocol":"tcp","fromPort":22,"toPort":22,"cidrIpv4":"10.0.0.0"}`, "inboundRules[0].cidrIpv4", `like 10.0.0.0/16; got "10.0.0.0"`},
		{"cidr bad prefix length", `{"protocol":"tcp","fromPort":22,"toPort":22,"cidrIpv4":"10.0.0.0/33"}`, "inboundRules[0].cidrIpv4", "IPv4 CIDR block"},
		{"cidr host bits", `{"protocol":"tcp","fromPort":22,"toPort":22,"cidrIpv4":"10.0.0.1/8"}`, "inboundRules[0].cidrIpv4", "did you mean 10.0.0.0/8?"},
		{"cidr leading zeros", `{"protocol":"tcp","fromPort":22,"toPort":22,"cidrIpv4":"010.0.0.0/8"}`, "inboundRules[0].cidrIpv4", "IPv4 CIDR block"},
		{"ipv6 in cidrIpv4", `{"protocol":"tcp","fromPort":22,"toPort":22,"cidrIpv4":"::/0"}`, "inboundRules[0].cidrIpv4", "put it in cidrIpv6"},
		{"ipv4 in cidrIpv6", `{"protocol":"tcp","fromPort":22,"toPort":22,"cidrIpv6":"0.0.0.0/0"}`, "inboundRules[0].cidrIpv6", "put it in cidrIpv4"},
		{"ipv4-mapped in cidrIpv6", `{"protocol":"tcp","fromPort":22,"toPort":22,"cidrIpv6":"::ffff:10.0.0.0/104"}`, "inboundRules[0].cidrIpv6", "IPv4-mapped"},
		{"ipv6 host bits", `{"protocol":"tcp","fromPort":22,"toPort":22,"cidrIpv6":"2001:db8::1/32"}`, "inboundRules[0].cidrIpv6", "did you mean 2001:db8::/32?"},
		{"ipv6 zone", `{"protocol":"tcp","fromPort":22,"toPort":22,"cidrIpv6":"fe80::%eth0/64"}`, "inboundRules[0].cidrIpv6", "IPv6 CIDR block"},
		{"group id short", `{"protocol":"all","sourceSecurityGroupId":"sg-0123"}`, "inboundRules[0].sourceSecurityGroupId", "like sg-0123456789abcdef0"},
		{"group id upper case", `{"protocol":"all","sourceSecurityGroupId":"sg-0123456789ABCDEF0"}`, "inboundRules[0].sourceSecurityGroupId", "security group id"},
		{"group id 12 hex", `{"protocol":"all","sourceSecurityGroupId":"sg-0123456789ab"}`, "inboundRules[0].sourceSecurityGroupId", "security group id"},
		{"group name", `{"protocol":"all","sourceSecurityGroupId":"default"}`, "inboundRules[0].sourceSecurityGroupId", "security group id"},
		{"prefix list refused", `{"protocol":"all","prefixListId":"pl-0123456789abcdef0"}`, "inboundRules[0].prefixListId", "does not manage them"},
		{"description bad character", `{"protocol":"all","cidrIpv4":"10.0.0.0/8","description":"ssh <office>"}`, "inboundRules[0].description", `contains '<'`},
		{"description non-ascii", `{"protocol":"all","cidrIpv4":"10.0.0.0/8","description":"café"}`, "inboundRules[0].description", `contains 'é'`},
		{"description newline", `{"protocol":"all","cidrIpv4":"10.0.0.0/8","description":"a\nb"}`, "inboundRules[0].description", `contains '\n'`},
		{"description too long", `{"protocol":"all","cidrIpv4":"10.0.0.0/8","description":"` + strings.Repeat("d", 256) + `"}`, "inboundRules[0].description", "at most 255 characters; got 256"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			rules, errs := Parse(FieldInbound, decode(t, "["+tc.in+"]"))
			if rules != nil {
				t.Errorf("rules %+v returned with errors", rules)
			}
			for _, e := range errs {
				if e.Field == tc.field && strings.Contains(e.Message, tc.msg) {
					return
				}
			}
			t.Fatalf("errors %+v; want %s: …%s…", errs, tc.field, tc.msg)
		})
	}
}

func TestParseReportsEveryField(t *testing.T) {
	t.Parallel()
	in := decode(t, `[
		{"protocol":"tcp","fromPort":22,"toPort":22,"cidrIpv4":"10.0.0.0/8"},
		{"protocol":"tcp","fromPort":70000,"toPort":22,"cidrIpv4":"10.0.0.1/8","description":"<"}
	]`)
	_, errs := Parse(FieldOutbound, in)
	want := []string{"outboundRules[1].fromPort", "outboundRules[1].cidrIpv4", "outboundRules[1].description"}
	var got []string
	for _, e := range errs {
		got = append(got, e.Field)
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("fields %v, want %v (%+v)", got, want, errs)
	}
}

func TestParseDuplicates(t *testing.T) {
	t.Parallel()
	in := decode(t, `[
		{"protocol":"tcp","fromPort":22,"toPort":22,"cidrIpv4":"10.0.0.0/8","description":"a"},
		{"protocol":"tcp","fromPort":22,"toPort":23,"cidrIpv4":"10.0.0.0/8"},
		{"protocol":"tcp","fromPort":22,"toPort":22,"cidrIpv4":"10.0.0.0/8","description":"b"},
		{"protocol":"all","cidrIpv6":"2001:db8::/32"},
		{"protocol":"all","fromPort":-1,"toPort":-1,"cidrIpv6":"2001:DB8::/32"},
		{"protocol":"udp","fromPort":22,"toPort":22,"cidrIpv4":"10.0.0.0/8"}
	]`)
	_, errs := Parse(FieldInbound, in)
	want := []fault.FieldError{
		{Field: "inboundRules[2]", Message: "duplicates inboundRules[0]: same protocol, ports and source (descriptions do not make rules distinct)"},
		{Field: "inboundRules[4]", Message: "duplicates inboundRules[3]: same protocol, ports and source (descriptions do not make rules distinct)"},
	}
	if !reflect.DeepEqual(errs, want) {
		t.Fatalf("errors %+v\nwant %+v", errs, want)
	}
}

func TestParseQuota(t *testing.T) {
	t.Parallel()
	var b bytes.Buffer
	b.WriteString("[")
	for i := range MaxRulesPerDirection + 1 {
		if i > 0 {
			b.WriteString(",")
		}
		b.WriteString(`{"protocol":"tcp","fromPort":` + itoa(1000+i) + `,"toPort":` + itoa(1000+i) + `,"cidrIpv4":"10.0.0.0/8"}`)
	}
	b.WriteString("]")
	in := decode(t, b.String())

	if rules, errs := Parse(FieldInbound, in[:MaxRulesPerDirection]); len(errs) > 0 || len(rules) != MaxRulesPerDirection {
		t.Fatalf("60 rules: %d rules, %+v", len(rules), errs)
	}
	_, errs := Parse(FieldInbound, in)
	want := []fault.FieldError{{Field: "inboundRules", Message: "at most 60 rules are allowed per direction (EC2's default quota per security group); got 61"}}
	if !reflect.DeepEqual(errs, want) {
		t.Fatalf("61 rules: %+v", errs)
	}
}

func itoa(i int) string {
	b, _ := json.Marshal(i)
	return string(b)
}

func TestParseRules(t *testing.T) {
	t.Parallel()
	in := decode(t, `[{"protocol":"tcp","fromPort":22,"toPort":22,"cidrIpv4":"0.0.0.0/0"}]`)
	out := decode(t, `[{"protocol":"all","cidrIpv4":"0.0.0.0/0"}]`)
	rules, err := ParseRules(in, out)
	if err != nil {
		t.Fatal(err)
	}
	want := Rules{
		Inbound:  []Rule{{Protocol: "tcp", FromPort: 22, ToPort: 22, CIDRv4: "0.0.0.0/0"}},
		Outbound: DefaultEgress(),
	}
	if !reflect.DeepEqual(rules, want) {
		t.Fatalf("rules %+v", rules)
	}

	empty, err := ParseRules(nil, []RuleInput{})
	if err != nil || len(empty.Inbound) != 0 || len(empty.Outbound) != 0 {
		t.Fatalf("empty lists: %+v %v", empty, err)
	}

	bad := decode(t, `[{"protocol":"tcp"}]`)
	_, err = ParseRules(bad, bad)
	var fe *fault.Error
	if !errors.As(err, &fe) || fe.Kind != fault.Invalid || fe.Code != "validation_failed" {
		t.Fatalf("error %v", err)
	}
	var fields []string
	for _, f := range fe.Fields {
		fields = append(fields, f.Field)
	}
	wantFields := []string{
		"inboundRules[0].fromPort", "inboundRules[0].toPort", "inboundRules[0]",
		"outboundRules[0].fromPort", "outboundRules[0].toPort", "outboundRules[0]",
	}
	if !reflect.DeepEqual(fields, wantFields) {
		t.Fatalf("fields %v", fields)
	}
}

func TestValidate(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name  string
		rule  Rule
		field string // "" when valid
		msg   string
	}{
		{"valid", Rule{Protocol: "tcp", FromPort: 22, ToPort: 22, CIDRv4: "10.0.0.0/8"}, "", ""},
		{"default egress", DefaultEgress()[0], "", ""},
		{"all needs -1 ports", Rule{Protocol: "all", CIDRv4: "10.0.0.0/8"}, "rules[0].fromPort", "must be -1"},
		{"not canonical", Rule{Protocol: "tcp", FromPort: 22, ToPort: 22, CIDRv6: "2001:DB8::/32"}, "rules[0].cidrIpv6", "canonically as 2001:db8::/32"},
		{"prefix list", Rule{Protocol: "tcp", FromPort: 22, ToPort: 22, PrefixListID: "pl-12345678"}, "rules[0].prefixListId", "does not manage"},
		{"foreign protocol", Rule{Protocol: "icmpv6", FromPort: -1, ToPort: -1, CIDRv6: "::/0"}, "rules[0].protocol", "one of"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			errs := Validate("rules", []Rule{tc.rule})
			if tc.field == "" {
				if len(errs) > 0 {
					t.Fatalf("errors %+v", errs)
				}
				return
			}
			for _, e := range errs {
				if e.Field == tc.field && strings.Contains(e.Message, tc.msg) {
					return
				}
			}
			t.Fatalf("errors %+v; want %s: …%s…", errs, tc.field, tc.msg)
		})
	}
}

func TestRulesJSON(t *testing.T) {
	t.Parallel()
	b, err := json.Marshal(Rules{Inbound: []Rule{
		{Protocol: "tcp", FromPort: 0, ToPort: 0, CIDRv4: "10.0.0.0/8"},
		{Protocol: "all", FromPort: -1, ToPort: -1, SourceGroupID: "sg-01234567", Description: "peers"},
	}})
	if err != nil {
		t.Fatal(err)
	}
	want := `{"inboundRules":[{"protocol":"tcp","fromPort":0,"toPort":0,"cidrIpv4":"10.0.0.0/8"},` +
		`{"protocol":"all","fromPort":-1,"toPort":-1,"sourceSecurityGroupId":"sg-01234567","description":"peers"}],"outboundRules":[]}`
	if string(b) != want {
		t.Fatalf("json %s\nwant %s", b, want)
	}
	var back Rules
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	if len(back.Inbound) != 2 || back.Inbound[1].SourceGroupID != "sg-01234567" || len(back.Outbound) != 0 {
		t.Fatalf("back %+v", back)
	}
}
