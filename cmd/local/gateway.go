package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net"
	"net/http"
	"sort"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/aws/aws-lambda-go/events"
	"github.com/dflow-sh/cloud-accounts/shared/samtemplate"
)

// maxRequestBody is API Gateway's payload limit for HTTP APIs.
const maxRequestBody = 10 << 20

// invoker runs a function synchronously; *function is the real one.
type invoker interface {
	Invoke(ctx context.Context, payload []byte) ([]byte, error)
}

// route is an HttpApi event of the template, ready for matching.
type route struct {
	key      string // the route key, e.g. "GET /v1/orgs/{orgId}"
	method   string // upper case; "ANY" matches every method
	segments []segment
	function string
	auth     bool
}

// segment is one path segment of a route: a literal, {name} or {name+}.
type segment struct {
	literal string
	param   string
	greedy  bool
}

// rank orders segments by specificity: a literal beats {param} beats {proxy+}.
func (s segment) rank() int {
	switch {
	case s.param == "":
		return 2
	case !s.greedy:
		return 1
	}
	return 0
}

func compileRoutes(tpl *samtemplate.Template) ([]route, error) {
	var out []route
	for _, fn := range tpl.Functions {
		for _, r := range fn.Routes {
			segs, err := parseRoutePath(r.Path)
			if err != nil {
				return nil, fmt.Errorf("%s event %s: %w", fn.LogicalID, r.Event, err)
			}
			out = append(out, route{
				key:      r.Key(),
				method:   strings.ToUpper(r.Method),
				segments: segs,
				function: fn.LogicalID,
				auth:     routeAuth(tpl, fn.LogicalID, r.Event),
			})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].key < out[j].key })
	return out, nil
}

func parseRoutePath(path string) ([]segment, error) {
	if !strings.HasPrefix(path, "/") {
		return nil, fmt.Errorf("path %q does not start with /", path)
	}
	parts := strings.Split(path[1:], "/")
	segs := make([]segment, len(parts))
	for i, p := range parts {
		if strings.HasPrefix(p, "{") && strings.HasSuffix(p, "}") {
			name := p[1 : len(p)-1]
			greedy := strings.HasSuffix(name, "+")
			name = strings.TrimSuffix(name, "+")
			if name == "" {
				return nil, fmt.Errorf("path %q: empty parameter name", path)
			}
			if greedy && i != len(parts)-1 {
				return nil, fmt.Errorf("path %q: greedy parameter {%s+} must be last", path, name)
			}
			segs[i] = segment{param: name, greedy: greedy}
			continue
		}
		segs[i] = segment{literal: p}
	}
	return segs, nil
}

// matchRoute finds the route for a request as API Gateway does: the most
// specific path wins (literals over {param} over {proxy+}, left to right),
// then an exact method over ANY. The path is the decoded one.
func matchRoute(routes []route, method, path string) (route, map[string]string, bool) {
	if !strings.HasPrefix(path, "/") {
		return route{}, nil, false
	}
	parts := strings.Split(path[1:], "/")
	var (
		best       route
		bestParams map[string]string
		found      bool
	)
	for _, r := range routes {
		if r.method != method && r.method != "ANY" {
			continue
		}
		params, ok := matchSegments(r.segments, parts)
		if !ok {
			continue
		}
		if !found || moreSpecific(r, best) {
			best, bestParams, found = r, params, true
		}
	}
	return best, bestParams, found
}

func matchSegments(segs []segment, parts []string) (map[string]string, bool) {
	var params map[string]string
	set := func(k, v string) {
		if params == nil {
			params = map[string]string{}
		}
		params[k] = v
	}
	for i, s := range segs {
		if i >= len(parts) {
			return nil, false
		}
		switch {
		case s.greedy:
			rest := strings.Join(parts[i:], "/")
			if rest == "" {
				return nil, false
			}
			set(s.param, rest)
			return params, true
		case s.param != "":
			if parts[i] == "" {
				return nil, false
			}
			set(s.param, parts[i])
		case s.literal != parts[i]:
			return nil, false
		}
	}
	return params, len(parts) == len(segs)
}

func moreSpecific(a, b route) bool {
	for i := 0; i < len(a.segments) && i < len(b.segments); i++ {
		if ra, rb := a.segments[i].rank(), b.segments[i].rank(); ra != rb {
			return ra > rb
		}
	}
	if len(a.segments) != len(b.segments) {
		return len(a.segments) > len(b.segments)
	}
	return a.method != "ANY" && b.method == "ANY"
}

