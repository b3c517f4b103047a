// Package fault holds the domain error type every layer returns. It says what
// went wrong in domain terms (a Kind and a stable machine Code); the API layer
// maps Kinds to HTTP statuses in exactly one place.
package fault

import (
	"errors"
	"fmt"
)

// Kind classifies an error for callers; each Kind maps to one HTTP status.
type Kind int

const (
	// Internal is anything unexpected; its detail is never shown to clients.
	Internal Kind = iota
	Invalid
	Unauthenticated
	Forbidden
	NotFound
	Conflict
	PreconditionFailed
	TooLarge
	Unprocessable
	Unavailable
)

// FieldError names the input field at fault.
type FieldError struct {
	Field   string `json:"field"`
	Message string `json:"message"`
}

// Error is a domain error with a stable machine code.
type Error struct {
	Kind   Kind
	Code   string
	Detail string
	Fields []FieldError
	// Extra carries additional, safe-to-show members of the problem body.
	Extra map[string]any
	// RetryAfter, in seconds, for Unavailable errors.
	RetryAfter int
	// Err is the wrapped cause; it is logged, never shown.
	Err error
}

func (e *Error) Error() string {
	msg := e.Code
	if e.Detail != "" {
		msg += ": " + e.Detail
	}
	if e.Err != nil {
		msg += ": " + e.Err.Error()
	}
	return msg
}

func (e *Error) Unwrap() error { return e.Err }

// With returns a copy of e carrying an extra problem member.
func (e *Error) With(key string, value any) *Error {
	c := *e
	c.Extra = make(map[string]any, len(e.Extra)+1)
	for k, v := range e.Extra {
		c.Extra[k] = v
	}
	c.Extra[key] = value
	return &c
}

// As extracts the *Error in err's chain, if any.
func As(err error) (*Error, bool) {
	var e *Error
	ok := errors.As(err, &e)
	return e, ok
}

// KindOf reports the Kind of err; errors without one are Internal.
func KindOf(err error) Kind {
	if e, ok := As(err); ok {
		return e.Kind
	}
	return Internal
}

// Is reports whether err carries the given machine code.
func Is(err error, code string) bool {
	e, ok := As(err)
	return ok && e.Code == code
}

func newf(kind Kind, code, format string, args ...any) *Error {
	return &Error{Kind: kind, Code: code, Detail: fmt.Sprintf(format, args...)}
}

// Validation reports input that breaks a rule, naming each field at fault.
func Validation(fields ...FieldError) *Error {
	detail := "the request has invalid fields"
	if len(fields) == 1 {
		detail = fields[0].Field + ": " + fields[0].Message
	}
	return &Error{Kind: Invalid, Code: "validation_failed", Detail: detail, Fields: fields}
}

// Field is shorthand for a single-field validation error.
func Field(field, format string, args ...any) *Error {
	return Validation(FieldError{Field: field, Message: fmt.Sprintf(format, args...)})
}

func Invalidf(code, format string, args ...any) *Error {
	return newf(Invalid, code, format, args...)
}

func NotFoundf(code, format string, args ...any) *Error {
	return newf(NotFound, code, format, args...)
}

func Conflictf(code, format string, args ...any) *Error {
	return newf(Conflict, code, format, args...)
}

func Forbiddenf(code, format string, args ...any) *Error {
	return newf(Forbidden, code, format, args...)
}

func Unprocessablef(code, format string, args ...any) *Error {
	return newf(Unprocessable, code, format, args...)
}

func PreconditionFailedf(code, format string, args ...any) *Error {
	return newf(PreconditionFailed, code, format, args...)
}

// Unavailablef reports a dependency that is down or throttling; clients may retry.
func Unavailablef(retryAfter int, code, format string, args ...any) *Error {
	e := newf(Unavailable, code, format, args...)
	e.RetryAfter = retryAfter
	return e
}
