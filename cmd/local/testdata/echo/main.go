// Command echo is the local API's test bootstrap. For an HTTP API event it
// answers with what it received (route key, path parameters, claims, the
// whole event and some of its environment); for any other event (a schedule's
// Input) it answers {"ran": <input>}. Some path parameters trigger failures.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-lambda-go/lambda"
	"github.com/aws/aws-lambda-go/lambdacontext"
)

func main() {
	lambda.Start(handle)
}

func handle(ctx context.Context, raw json.RawMessage) (any, error) {
	var probe struct {
		Version  string `json:"version"`
		RouteKey string `json:"routeKey"`
	}
	if err := json.Unmarshal(raw, &probe); err != nil || probe.RouteKey == "" {
		return map[string]json.RawMessage{"ran": raw}, nil
	}
	var req events.APIGatewayV2HTTPRequest
	if err := json.Unmarshal(raw, &req); err != nil {
		return nil, err
	}
	switch req.PathParameters["thingId"] {
	case "fail":
		return nil, errors.New("boom")
	case "crash":
		os.Exit(3)
	case "plain":
		// No statusCode: API Gateway infers a 200 JSON response.
		return map[string]any{"plain": true}, nil
	}
	if os.Getenv("ECHO_MODE") == "slow" && req.QueryStringParameters["fast"] == "" {
		<-ctx.Done()
		time.Sleep(time.Minute) // past the deadline: the local API must kill us
	}
	var claims map[string]string
	if a := req.RequestContext.Authorizer; a != nil && a.JWT != nil {
		claims = a.JWT.Claims
	}
	lc, _ := lambdacontext.FromContext(ctx)
	deadline, _ := ctx.Deadline()
	body, err := json.Marshal(map[string]any{
		"routeKey":       req.RouteKey,
		"pathParameters": req.PathParameters,
		"claims":         claims,
		"event":          req,
		"requestId":      lc.AwsRequestID,
		"functionArn":    lc.InvokedFunctionArn,
		"hasDeadline":    !deadline.IsZero(),
		"env": map[string]string{
			"STAGE":                           os.Getenv("STAGE"),
			"GREETING":                        os.Getenv("GREETING"),
			"ECHO_NAME":                       os.Getenv("ECHO_NAME"),
			"REGION_ARN":                      os.Getenv("REGION_ARN"),
			"AWS_LAMBDA_FUNCTION_NAME":        os.Getenv("AWS_LAMBDA_FUNCTION_NAME"),
			"AWS_LAMBDA_FUNCTION_MEMORY_SIZE": os.Getenv("AWS_LAMBDA_FUNCTION_MEMORY_SIZE"),
			"AWS_LAMBDA_FUNCTION_VERSION":     os.Getenv("AWS_LAMBDA_FUNCTION_VERSION"),
			"AWS_LAMBDA_LOG_FORMAT":           os.Getenv("AWS_LAMBDA_LOG_FORMAT"),
		},
	})
	if err != nil {
		return nil, err
	}
	return events.APIGatewayV2HTTPResponse{
		StatusCode:        200,
		Headers:           map[string]string{"Content-Type": "application/json"},
		MultiValueHeaders: map[string][]string{"X-Echo": {"a", "b"}},
		Cookies:           []string{"seen=1; Path=/", "route=echo"},
		Body:              string(body),
	}, nil
}
