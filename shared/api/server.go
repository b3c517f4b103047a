package api

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/aws/aws-lambda-go/events"

	"github.com/dflow-sh/cloud-accounts/shared/audit"
	"github.com/dflow-sh/cloud-accounts/shared/fault"
	"github.com/dflow-sh/cloud-accounts/shared/ids"
	"github.com/dflow-sh/cloud-accounts/shared/tenancy"
)

// Authorizer answers who a user is inside an organisation.
type Authorizer interface {
	// MemberRole returns the user's role; a fault.NotFound when not a member.
	MemberRole(ctx context.Context, orgID, userID string) (tenancy.Role, error)
	OrgExists(ctx context.Context, orgID string) (bool, error)
}

// Auditor keeps the audit trail.
type Auditor interface {
	Record(ctx context.Context, e audit.Event) error
}

// Deps are what the pipeline needs from the outside.
type Deps struct {
	Authorizer  Authorizer
	Auditor     Auditor
	Idempotency IdempotencyStore
	Logger      *slog.Logger
	Now         func() time.Time
}

// Server dispatches API Gateway HTTP API (payload 2.0) events to routes.
type Server struct {
	deps   Deps
	routes map[string]Route
}

// NewServer checks every route and returns the pipeline.
func NewServer(deps Deps, routes []Route) (*Server, error) {
	if deps.Authorizer == nil || deps.Auditor == nil || deps.Idempotency == nil || deps.Logger == nil {
		return nil, fmt.Errorf("api: Authorizer, Auditor, Idempotency and Logger are required")
	}
	if deps.Now == nil {
		deps.Now = time.Now
	}
	s := &Server{deps: deps, routes: make(map[string]Route, len(routes))}
	for _, r := range routes {
		if err := r.validate(); err != nil {
			return nil, err
		}
		if _, dup := s.routes[r.Key]; dup {
			return nil, fmt.Errorf("route %q registered twice", r.Key)
		}
		s.routes[r.Key] = r
	}
	return s, nil
}

// RouteKeys lists the routes the server handles.
func (s *Server) RouteKeys() []string {
	out := make([]string, 0, len(s.routes))
	for k := range s.routes {
		out = append(out, k)
	}
	return out
}

// call is the state of one request as it walks the pipeline.
type call struct {
	req      *Request
	route    Route
	found    bool
	denied   bool
	status   int
	code     string
	err      error
	replayed bool
}

// Handle serves one API Gateway event. It returns an error only when no
// response can be made at all.
func (s *Server) Handle(ctx context.Context, e events.APIGatewayV2HTTPRequest) (events.APIGatewayV2HTTPResponse, error) {
	start := time.Now()
	reqID := e.RequestContext.RequestID
	if reqID == "" {
		reqID = ids.New("req")
	}
	c := &call{req: &Request{ID: reqID, RouteKey: e.RouteKey, Event: &e, Params: map[string]string{}}}
	resp := s.serve(ctx, c)
	out := s.render(c, resp)
	s.audit(ctx, c)
	s.log(ctx, c, start)
	return out, nil
}

func (s *Server) serve(ctx context.Context, c *call) *Response {
	r := c.req
	c.route, c.found = s.routes[r.RouteKey]
	if !c.found {
		return s.fail(c, fault.NotFoundf("route_not_found", "no route %s", r.RouteKey))
	}
	// Identity only from claims API Gateway's JWT authorizer verified.
	if a := r.Event.RequestContext.Authorizer; a != nil && a.JWT != nil {
		r.UserID = a.JWT.Claims["sub"]
	}
	if r.UserID == "" {
		return s.fail(c, &fault.Error{Kind: fault.Unauthenticated, Code: "unauthenticated", Detail: "a valid bearer token is required"})
	}
	if !ids.ValidUser(r.UserID) {
		return s.fail(c, &fault.Error{Kind: fault.Unauthenticated, Code: "unauthenticated", Detail: "the token's subject is not a usable user id"})
	}
	for _, name := range c.route.params() {
		v := r.Event.PathParameters[name]
		if !paramFormats[name](v) {
			return s.fail(c, fault.Field(name, "is not a valid %s", name))
		}
		r.Params[name] = v
	}
	r.OrgID = r.Params["orgId"]
	if err := s.authorize(ctx, c); err != nil {
		return s.fail(c, err)
	}
	body, err := readBody(r.Event)
	if err != nil {
		return s.fail(c, err)
	}
	r.body = body

	if c.route.Idempotent {
		if key := r.Header("Idempotency-Key"); key != "" {
			return s.idempotent(ctx, c, key)
		}
	}
	return s.invoke(ctx, c)
}

func (s *Server) invoke(ctx context.Context, c *call) *Response {
	resp, err := c.route.Handler(ctx, c.req)
	if err != nil {
		return s.fail(c, err)
	}
	return resp
}

