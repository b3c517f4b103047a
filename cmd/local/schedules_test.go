package main

import "testing"

func TestKebab(t *testing.T) {
	for in, want := range map[string]string{
		"RotationSweep": "rotation-sweep",
		"HTTPCheck":     "http-check",
		"Nightly2Run":   "nightly2-run",
		"sweep":         "sweep",
		"Sweep_All":     "sweep-all",
	} {
		if got := kebab(in); got != want {
			t.Errorf("kebab(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestSchedulerFind(t *testing.T) {
	s := &scheduler{schedules: []schedule{{Name: "RotationSweep"}, {Name: "HealthCheck"}}}
	for _, name := range []string{"RotationSweep", "rotationsweep", "rotation-sweep", "ROTATION_SWEEP"} {
		if sc, ok := s.find(name); !ok || sc.Name != "RotationSweep" {
			t.Errorf("find(%q) = %v, %v", name, sc, ok)
		}
	}
	if _, ok := s.find("rotation"); ok {
		t.Error("find(rotation) matched")
	}
}
