package functions_test

import (
	"context"
	"fmt"
	"os"
	"slices"
	"testing"
	"text/tabwriter"
	"time"

	"github.com/dflow-sh/cloud-accounts/shared/lambdatest"
)

// coldStarts is how many fresh emulators each function is measured in.
const coldStarts = 5

// baseline is the hello-world aws-lambda-go function every row is compared with.
const baseline = "HelloWorld"

// coldStart is one function's measurement.
type coldStart struct {
	name     string
	arm64MB  float64
	initTime []time.Duration // sorted
}

func (c coldStart) median() time.Duration { return c.initTime[len(c.initTime)/2] }

// BenchmarkColdStart measures, for a hello-world baseline and every function
// of template.yaml, the size of the stripped linux/arm64 bootstrap Lambda
// runs and the cold start (init) of the amd64 build under aws-lambda-rie:
// the median of coldStarts fresh emulators, each invoked once with the
// function's template environment against moto. It prints a table once.
// It is a benchmark, not a timed test: nothing is asserted on durations.
//
// b.N has no meaning here: the number of cold starts is fixed (coldStarts)
// and must not grow with -benchtime or b.N. So each sub-benchmark
// measures once, in its first call with the timer stopped, and every call
// only reports the metrics. The framework, seeing calls that take no time,
// ramps b.N up to its cap, which is the iteration count shown (1 with
// -benchtime=1x); ns/op is suppressed, and B/op and allocs/op are 0
// because nothing runs with the timer on.
func BenchmarkColdStart(b *testing.B) {
	lambdatest.RequireRIE(b)
	tpl, _ := loadTemplate(b)
	d := deploy(b, tpl)

	type subject struct {
		name, dir string
		env       map[string]string
	}
	subjects := []subject{{name: baseline, dir: "functions/testdata/hello", env: d.RuntimeEnv(baseline, 128, 3)}}
	for _, fn := range tpl.Functions {
		subjects = append(subjects, subject{name: fn.LogicalID, dir: fn.Dir, env: d.Env(b, fn)})
	}

	var rows []coldStart
	for _, s := range subjects {
		var m *coldStart
		b.Run(s.name, func(b *testing.B) {
			if m == nil {
				b.StopTimer()
				m = measureColdStart(b, s.name, s.dir, s.env)
				rows = append(rows, *m)
				b.StartTimer()
			}
			b.ReportMetric(0, "ns/op")
			b.ReportMetric(m.arm64MB, "arm64-MB")
			b.ReportMetric(ms(m.median()), "init-ms")
			b.ReportMetric(ms(m.initTime[0]), "init-min-ms")
			b.ReportMetric(ms(m.initTime[len(m.initTime)-1]), "init-max-ms")
		})
	}
	printColdStarts(rows)
}

func measureColdStart(b *testing.B, name, dir string, env map[string]string) *coldStart {
	b.Helper()
	m := &coldStart{name: name}
	arm := lambdatest.Build(b, dir, lambdatest.ARM64)
	st, err := os.Stat(arm)
	if err != nil {
		b.Fatal(err)
	}
	m.arm64MB = float64(st.Size()) / (1 << 20)

	amd := lambdatest.Build(b, dir, lambdatest.AMD64)
	for range coldStarts {
		// A fresh emulator is a fresh execution environment: RIE inits the
		// function on its first invoke. The event does not matter to init.
		rie := lambdatest.Start(b, amd, env)
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		_, err := rie.Invoke(ctx, []byte(`{}`))
		cancel()
		if err != nil {
			b.Fatalf("%s: %v", name, err)
		}
		initTime, err := rie.InitDuration()
		if err != nil {
			b.Fatalf("%s: %v", name, err)
		}
		rie.Stop()
		m.initTime = append(m.initTime, initTime)
	}
	slices.Sort(m.initTime)
	return m
}

func printColdStarts(rows []coldStart) {
	if len(rows) == 0 {
		return
	}
	var baseMB, baseInit float64
	for _, r := range rows {
		if r.name == baseline {
			baseMB, baseInit = r.arm64MB, ms(r.median())
		}
	}
	ratio := func(v, base float64) string {
		if base == 0 {
			return "–"
		}
		return fmt.Sprintf("%.2f", v/base)
	}
	fmt.Printf("\nCold starts: median of %d fresh aws-lambda-rie runs of the linux/amd64 build on this host; size of the stripped linux/arm64 bootstrap Lambda runs.\n", coldStarts)
	w := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(w, "function\tarm64 size MB\tinit median ms\tinit min–max ms\tsize ×hello\tinit ×hello")
	for _, r := range rows {
		label := r.name
		if r.name == baseline {
			label += " (baseline)"
		}
		fmt.Fprintf(w, "%s\t%.1f\t%.1f\t%.1f–%.1f\t%s\t%s\n", label, r.arm64MB, ms(r.median()),
			ms(r.initTime[0]), ms(r.initTime[len(r.initTime)-1]),
			ratio(r.arm64MB, baseMB), ratio(ms(r.median()), baseInit))
	}
	w.Flush()
	fmt.Println()
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