// authorize is deny by default: a non-member learns nothing (404), a member
// without the permission gets 403.
func (s *Server) authorize(ctx context.Context, c *call) error {
	p := c.route.Permission
	if p.kind == permUser {
		return nil
	}
	r := c.req
	role, err := s.deps.Authorizer.MemberRole(ctx, r.OrgID, r.UserID)
	if fault.KindOf(err) == fault.NotFound {
		c.denied = true
		return fault.NotFoundf("not_found", "no such organisation")
	}
	if err != nil {
		return fmt.Errorf("authorize %s in %s: %w", r.UserID, r.OrgID, err)
	}
	r.Role = role
	if !p.allows(role) {
		c.denied = true
		return fault.Forbiddenf("permission_denied", "your role %q lacks %s", role.Name, p).With("permission", p.String())
	}
	return nil
}

func (s *Server) fail(c *call, err error) *Response {
	c.err = err
	status, body, header := problemFor(err, c.req.ID)
	c.code, _ = body["code"].(string)
	return &Response{Status: status, Body: body, Header: header}
}

func (s *Server) render(c *call, resp *Response) events.APIGatewayV2HTTPResponse {
	if resp == nil {
		resp = s.fail(c, fmt.Errorf("handler for %s returned no response", c.req.RouteKey))
	}
	c.status = resp.Status
	header := map[string]string{
		"X-Request-Id":  c.req.ID,
		"Cache-Control": "no-store",
	}
	for k, v := range resp.Header {
		header[k] = v
	}
	out := events.APIGatewayV2HTTPResponse{StatusCode: resp.Status, Headers: header}
	if resp.Body == nil || resp.Status == http.StatusNoContent {
		return out
	}
	b, err := json.Marshal(resp.Body)
	if err != nil {
		return s.render(c, s.fail(c, fmt.Errorf("encode response: %w", err)))
	}
	out.Body = string(b)
	if resp.Status >= 400 {
		header["Content-Type"] = "application/problem+json"
	} else {
		header["Content-Type"] = "application/json"
	}
	return out
}

// audit records every mutating request that named a known route, allowed or
// denied. A non-member's attempt is recorded only in an organisation that
// exists, so strangers cannot create audit partitions at will.
func (s *Server) audit(ctx context.Context, c *call) {
	if !c.found || !c.route.mutating() || c.req.UserID == "" || c.req.OrgID == "" || c.replayed {
		return
	}
	r := c.req
	outcome := audit.OutcomeOf(c.status)
	if c.status == http.StatusForbidden {
		// Refusals decided inside a use-case (e.g. privilege escalation) too.
		outcome = audit.Denied
	}
	if c.denied {
		outcome = audit.Denied
		if r.Role.ID == "" {
			if ok, err := s.deps.Authorizer.OrgExists(ctx, r.OrgID); err != nil || !ok {
				return
			}
		}
	}
	target := r.auditTarget
	if target == "" {
		target = r.Event.RawPath
	}
	ev := audit.Event{
		ID: ids.New(ids.Event), OrgID: r.OrgID, At: s.deps.Now().UTC(), ActorID: r.UserID,
		Action: c.route.Action, Target: target, Outcome: outcome, Status: c.status, RequestID: r.ID,
	}
	if c.status >= 400 {
		ev.Code = c.code
	}
	if err := s.deps.Auditor.Record(ctx, ev); err != nil {
		// The event is logged whole, so the trail survives in the logs.
		s.deps.Logger.ErrorContext(ctx, "audit write failed", "error", err.Error(), slog.Group("event",
			"id", ev.ID, "orgId", ev.OrgID, "at", ev.At, "actor", ev.ActorID, "action", ev.Action,
			"target", ev.Target, "outcome", ev.Outcome, "status", ev.Status, "code", ev.Code, "requestId", ev.RequestID))
	}
}

func (s *Server) log(ctx context.Context, c *call, start time.Time) {
	r := c.req
	attrs := []any{
		"requestId", r.ID, "route", r.RouteKey, "status", c.status,
		"durationMs", float64(time.Since(start).Microseconds()) / 1000,
		"orgId", r.OrgID, "userId", r.UserID,
	}
	if c.replayed {
		attrs = append(attrs, "idempotentReplay", true)
	}
	level := slog.LevelInfo
	if c.status >= 500 {
		level = slog.LevelError
		if c.err != nil {
			attrs = append(attrs, "error", c.err.Error())
		}
	} else if c.code != "" {
		attrs = append(attrs, "code", c.code)
	}
	s.deps.Logger.Log(ctx, level, "request", attrs...)
}

// fingerprint identifies a request's content for idempotency.
func fingerprint(r *Request) string {
	h := sha256.New()
	h.Write([]byte(r.RouteKey))
	h.Write([]byte{0})
	h.Write([]byte(r.Event.RawPath))
	h.Write([]byte{0})
	h.Write(r.body)
	return hex.EncodeToString(h.Sum(nil))
}

func headerValue(h map[string]string, name string) string {
	for k, v := range h {
		if strings.EqualFold(k, name) {
			return v
		}
	}
	return ""
}
