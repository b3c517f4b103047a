package discovery

import (
	"context"
	"testing"
	"time"

	"github.com/dflow-sh/cloud-accounts/shared/partition"
)

// BenchmarkInventory gathers the inventory of every region of the
// commercial partition (all 36 enabled: the worst case) with a fixed 50 ms
// per AWS call, and reports, in ms: the concurrent answer at the default
// concurrency, at 8 calls in flight, one call at a time, and the slowest
// single region alone; then the ratio all-regions / slowest region, whose
// bar is ≤ 2. Run it with: go test -run '^$' -bench Inventory -benchtime 3x.
func BenchmarkInventory(b *testing.B) {
	const latency = 50 * time.Millisecond
	ctx := context.Background()
	p, _ := partition.ByID(partition.Standard)
	var optIn []string
	for _, r := range p.Regions {
		if r.OptIn {
			optIn = append(optIn, r.Code)
		}
	}
	f := inventoryFake(commercialAnswer(b, optIn...), 1, "", nil)
	f.before = func(ctx context.Context, _ string) error {
		t := time.NewTimer(latency)
		defer t.Stop()
		select {
		case <-t.C:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	c := &fakeClients{ec2: map[string]EC2API{"*": f}}
	tg := Target{LinkID: "lnk_bench", Partition: p}
	cache := newMemCache(nil) // the Regions answer is cached, as in steady state
	def := NewService(cache)
	at8 := NewService(cache, WithConcurrency(8))
	seq := NewService(cache, WithConcurrency(1))
	if _, err := def.Regions(ctx, tg, c, false); err != nil {
		b.Fatal(err)
	}

	run := func(svc *Service, regions []string) time.Duration {
		start := time.Now()
		inv, err := svc.Inventory(ctx, tg, c, regions)
		d := time.Since(start)
		if err != nil {
			b.Fatal(err)
		}
		for _, it := range inv.Items {
			if it.Error != nil {
				b.Fatalf("%s: %+v", it.Region, it.Error)
			}
		}
		return d
	}

	var all, eight, sequential, slowest time.Duration
	n := 0
	for b.Loop() {
		all += run(def, nil)
		eight += run(at8, nil)
		sequential += run(seq, nil)
		var worst time.Duration
		for _, r := range p.Regions {
			worst = max(worst, run(def, []string{r.Code}))
		}
		slowest += worst
		n++
	}
	ms := func(d time.Duration) float64 { return float64(d) / float64(n) / float64(time.Millisecond) }
	b.ReportMetric(ms(all), "all-regions-ms")
	b.ReportMetric(ms(eight), "all-regions-at-8-ms")
	b.ReportMetric(ms(sequential), "sequential-ms")
	b.ReportMetric(ms(slowest), "slowest-region-ms")
	b.ReportMetric(float64(all)/float64(slowest), "all/slowest")
	b.ReportMetric(float64(sequential)/float64(all), "speedup")
}
