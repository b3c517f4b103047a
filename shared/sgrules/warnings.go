package sgrules

import "fmt"

// Warning codes. Such rules are allowed; the API answers them with a warning.
const (
	WarnSSHOpenToWorld        = "ssh_open_to_world"
	WarnAllTrafficOpenToWorld = "all_traffic_open_to_world"
)

// Warning is a rule the API accepts but the caller should look at again.
type Warning struct {
	Code string `json:"code"`
	// Field is the rule, e.g. "inboundRules[0]" (Parse keeps input order).
	Field   string `json:"field"`
	Message string `json:"message"`
}

// Warnings lists inbound rules open to the whole internet (0.0.0.0/0 or ::/0)
// for SSH or for all traffic, one warning per rule, in rule order. Outbound
// rules to the world are normal and are not warned about.
func Warnings(rules Rules) []Warning {
	var ws []Warning
	for i, r := range rules.Inbound {
		if !openToWorld(r) {
			continue
		}
		field := fmt.Sprintf("%s[%d]", FieldInbound, i)
		switch {
		case r.Protocol == ProtocolAll:
			ws = append(ws, Warning{Code: WarnAllTrafficOpenToWorld, Field: field, Message: fmt.Sprintf(
				"%s allows all traffic from %s: every port of the node is reachable from the internet", field, r.source())})
		case r.Protocol == ProtocolTCP && r.FromPort <= 22 && 22 <= r.ToPort:
			ws = append(ws, Warning{Code: WarnSSHOpenToWorld, Field: field, Message: fmt.Sprintf(
				"%s allows SSH (tcp 22) from %s: anyone on the internet can try to log in; consider narrowing it to your own ranges", field, r.source())})
		}
	}
	return ws
}

func openToWorld(r Rule) bool {
	return r.CIDRv4 == "0.0.0.0/0" || r.CIDRv6 == "::/0"
}
