package sgrules

import (
	"fmt"
	"net/netip"
	"regexp"
	"strings"

	"github.com/dflow-sh/cloud-accounts/shared/fault"
)

// Field names of the API's rule lists.
const (
	FieldInbound  = "inboundRules"
	FieldOutbound = "outboundRules"
)

// MaxRulesPerDirection is EC2's default quota of inbound (and of outbound)
// rules per security group. EC2 counts IPv4 and IPv6 rules separately; the
// API counts them together, so a list it accepts always fits.
const MaxRulesPerDirection = 60

// MaxDescriptionLen is EC2's limit on a rule description.
const MaxDescriptionLen = 255

// RuleInput is one rule as the API receives it. Pointers tell an absent
// member from a zero one, so a missing fromPort is an error, not port 0.
type RuleInput struct {
	Protocol      *string `json:"protocol"`
	FromPort      *int    `json:"fromPort"`
	ToPort        *int    `json:"toPort"`
	CIDRv4        *string `json:"cidrIpv4"`
	CIDRv6        *string `json:"cidrIpv6"`
	SourceGroupID *string `json:"sourceSecurityGroupId"`
	// PrefixListID is accepted by the decoder only to be refused with a clear
	// message: GET shows prefix-list rules, and a client echoing them back
	// should learn why they cannot be sent.
	PrefixListID *string `json:"prefixListId"`
	Description  *string `json:"description"`
}

var groupIDPattern = regexp.MustCompile(`^sg-[0-9a-f]{8}([0-9a-f]{9})?$`)

// descriptionAllowed is EC2's character set for rule descriptions:
// a-zA-Z0-9. _-:/()#,@[]+=&;{}!$*
const descriptionAllowed = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789. _-:/()#,@[]+=&;{}!$*"

// ParseRules parses both lists of a request; a nil error means both are valid.
// The error is a fault.Validation naming every field at fault.
func ParseRules(inbound, outbound []RuleInput) (Rules, error) {
	in, errsIn := Parse(FieldInbound, inbound)
	out, errsOut := Parse(FieldOutbound, outbound)
	if errs := append(errsIn, errsOut...); len(errs) > 0 {
		return Rules{}, fault.Validation(errs...)
	}
	return Rules{Inbound: in, Outbound: out}, nil
}

// Parse checks one direction's rules (field is "inboundRules" or
// "outboundRules") and returns them normalised, in input order, so index i of
// the result is index i of the input. Errors name fields like
// "inboundRules[2].cidrIpv4". The rules are returned only when there are no
// errors.
//
// CIDR blocks must be network addresses: "10.0.0.1/8" is refused (with the
// network it probably meant) rather than silently widened or narrowed, since
// either guess could open or close the wrong range. Textual variants of the
// same block ("2001:DB8::/32") are accepted and written canonically.
func Parse(field string, rules []RuleInput) ([]Rule, []fault.FieldError) {
	if len(rules) > MaxRulesPerDirection {
		// Only the count: the list must shrink anyway, and this keeps the
		// answer small however long the list is.
		return nil, []fault.FieldError{{Field: field, Message: fmt.Sprintf(
			"at most %d rules are allowed per direction (EC2's default quota per security group); got %d",
			MaxRulesPerDirection, len(rules))}}
	}
	var errs []fault.FieldError
	out := make([]Rule, 0, len(rules))
	seen := make(map[Key]int, len(rules))
	for i, in := range rules {
		at := fmt.Sprintf("%s[%d]", field, i)
		r, ruleErrs := parseRule(at, in)
		if len(ruleErrs) > 0 {
			errs = append(errs, ruleErrs...)
			continue
		}
		if j, dup := seen[r.Key()]; dup {
			errs = append(errs, fault.FieldError{Field: at, Message: fmt.Sprintf(
				"duplicates %s[%d]: same protocol, ports and source (descriptions do not make rules distinct)", field, j)})
			continue
		}
		seen[r.Key()] = i
		out = append(out, r)
	}
	if len(errs) > 0 {
		return nil, errs
	}
	return out, nil
}

