package api

import (
	"context"
	"encoding/json"
	"time"

	"github.com/dflow-sh/cloud-accounts/shared/fault"
)

// IdempotencyKey scopes a client's Idempotency-Key to organisation and user,
// so one tenant's keys can never replay another's responses.
type IdempotencyKey struct {
	OrgID  string
	UserID string
	Key    string
}

// StoredResponse is a completed response kept for replay.
type StoredResponse struct {
	Status int               `json:"status"`
	Header map[string]string `json:"header"`
	Body   string            `json:"body"`
}

// IdempotencyStore records keys for at least IdempotencyTTL.
type IdempotencyStore interface {
	// Begin claims the key for a request with this fingerprint. It returns
	// the stored response when the key already completed, ErrInProgress while
	// another request holds it, and ErrKeyReused for a different request.
	Begin(ctx context.Context, k IdempotencyKey, fingerprint string, lease time.Duration) (*StoredResponse, error)
	Finish(ctx context.Context, k IdempotencyKey, resp StoredResponse) error
	// Abandon frees the key after a failure, so the client may retry.
	Abandon(ctx context.Context, k IdempotencyKey) error
}

const (
	// IdempotencyTTL is how long completed keys replay.
	IdempotencyTTL = 25 * time.Hour
	// idempotencyLease outlives the function timeout: a request that died
	// mid-way stops blocking its key after it.
	idempotencyLease = 60 * time.Second
	maxKeyLen        = 255
)

var (
	ErrInProgress = fault.Conflictf("idempotency_in_progress", "a request with this Idempotency-Key is still being processed; retry shortly")
	ErrKeyReused  = fault.Unprocessablef("idempotency_key_reused", "this Idempotency-Key was used for a different request")
)

func validKey(k string) bool {
	if len(k) == 0 || len(k) > maxKeyLen {
		return false
	}
	for i := 0; i < len(k); i++ {
		if k[i] < 0x21 || k[i] > 0x7e {
			return false
		}
	}
	return true
}

func (s *Server) idempotent(ctx context.Context, c *call, key string) *Response {
	r := c.req
	if !validKey(key) {
		return s.fail(c, fault.Field("Idempotency-Key", "must be 1 to %d visible ASCII characters", maxKeyLen))
	}
	scope := r.OrgID
	if scope == "" {
		scope = "-"
	}
	k := IdempotencyKey{OrgID: scope, UserID: r.UserID, Key: key}
	stored, err := s.deps.Idempotency.Begin(ctx, k, fingerprint(r), idempotencyLease)
	if err != nil {
		return s.fail(c, err)
	}
	if stored != nil {
		c.replayed = true
		resp := &Response{Status: stored.Status, Header: map[string]string{}}
		for name, v := range stored.Header {
			resp.Header[name] = v
		}
		resp.Header["Idempotent-Replayed"] = "true"
		if stored.Body != "" {
			resp.Body = json.RawMessage(stored.Body)
		}
		return resp
	}
	resp := s.invoke(ctx, c)
	if resp.Status >= 500 {
		if err := s.deps.Idempotency.Abandon(ctx, k); err != nil {
			s.deps.Logger.ErrorContext(ctx, "idempotency abandon failed", "requestId", r.ID, "error", err.Error())
		}
		return resp
	}
	keep := StoredResponse{Status: resp.Status, Header: map[string]string{}}
	for name, v := range resp.Header {
		keep.Header[name] = v
	}
	if resp.Body != nil {
		b, err := json.Marshal(resp.Body)
		if err != nil {
			return s.fail(c, err)
		}
		resp.Body = json.RawMessage(b)
		keep.Body = string(b)
	}
	if err := s.deps.Idempotency.Finish(ctx, k, keep); err != nil {
		s.deps.Logger.ErrorContext(ctx, "idempotency finish failed", "requestId", r.ID, "error", err.Error())
	}
	return resp
}
