package lambdatest

import (
	"crypto/rand"
	"encoding/base64"
	"maps"
	"strings"
	"time"

	"github.com/aws/aws-lambda-go/events"
)

// Where the sample events say API Gateway runs.
const (
	eventAPIID     = "r3pmxmplak"
	eventDomain    = eventAPIID + ".execute-api." + testRegion + ".amazonaws.com"
	eventSourceIP  = "198.51.100.23"
	eventUserAgent = "lambdatest"
)

// HTTPEvent is the API Gateway HTTP API (payload 2.0) event for routeKey
// ("GET /v1/orgs/{orgId}") as API Gateway sends it on the $default stage,
// with params filling the path's {placeholders}, lower-case headers and a
// fresh request id. It carries no authorizer, as for a route without one.
func HTTPEvent(routeKey string, params map[string]string) events.APIGatewayV2HTTPRequest {
	method, path, _ := strings.Cut(routeKey, " ")
	for name, v := range params {
		path = strings.ReplaceAll(path, "{"+name+"}", v)
	}
	now := time.Now().UTC()
	e := events.APIGatewayV2HTTPRequest{
		Version:        "2.0",
		RouteKey:       routeKey,
		RawPath:        path,
		RawQueryString: "",
		Headers: map[string]string{
			"accept":            "application/json",
			"host":              eventDomain,
			"user-agent":        eventUserAgent,
			"x-forwarded-for":   eventSourceIP,
			"x-forwarded-port":  "443",
			"x-forwarded-proto": "https",
		},
		RequestContext: events.APIGatewayV2HTTPRequestContext{
			RouteKey:     routeKey,
			AccountID:    testAccountID,
			Stage:        "$default",
			RequestID:    requestID(),
			APIID:        eventAPIID,
			DomainName:   eventDomain,
			DomainPrefix: eventAPIID,
			Time:         now.Format("02/Jan/2006:15:04:05 -0700"),
			TimeEpoch:    now.UnixMilli(),
			HTTP: events.APIGatewayV2HTTPRequestContextHTTPDescription{
				Method:    method,
				Path:      path,
				Protocol:  "HTTP/1.1",
				SourceIP:  eventSourceIP,
				UserAgent: eventUserAgent,
			},
		},
	}
	if len(params) > 0 {
		e.PathParameters = params
	}
	return e
}

// WithJSON sets a JSON body, as a client sending Content-Type
// application/json would.
func WithJSON(e events.APIGatewayV2HTTPRequest, body string) events.APIGatewayV2HTTPRequest {
	e.Headers = maps.Clone(e.Headers)
	e.Headers["content-type"] = "application/json"
	e.Body = body
	return e
}

// requestID looks like API Gateway's: 10 random bytes, base64.
func requestID() string {
	b := make([]byte, 10)
	_, _ = rand.Read(b)
	return base64.StdEncoding.EncodeToString(b)
}