func parseRule(at string, in RuleInput) (Rule, []fault.FieldError) {
	var errs []fault.FieldError
	fail := func(member, format string, args ...any) {
		f := at
		if member != "" {
			f += "." + member
		}
		errs = append(errs, fault.FieldError{Field: f, Message: fmt.Sprintf(format, args...)})
	}
	var r Rule

	switch {
	case in.Protocol == nil:
		fail("protocol", "is required: one of tcp, udp, icmp, all")
	case *in.Protocol == ProtocolTCP, *in.Protocol == ProtocolUDP, *in.Protocol == ProtocolICMP, *in.Protocol == ProtocolAll:
		r.Protocol = *in.Protocol
	default:
		fail("protocol", "must be one of tcp, udp, icmp, all; got %q", *in.Protocol)
	}

	switch r.Protocol {
	case ProtocolTCP, ProtocolUDP:
		from, fromOK := port(in.FromPort, 0, 65535)
		to, toOK := port(in.ToPort, 0, 65535)
		if in.FromPort == nil {
			fail("fromPort", "is required for %s: a port 0–65535", r.Protocol)
		} else if !fromOK {
			fail("fromPort", "must be a port 0–65535; got %d", from)
		}
		if in.ToPort == nil {
			fail("toPort", "is required for %s: a port 0–65535 (equal to fromPort for a single port)", r.Protocol)
		} else if !toOK {
			fail("toPort", "must be a port 0–65535; got %d", to)
		}
		if fromOK && toOK && from > to {
			fail("toPort", "must be at least fromPort (%d); got %d", from, to)
		}
		r.FromPort, r.ToPort = from, to
	case ProtocolICMP:
		typ, typOK := icmpValue(in.FromPort)
		code, codeOK := icmpValue(in.ToPort)
		if in.FromPort == nil {
			fail("fromPort", "is required for icmp: the ICMP type, -1 for all types or 0–255")
		} else if !typOK {
			fail("fromPort", "is the ICMP type for icmp: -1 for all types or 0–255; got %d", typ)
		}
		if in.ToPort == nil {
			fail("toPort", "is required for icmp: the ICMP code, -1 for all codes or 0–255")
		} else if !codeOK {
			fail("toPort", "is the ICMP code for icmp: -1 for all codes or 0–255; got %d", code)
		}
		if typOK && codeOK && typ == -1 && code != -1 {
			fail("toPort", "must be -1 when fromPort (the ICMP type) is -1: a code only narrows one type")
		}
		r.FromPort, r.ToPort = typ, code
	case ProtocolAll:
		if in.FromPort != nil && *in.FromPort != -1 {
			fail("fromPort", "must be -1 or absent for protocol all (it covers every port); got %d", *in.FromPort)
		}
		if in.ToPort != nil && *in.ToPort != -1 {
			fail("toPort", "must be -1 or absent for protocol all (it covers every port); got %d", *in.ToPort)
		}
		r.FromPort, r.ToPort = -1, -1
	}

	if in.PrefixListID != nil {
		fail("prefixListId", "cannot be set: dFlow shows prefix-list rules found in AWS but does not manage them; remove this member")
	}
	var sources []string
	for _, s := range []struct {
		name string
		v    *string
	}{{"cidrIpv4", in.CIDRv4}, {"cidrIpv6", in.CIDRv6}, {"sourceSecurityGroupId", in.SourceGroupID}} {
		if s.v != nil {
			sources = append(sources, s.name)
		}
	}
	switch len(sources) {
	case 0:
		fail("", "needs exactly one of cidrIpv4, cidrIpv6, sourceSecurityGroupId")
	case 1:
		switch {
		case in.CIDRv4 != nil:
			if c, msg := parseCIDR(*in.CIDRv4, false); msg != "" {
				fail("cidrIpv4", "%s", msg)
			} else {
				r.CIDRv4 = c
			}
		case in.CIDRv6 != nil:
			if c, msg := parseCIDR(*in.CIDRv6, true); msg != "" {
				fail("cidrIpv6", "%s", msg)
			} else if r.Protocol == ProtocolICMP {
				// EC2 takes it, but icmp is ICMP for IPv4 and would never match
				// IPv6 traffic: a rule that silently does nothing.
				fail("cidrIpv6", "cannot be used with protocol icmp, which matches IPv4 ICMP only (ICMPv6 rules are not supported)")
			} else {
				r.CIDRv6 = c
			}
		default:
			if !groupIDPattern.MatchString(*in.SourceGroupID) {
				fail("sourceSecurityGroupId", "must be a security group id like sg-0123456789abcdef0; got %q", *in.SourceGroupID)
			} else {
				r.SourceGroupID = *in.SourceGroupID
			}
		}
	default:
		fail("", "needs exactly one of cidrIpv4, cidrIpv6, sourceSecurityGroupId; got %s", strings.Join(sources, " and "))
	}

	if in.Description != nil {
		if msg := checkDescription(*in.Description); msg != "" {
			fail("description", "%s", msg)
		} else {
			r.Description = *in.Description
		}
	}
	return r, errs
}

