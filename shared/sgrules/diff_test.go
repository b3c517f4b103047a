package sgrules

import (
	"reflect"
	"slices"
	"strings"
	"testing"
)

func tcp(port int, cidr string) Rule {
	r := Rule{Protocol: ProtocolTCP, FromPort: port, ToPort: port}
	if strings.HasPrefix(cidr, "sg-") {
		r.SourceGroupID = cidr
	} else if strings.Contains(cidr, ":") {
		r.CIDRv6 = cidr
	} else {
		r.CIDRv4 = cidr
	}
	return r
}

func described(r Rule, d string) Rule { r.Description = d; return r }

func allFrom(cidr string) Rule {
	r := tcp(0, cidr)
	r.Protocol, r.FromPort, r.ToPort = ProtocolAll, -1, -1
	return r
}

func TestWarnings(t *testing.T) {
	t.Parallel()
	rules := Rules{
		Inbound: []Rule{
			tcp(22, "10.0.0.0/8"), // 0: narrow
			tcp(22, "0.0.0.0/0"),  // 1: ssh v4
			tcp(443, "0.0.0.0/0"), // 2: https is fine
			{Protocol: "tcp", FromPort: 20, ToPort: 30, CIDRv6: "::/0"}, // 3: range covering 22, v6
			{Protocol: "udp", FromPort: 22, ToPort: 22, CIDRv4: "0.0.0.0/0"},
			allFrom("::/0"),       // 5: all v6
			allFrom("0.0.0.0/0"),  // 6: all v4
			allFrom("10.0.0.0/8"), // narrow all
			tcp(22, "0.0.0.0/1"),  // not the whole world
			{Protocol: "tcp", FromPort: 23, ToPort: 65535, CIDRv4: "0.0.0.0/0"},
		},
		Outbound: []Rule{allFrom("0.0.0.0/0"), tcp(22, "0.0.0.0/0")},
	}
	var got []string
	for _, w := range Warnings(rules) {
		got = append(got, w.Code+" "+w.Field)
		if w.Message == "" {
			t.Errorf("warning without message: %+v", w)
		}
	}
	want := []string{
		"ssh_open_to_world inboundRules[1]",
		"ssh_open_to_world inboundRules[3]",
		"all_traffic_open_to_world inboundRules[5]",
		"all_traffic_open_to_world inboundRules[6]",
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("warnings %q\nwant %q", got, want)
	}
	if ws := Warnings(Rules{Inbound: []Rule{tcp(22, "10.0.0.0/8")}}); ws != nil {
		t.Errorf("no warnings expected: %+v", ws)
	}
	w := Warnings(Rules{Inbound: []Rule{tcp(22, "0.0.0.0/0")}})[0]
	if w.Message != "inboundRules[0] allows SSH (tcp 22) from 0.0.0.0/0: anyone on the internet can try to log in; consider narrowing it to your own ranges" {
		t.Errorf("message %q", w.Message)
	}
}

func TestDiff(t *testing.T) {
	t.Parallel()
	ssh := tcp(22, "10.0.0.0/8")
	https4 := tcp(443, "0.0.0.0/0")
	https6 := tcp(443, "::/0")
	peers := allFrom("sg-0123456789abcdef0")
	cases := []struct {
		name       string
		want, have Rules
		change     Change
	}{
		{"no-op", Rules{Inbound: []Rule{ssh, https4}, Outbound: DefaultEgress()},
			Rules{Inbound: []Rule{https4, ssh}, Outbound: DefaultEgress()}, Change{}},
		{"both empty", Rules{}, Rules{}, Change{}},
		{"add", Rules{Inbound: []Rule{ssh, https6, https4}}, Rules{Inbound: []Rule{ssh}},
			Change{AuthorizeIngress: []Rule{https4, https6}}},
		{"remove", Rules{Inbound: []Rule{ssh}}, Rules{Inbound: []Rule{described(https6, "was"), ssh, peers}},
			Change{RevokeIngress: []Rule{peers, described(https6, "was")}}},
		{"change port", Rules{Inbound: []Rule{described(tcp(2222, "10.0.0.0/8"), "ssh")}}, Rules{Inbound: []Rule{described(ssh, "ssh")}},
			Change{AuthorizeIngress: []Rule{described(tcp(2222, "10.0.0.0/8"), "ssh")}, RevokeIngress: []Rule{described(ssh, "ssh")}}},
		{"change source family", Rules{Inbound: []Rule{https6}}, Rules{Inbound: []Rule{https4}},
			Change{AuthorizeIngress: []Rule{https6}, RevokeIngress: []Rule{https4}}},
		{"description only", Rules{Inbound: []Rule{described(ssh, "office")}, Outbound: []Rule{https4}},
			Rules{Inbound: []Rule{described(ssh, "old")}, Outbound: []Rule{described(https4, "gone")}},
			Change{RedescribeIngress: []Rule{described(ssh, "office")}, RedescribeEgress: []Rule{https4}}},
		{"default egress revoked", Rules{Outbound: []Rule{https4, https6}}, Rules{Outbound: DefaultEgress()},
			Change{AuthorizeEgress: []Rule{https4, https6}, RevokeEgress: DefaultEgress()}},
		{"default egress kept", Rules{Outbound: append(DefaultEgress(), https6)}, Rules{Outbound: DefaultEgress()},
			Change{AuthorizeEgress: []Rule{https6}}},
		{"directions are separate", Rules{Inbound: []Rule{ssh}}, Rules{Outbound: []Rule{ssh}},
			Change{AuthorizeIngress: []Rule{ssh}, RevokeEgress: []Rule{ssh}}},
		{"repeats count once", Rules{Inbound: []Rule{ssh, described(ssh, "x")}}, Rules{Inbound: []Rule{https4, https4}},
			Change{AuthorizeIngress: []Rule{ssh}, RevokeIngress: []Rule{https4}}},
		{"prefix list from AWS is revoked", Rules{}, Rules{Outbound: []Rule{{Protocol: "tcp", FromPort: 443, ToPort: 443, PrefixListID: "pl-63a5400a"}}},
			Change{RevokeEgress: []Rule{{Protocol: "tcp", FromPort: 443, ToPort: 443, PrefixListID: "pl-63a5400a"}}}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := Diff(tc.want, tc.have)
			if !reflect.DeepEqual(c, tc.change) {
				t.Fatalf("change %+v\nwant %+v", c, tc.change)
			}
			if c.Empty() != reflect.DeepEqual(tc.change, Change{}) {
				t.Errorf("Empty() = %v", c.Empty())
			}
			// Applying the change to have gives want (descriptions included).
			if got, want := apply(tc.have, c), dedupe(tc.want); !reflect.DeepEqual(got, want) {
				t.Errorf("have+change = %+v\nwant %+v", got, want)
			}
		})
	}
}

