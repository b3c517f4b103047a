package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sort"
	"strings"
	"unicode"

	"github.com/dflow-sh/cloud-accounts/shared/samtemplate"
)

// schedule is a Schedule or ScheduleV2 event of the template, which the local
// API runs on demand instead of on its expression.
type schedule struct {
	Name       string `json:"name"`
	Path       string `json:"path"`
	Function   string `json:"function"`
	Expression string `json:"expression"`
	Input      string `json:"input"`
}

// scheduler serves /_local/schedules.
type scheduler struct {
	schedules []schedule
	functions map[string]invoker
	log       *slog.Logger
}

func newScheduler(tpl *samtemplate.Template, functions map[string]invoker, log *slog.Logger) *scheduler {
	s := &scheduler{functions: functions, log: log}
	for _, fn := range tpl.Functions {
		for _, ev := range fn.Schedules {
			s.schedules = append(s.schedules, schedule{
				Name:       ev.Event,
				Path:       "/_local/schedules/" + kebab(ev.Event),
				Function:   fn.LogicalID,
				Expression: ev.Expression,
				Input:      ev.Input,
			})
		}
	}
	sort.Slice(s.schedules, func(i, j int) bool { return s.schedules[i].Name < s.schedules[j].Name })
	return s
}

// find matches a name case-insensitively, in CamelCase or kebab-case.
func (s *scheduler) find(name string) (schedule, bool) {
	want := foldName(name)
	for _, sc := range s.schedules {
		if foldName(sc.Name) == want {
			return sc, true
		}
	}
	return schedule{}, false
}

func (s *scheduler) list(w http.ResponseWriter, r *http.Request) {
	list := s.schedules
	if list == nil {
		list = []schedule{}
	}
	writeJSON(w, http.StatusOK, map[string]any{"schedules": list})
}

// run invokes a schedule's function now with the schedule's Input, as
// EventBridge Scheduler would (the Input as-is, no envelope).
func (s *scheduler) run(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	sc, ok := s.find(name)
	if !ok {
		known := make([]string, len(s.schedules))
		for i, k := range s.schedules {
			known[i] = kebab(k.Name)
		}
		writeJSON(w, http.StatusNotFound, map[string]any{
			"message":   fmt.Sprintf("no schedule %q in the template", name),
			"schedules": known,
		})
		return
	}
	input := strings.TrimSpace(sc.Input)
	if input == "" {
		input = "{}"
	}
	if !json.Valid([]byte(input)) {
		writeMessage(w, http.StatusInternalServerError, fmt.Sprintf("schedule %s: Input in the template is not JSON: %s", sc.Name, input))
		return
	}
	fn, ok := s.functions[sc.Function]
	if !ok {
		writeMessage(w, http.StatusInternalServerError, "no running function "+sc.Function)
		return
	}
	log := s.log.With("schedule", sc.Name, "function", sc.Function)
	result, err := fn.Invoke(r.Context(), []byte(input))
	if err != nil {
		log.Warn("scheduled invocation failed", "err", err)
		status := http.StatusInternalServerError
		switch {
		case errors.Is(err, ErrCrashed):
			status = http.StatusBadGateway
		case errors.Is(err, ErrTimeout):
			status = http.StatusServiceUnavailable
		}
		// Unlike the API routes, show the error: this endpoint is for developers.
		body := map[string]any{"message": err.Error()}
		var fe *FunctionError
		if errors.As(err, &fe) {
			body["errorType"], body["errorMessage"] = fe.Type, fe.Message
		}
		writeJSON(w, status, body)
		return
	}
	log.Info("scheduled invocation done")
	result = bytes.TrimSpace(result)
	if len(result) == 0 {
		result = []byte("null")
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(result)
}

// kebab turns an event name into its URL form: RotationSweep → rotation-sweep,
// HTTPCheck → http-check.
func kebab(name string) string {
	rs := []rune(name)
	var b strings.Builder
	for i, r := range rs {
		if unicode.IsUpper(r) && i > 0 {
			prevLower := unicode.IsLower(rs[i-1]) || unicode.IsDigit(rs[i-1])
			nextLower := i+1 < len(rs) && unicode.IsLower(rs[i+1])
			if prevLower || (unicode.IsUpper(rs[i-1]) && nextLower) {
				b.WriteByte('-')
			}
		}
		if r == '_' || r == ' ' {
			r = '-'
		}
		b.WriteRune(unicode.ToLower(r))
	}
	return b.String()
}

// foldName compares names ignoring case and word separators.
func foldName(name string) string {
	return strings.Map(func(r rune) rune {
		if r == '-' || r == '_' || r == ' ' {
			return -1
		}
		return unicode.ToLower(r)
	}, name)
}
