// Package awserr answers the questions every AWS adapter asks of an SDK
// error before turning it into a domain error: which code AWS gave, and
// whether the trouble is passing (throttling, outages, the network).
package awserr

import (
	"context"
	"errors"
	"net"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/smithy-go"
)

// Code is AWS's error code, or "" when err carries none.
func Code(err error) string {
	var ae smithy.APIError
	if errors.As(err, &ae) {
		return ae.ErrorCode()
	}
	return ""
}

var throttles = retry.IsErrorThrottles(retry.DefaultThrottles)

// IsThrottle reports AWS throttling (Throttling, RequestLimitExceeded, …).
func IsThrottle(err error) bool {
	return throttles.IsErrorThrottle(err) == aws.TrueTernary
}

var retryables = retry.IsErrorRetryables(retry.DefaultRetryables)

// IsTransient decides like the SDK's standard retryer (5xx, connection
// errors, timeouts), plus DNS failures it does not retry: the endpoint could
// not be reached or answered. By the time an adapter asks, the SDK has
// retried what it could. A cancelled context is not transient.
func IsTransient(err error) bool {
	if errors.Is(err, context.Canceled) {
		return false
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return true
	}
	var ae smithy.APIError
	if errors.As(err, &ae) && ae.ErrorFault() == smithy.FaultServer {
		return true
	}
	var dnsErr *net.DNSError
	var opErr *net.OpError
	if errors.As(err, &dnsErr) || errors.As(err, &opErr) {
		return true
	}
	var timeout interface{ Timeout() bool }
	if errors.As(err, &timeout) && timeout.Timeout() {
		return true
	}
	return retryables.IsErrorRetryable(err) == aws.TrueTernary
}