// port returns *p and whether it lies in [lo, hi]; nil is (0, false).
func port(p *int, lo, hi int) (int, bool) {
	if p == nil {
		return 0, false
	}
	return *p, *p >= lo && *p <= hi
}

func icmpValue(p *int) (int, bool) {
	v, ok := port(p, -1, 255)
	return v, ok
}

// parseCIDR returns the canonical text of s, or a message saying what is wrong.
func parseCIDR(s string, v6 bool) (string, string) {
	family, example := "IPv4", "10.0.0.0/16"
	if v6 {
		family, example = "IPv6", "2001:db8::/32"
	}
	p, err := netip.ParsePrefix(s)
	if err != nil {
		return "", fmt.Sprintf("must be an %s CIDR block like %s; got %q", family, example, s)
	}
	switch a := p.Addr(); {
	case !v6 && a.Is6():
		return "", fmt.Sprintf("%s is an IPv6 range: put it in cidrIpv6", s)
	case v6 && a.Is4():
		return "", fmt.Sprintf("%s is an IPv4 range: put it in cidrIpv4", s)
	case v6 && a.Is4In6():
		return "", fmt.Sprintf("%s is an IPv4-mapped range: put the IPv4 range in cidrIpv4", s)
	}
	if m := p.Masked(); m != p {
		return "", fmt.Sprintf("%s is not a network address (host bits are set): did you mean %s?", s, m)
	}
	return p.String(), ""
}

func checkDescription(d string) string {
	for _, c := range d {
		if !strings.ContainsRune(descriptionAllowed, c) {
			return fmt.Sprintf("contains %q, which EC2 does not allow in rule descriptions (allowed: letters, digits, space and ._-:/()#,@[]+=&;{}!$*)", c)
		}
	}
	if len(d) > MaxDescriptionLen {
		return fmt.Sprintf("must be at most %d characters; got %d", MaxDescriptionLen, len(d))
	}
	return ""
}

// Validate checks rules built in code or loaded from the store by the same
// rules as Parse, and that they are already in Parse's normal form (so Diff
// against AWS compares like with like).
func Validate(field string, rules []Rule) []fault.FieldError {
	in := make([]RuleInput, len(rules))
	for i, r := range rules {
		in[i] = RuleInput{Protocol: &r.Protocol, FromPort: &r.FromPort, ToPort: &r.ToPort,
			CIDRv4: opt(r.CIDRv4), CIDRv6: opt(r.CIDRv6), SourceGroupID: opt(r.SourceGroupID),
			PrefixListID: opt(r.PrefixListID), Description: opt(r.Description)}
	}
	parsed, errs := Parse(field, in)
	if len(errs) > 0 {
		return errs
	}
	for i := range parsed {
		if parsed[i].CIDRv4 != rules[i].CIDRv4 {
			errs = append(errs, fault.FieldError{Field: fmt.Sprintf("%s[%d].cidrIpv4", field, i),
				Message: fmt.Sprintf("must be written canonically as %s", parsed[i].CIDRv4)})
		}
		if parsed[i].CIDRv6 != rules[i].CIDRv6 {
			errs = append(errs, fault.FieldError{Field: fmt.Sprintf("%s[%d].cidrIpv6", field, i),
				Message: fmt.Sprintf("must be written canonically as %s", parsed[i].CIDRv6)})
		}
	}
	return errs
}

func opt(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}