// gateway is the HTTP API: it matches routes, runs the JWT authorizer and
// invokes functions with payload format 2.0 events.
type gateway struct {
	routes    []route
	functions map[string]invoker
	auth      *issuer
	log       *slog.Logger
	now       func() time.Time
}

func (g *gateway) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := g.now()
	requestID := newGatewayRequestID()
	w.Header().Set("Apigw-Requestid", requestID)
	status, routeKey := g.serve(w, r, requestID, start)
	g.log.Info("request", "method", r.Method, "path", r.URL.Path, "route", routeKey, "status", status,
		"durationMs", g.now().Sub(start).Milliseconds(), "requestId", requestID)
}

func (g *gateway) serve(w http.ResponseWriter, r *http.Request, requestID string, now time.Time) (int, string) {
	rt, params, ok := matchRoute(g.routes, r.Method, r.URL.Path)
	if !ok {
		return writeMessage(w, http.StatusNotFound, "Not Found"), ""
	}
	var claims map[string]string
	var scopes []string
	if rt.auth {
		token := bearerToken(r.Header.Get("Authorization"))
		if token == "" {
			w.Header().Set("WWW-Authenticate", "Bearer")
			return writeMessage(w, http.StatusUnauthorized, "Unauthorized"), rt.key
		}
		raw, err := g.auth.verify(token, now)
		if err != nil {
			w.Header().Set("WWW-Authenticate", fmt.Sprintf(`Bearer error="invalid_token" error_description=%q`, err.Error()))
			g.log.Info("token rejected", "route", rt.key, "reason", err.Error(), "requestId", requestID)
			return writeMessage(w, http.StatusUnauthorized, "Unauthorized"), rt.key
		}
		claims, scopes = authorizerClaims(raw)
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxRequestBody))
	if err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			return writeMessage(w, http.StatusRequestEntityTooLarge, "Request Entity Too Large"), rt.key
		}
		return writeMessage(w, http.StatusBadRequest, "Bad Request"), rt.key
	}
	ev := buildEvent(r, body, rt, params, claims, scopes, requestID, now)
	payload, err := json.Marshal(ev)
	if err != nil {
		g.log.Error("encode event", "err", err)
		return writeMessage(w, http.StatusInternalServerError, "Internal Server Error"), rt.key
	}
	fn, ok := g.functions[rt.function]
	if !ok {
		g.log.Error("route has no running function", "route", rt.key, "function", rt.function)
		return writeMessage(w, http.StatusInternalServerError, "Internal Server Error"), rt.key
	}
	result, err := fn.Invoke(r.Context(), payload)
	if err != nil {
		return g.writeInvokeError(w, rt, requestID, err), rt.key
	}
	status, err := writeFunctionResponse(w, result)
	if err != nil {
		g.log.Error("malformed function response", "route", rt.key, "function", rt.function, "err", err, "requestId", requestID)
	}
	return status, rt.key
}

// writeInvokeError answers as API Gateway does when the integration fails.
func (g *gateway) writeInvokeError(w http.ResponseWriter, rt route, requestID string, err error) int {
	g.log.Warn("invocation failed", "route", rt.key, "function", rt.function, "err", err, "requestId", requestID)
	var fe *FunctionError
	switch {
	case errors.As(err, &fe):
		return writeMessage(w, http.StatusInternalServerError, "Internal Server Error")
	case errors.Is(err, ErrCrashed):
		return writeMessage(w, http.StatusBadGateway, "Internal Server Error")
	case errors.Is(err, ErrTimeout):
		return writeMessage(w, http.StatusServiceUnavailable, "Service Unavailable")
	case errors.Is(err, ErrPayloadTooLarge):
		return writeMessage(w, http.StatusRequestEntityTooLarge, "Request Entity Too Large")
	case errors.Is(err, context.Canceled):
		return 499 // the client went away before the function was free
	}
	return writeMessage(w, http.StatusInternalServerError, "Internal Server Error")
}