func TestDiffSorted(t *testing.T) {
	t.Parallel()
	want := Rules{Inbound: []Rule{
		tcp(443, "::/0"), tcp(22, "sg-01234567"), allFrom("10.0.0.0/8"), tcp(22, "10.0.0.0/8"),
		{Protocol: "icmp", FromPort: 8, ToPort: -1, CIDRv4: "10.0.0.0/8"}, tcp(22, "192.168.0.0/16"), tcp(22, "::/0"),
	}}
	c := Diff(want, Rules{})
	got := c.AuthorizeIngress
	wantOrder := []Rule{
		allFrom("10.0.0.0/8"),
		{Protocol: "icmp", FromPort: 8, ToPort: -1, CIDRv4: "10.0.0.0/8"},
		tcp(22, "10.0.0.0/8"), tcp(22, "192.168.0.0/16"), tcp(22, "::/0"), tcp(22, "sg-01234567"),
		tcp(443, "::/0"),
	}
	if !reflect.DeepEqual(got, wantOrder) {
		t.Fatalf("order %+v", got)
	}
	for range 20 {
		shuffled := slices.Clone(want.Inbound)
		slices.Reverse(shuffled)
		if !reflect.DeepEqual(Diff(Rules{Inbound: shuffled}, Rules{}), c) {
			t.Fatal("order depends on input order")
		}
	}
}

func TestDrift(t *testing.T) {
	t.Parallel()
	ssh := described(tcp(22, "10.0.0.0/8"), "office")
	https6 := tcp(443, "::/0")
	want := Rules{
		Inbound:  []Rule{ssh, https6},
		Outbound: []Rule{tcp(443, "0.0.0.0/0")},
	}
	have := Rules{
		Inbound:  []Rule{described(tcp(22, "10.0.0.0/8"), "changed in console"), tcp(3389, "0.0.0.0/0")},
		Outbound: DefaultEgress(),
	}
	got := Drift(want, have)
	actual := described(tcp(22, "10.0.0.0/8"), "changed in console")
	wantItems := []DriftItem{
		{Direction: Inbound, Kind: DriftDescription, Rule: ssh, Actual: &actual},
		{Direction: Inbound, Kind: DriftMissing, Rule: https6},
		{Direction: Inbound, Kind: DriftUnexpected, Rule: tcp(3389, "0.0.0.0/0")},
		{Direction: Outbound, Kind: DriftUnexpected, Rule: DefaultEgress()[0]},
		{Direction: Outbound, Kind: DriftMissing, Rule: tcp(443, "0.0.0.0/0")},
	}
	if !reflect.DeepEqual(got, wantItems) {
		t.Fatalf("drift %+v\nwant %+v", got, wantItems)
	}
	if d := Drift(want, want); d != nil {
		t.Errorf("no drift expected: %+v", d)
	}
	// Sync clears drift.
	if d := Drift(want, apply(have, Diff(want, have))); d != nil {
		t.Errorf("drift after sync: %+v", d)
	}
}

// apply is what the EC2 adapter does with a Change, on a sorted copy.
func apply(have Rules, c Change) Rules {
	one := func(have, authorize, revoke, redescribe []Rule) []Rule {
		var out []Rule
		for _, r := range dedupeList(have) {
			if slices.ContainsFunc(revoke, func(x Rule) bool { return x.Key() == r.Key() }) {
				continue
			}
			if i := slices.IndexFunc(redescribe, func(x Rule) bool { return x.Key() == r.Key() }); i >= 0 {
				r.Description = redescribe[i].Description
			}
			out = append(out, r)
		}
		out = append(out, authorize...)
		Sort(out)
		return out
	}
	return Rules{
		Inbound:  one(have.Inbound, c.AuthorizeIngress, c.RevokeIngress, c.RedescribeIngress),
		Outbound: one(have.Outbound, c.AuthorizeEgress, c.RevokeEgress, c.RedescribeEgress),
	}
}

func dedupe(r Rules) Rules {
	in, out := dedupeList(r.Inbound), dedupeList(r.Outbound)
	Sort(in)
	Sort(out)
	return Rules{Inbound: in, Outbound: out}
}

func dedupeList(rs []Rule) []Rule {
	var out []Rule
	seen := map[Key]bool{}
	for _, r := range rs {
		if !seen[r.Key()] {
			seen[r.Key()] = true
			out = append(out, r)
		}
	}
	return out
}
