package api

import (
	"net/http"
)

// Response is a handler's answer; Body is rendered as JSON.
type Response struct {
	Status int
	Body   any
	Header map[string]string
}

// JSON answers status with body.
func JSON(status int, body any) *Response { return &Response{Status: status, Body: body} }

// OK answers 200.
func OK(body any) *Response { return JSON(http.StatusOK, body) }

// Created answers 201 with the new resource's location.
func Created(location string, body any) *Response {
	return JSON(http.StatusCreated, body).WithHeader("Location", location)
}

// Accepted answers 202 for work that goes on after the response.
func Accepted(body any) *Response { return JSON(http.StatusAccepted, body) }

// NoContent answers 204.
func NoContent() *Response { return &Response{Status: http.StatusNoContent} }

// WithHeader sets a response header.
func (r *Response) WithHeader(name, value string) *Response {
	if r.Header == nil {
		r.Header = map[string]string{}
	}
	r.Header[name] = value
	return r
}

// WithVersion sets the ETag of a versioned resource.
func (r *Response) WithVersion(v int64) *Response { return r.WithHeader("ETag", ETag(v)) }

// List is the shape of every collection answer.
type List[T any] struct {
	Items      []T     `json:"items"`
	NextCursor *string `json:"nextCursor"`
}

// Listed answers one page of a list, sealing the store's next position into
// a cursor bound to scope.
func Listed[T any](scope string, items []T, next string) *Response {
	if items == nil {
		items = []T{}
	}
	l := List[T]{Items: items}
	if next != "" {
		c := sealCursor(scope, next)
		l.NextCursor = &c
	}
	return OK(l)
}
