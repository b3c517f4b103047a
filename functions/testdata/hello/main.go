// Command hello is the smallest aws-lambda-go function: the cold start
// baseline BenchmarkColdStart measures every function of template.yaml
// against. It lives under testdata so `go build ./...` and `make build`
// leave it out.
package main

import "github.com/aws/aws-lambda-go/lambda"

func main() {
	lambda.Start(func() (string, error) { return "hello, world", nil })
}
