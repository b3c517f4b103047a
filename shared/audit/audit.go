// Package audit describes the trail of who did what: one event for every
// mutating request, allowed or denied. Events carry no request bodies, so no
// secret can reach them.
package audit

import "time"

// Outcomes of an audited action.
const (
	Success = "success"
	Denied  = "denied"
	Failure = "failure"
)

// Event is one audited action.
type Event struct {
	ID        string    `json:"id"`
	OrgID     string    `json:"orgId"`
	At        time.Time `json:"at"`
	ActorID   string    `json:"actor"`
	Action    string    `json:"action"`
	Target    string    `json:"target"`
	Outcome   string    `json:"outcome"`
	Status    int       `json:"status"`
	Code      string    `json:"code,omitempty"`
	RequestID string    `json:"requestId"`
}

// OutcomeOf classifies the status of a request that passed authorization.
func OutcomeOf(status int) string {
	if status < 400 {
		return Success
	}
	return Failure
}