// buildEvent makes the payload format 2.0 event API Gateway sends to Lambda.
func buildEvent(r *http.Request, body []byte, rt route, params, claims map[string]string, scopes []string, requestID string, now time.Time) events.APIGatewayV2HTTPRequest {
	sourceIP, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		sourceIP = r.RemoteAddr
	}
	headers := map[string]string{}
	var cookies []string
	for name, values := range r.Header {
		lower := strings.ToLower(name)
		if lower == "cookie" {
			// Payload 2.0 moves cookies out of the headers.
			for _, v := range values {
				for _, c := range strings.Split(v, ";") {
					if c = strings.TrimSpace(c); c != "" {
						cookies = append(cookies, c)
					}
				}
			}
			continue
		}
		headers[lower] = strings.Join(values, ",")
	}
	host := r.Host
	headers["host"] = host
	if prev := headers["x-forwarded-for"]; prev != "" {
		headers["x-forwarded-for"] = prev + ", " + sourceIP
	} else {
		headers["x-forwarded-for"] = sourceIP
	}
	headers["x-forwarded-proto"] = "http"
	if addr, ok := r.Context().Value(http.LocalAddrContextKey).(net.Addr); ok {
		if _, port, err := net.SplitHostPort(addr.String()); err == nil {
			headers["x-forwarded-port"] = port
		}
	}
	headers["x-amzn-trace-id"] = strings.SplitN(newTraceID(now), ";", 2)[0]

	var query map[string]string
	for k, vs := range r.URL.Query() {
		if query == nil {
			query = map[string]string{}
		}
		query[k] = strings.Join(vs, ",")
	}

	domain := host
	if h, _, err := net.SplitHostPort(host); err == nil {
		domain = h
	}
	ev := events.APIGatewayV2HTTPRequest{
		Version:               "2.0",
		RouteKey:              rt.key,
		RawPath:               r.URL.Path, // HTTP APIs pass the path decoded
		RawQueryString:        r.URL.RawQuery,
		Cookies:               cookies,
		Headers:               headers,
		QueryStringParameters: query,
		PathParameters:        params,
		RequestContext: events.APIGatewayV2HTTPRequestContext{
			RouteKey:     rt.key,
			AccountID:    accountID,
			Stage:        "$default",
			RequestID:    requestID,
			APIID:        "local",
			DomainName:   domain,
			DomainPrefix: strings.SplitN(domain, ".", 2)[0],
			Time:         now.UTC().Format("02/Jan/2006:15:04:05 -0700"),
			TimeEpoch:    now.UnixMilli(),
			HTTP: events.APIGatewayV2HTTPRequestContextHTTPDescription{
				Method:    r.Method,
				Path:      r.URL.Path,
				Protocol:  r.Proto,
				SourceIP:  sourceIP,
				UserAgent: r.UserAgent(),
			},
		},
	}
	if claims != nil {
		ev.RequestContext.Authorizer = &events.APIGatewayV2HTTPRequestContextAuthorizerDescription{
			JWT: &events.APIGatewayV2HTTPRequestContextAuthorizerJWTDescription{Claims: claims, Scopes: scopes},
		}
	}
	if len(body) > 0 {
		if isText(r.Header.Get("Content-Type"), body) {
			ev.Body = string(body)
		} else {
			ev.Body = base64.StdEncoding.EncodeToString(body)
			ev.IsBase64Encoded = true
		}
	}
	return ev
}

// isText reports whether API Gateway would pass a body as text rather than
// base64: text/*, JSON, XML, JavaScript and form bodies that are valid UTF-8.
func isText(contentType string, body []byte) bool {
	if !utf8.Valid(body) {
		return false
	}
	if contentType == "" {
		return true
	}
	mt, _, err := mime.ParseMediaType(contentType)
	if err != nil {
		return false
	}
	switch {
	case strings.HasPrefix(mt, "text/"),
		strings.HasSuffix(mt, "+json"), strings.HasSuffix(mt, "+xml"):
		return true
	}
	switch mt {
	case "application/json", "application/xml", "application/javascript",
		"application/x-www-form-urlencoded", "application/graphql", "application/yaml", "application/x-yaml":
		return true
	}
	return false
}

// writeFunctionResponse turns the function's result into the HTTP response,
// following API Gateway's payload 2.0 rules: an object with statusCode is a
// structured response; any other JSON is a 200 with that JSON as its body.
func writeFunctionResponse(w http.ResponseWriter, result []byte) (int, error) {
	result = bytes.TrimSpace(result)
	if !json.Valid(result) {
		return writeMessage(w, http.StatusInternalServerError, "Internal Server Error"), errors.New("result is not JSON")
	}
	var probe map[string]json.RawMessage
	if json.Unmarshal(result, &probe) != nil || probe["statusCode"] == nil {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusOK)
		_, _ = w.Write(result)
		return http.StatusOK, nil
	}
	var resp events.APIGatewayV2HTTPResponse
	if err := json.Unmarshal(result, &resp); err != nil {
		return writeMessage(w, http.StatusInternalServerError, "Internal Server Error"), fmt.Errorf("decode response: %w", err)
	}
	if resp.StatusCode < 100 || resp.StatusCode > 599 {
		return writeMessage(w, http.StatusInternalServerError, "Internal Server Error"), fmt.Errorf("statusCode %d", resp.StatusCode)
	}
	body := []byte(resp.Body)
	if resp.IsBase64Encoded {
		decoded, err := base64.StdEncoding.DecodeString(resp.Body)
		if err != nil {
			return writeMessage(w, http.StatusInternalServerError, "Internal Server Error"), fmt.Errorf("decode base64 body: %w", err)
		}
		body = decoded
	}
	h := w.Header()
	for k, v := range resp.Headers {
		h.Set(k, v)
	}
	for k, vs := range resp.MultiValueHeaders {
		for _, v := range vs {
			h.Add(k, v)
		}
	}
	for _, c := range resp.Cookies {
		h.Add("Set-Cookie", c)
	}
	if h.Get("Content-Type") == "" {
		h["Content-Type"] = nil // no content sniffing: send what the function sent
	}
	w.WriteHeader(resp.StatusCode)
	_, _ = w.Write(body)
	return resp.StatusCode, nil
}

// writeMessage answers with API Gateway's {"message": ...} body.
func writeMessage(w http.ResponseWriter, status int, msg string) int {
	return writeJSON(w, status, map[string]string{"message": msg})
}

func writeJSON(w http.ResponseWriter, status int, v any) int {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
	return status
}

// newGatewayRequestID makes an id like API Gateway's ("JKJaXmPLvHcESHA=").
func newGatewayRequestID() string {
	var b [10]byte
	_, _ = rand.Read(b[:]) // crypto/rand never fails on supported platforms
	return base64.StdEncoding.EncodeToString(b[:])
}

// tokenHandler serves POST /_local/token: a signed token for any user.
func tokenHandler(iss *issuer, now func() time.Time) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		var req struct {
			Sub        string `json:"sub"`
			Email      string `json:"email"`
			TTLSeconds int64  `json:"ttlSeconds"`
		}
		dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 64<<10))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&req); err != nil && !errors.Is(err, io.EOF) {
			writeMessage(w, http.StatusBadRequest, `body must be {"sub": "alice", "email": "alice@example.com", "ttlSeconds": 3600} (email and ttlSeconds optional): `+err.Error())
			return
		}
		if strings.TrimSpace(req.Sub) == "" {
			writeMessage(w, http.StatusBadRequest, `"sub" is required, e.g. {"sub": "alice"}`)
			return
		}
		ttl := defaultTokenTTL
		if req.TTLSeconds != 0 {
			ttl = time.Duration(req.TTLSeconds) * time.Second
		}
		if ttl <= 0 || ttl > maxTokenTTL {
			writeMessage(w, http.StatusBadRequest, fmt.Sprintf(`"ttlSeconds" must be between 1 and %d`, int64(maxTokenTTL/time.Second)))
			return
		}
		token, err := iss.issue(req.Sub, req.Email, ttl, now())
		if err != nil {
			writeMessage(w, http.StatusInternalServerError, err.Error())
			return
		}
		writeJSON(w, http.StatusOK, map[string]string{"token": token})
	}
}

// newMux puts the local-only endpoints under /_local/ and everything else
// through the gateway.
func newMux(gw *gateway, sch *scheduler) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /_local/token", tokenHandler(gw.auth, gw.now))
	mux.HandleFunc("GET /_local/jwks.json", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, gw.auth.jwks())
	})
	mux.HandleFunc("GET /_local/schedules", sch.list)
	mux.HandleFunc("POST /_local/schedules/{name}", sch.run)
	mux.Handle("/", gw)
	return mux
}
