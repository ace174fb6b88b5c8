package parallel

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"sync"
	"testing"

	"github.com/dibuild/dib/compiler/plan"
	"github.com/dibuild/dib/runtime"
)

func plans(names ...string) []*plan.Plan {
	var ps []*plan.Plan
	for _, n := range names {
		p := &plan.Plan{}
		p.Image.Name = n
		ps = append(ps, p)
	}
	return ps
}

// fake builds: "bad" fails at once; the others report a cached and a run
// step, then finish, or, when block is set, wait until cancelled.
func fake(block bool, running *sync.WaitGroup) ApplyFunc {
	return func(ctx context.Context, p *plan.Plan, obs runtime.Observer) error {
		obs.Event(runtime.Event{Type: runtime.StepCached, Image: p.Image.Name})
		if p.Image.Name == "bad" {
			if running != nil {
				running.Wait() // the others are running
			}
			obs.Event(runtime.Event{Type: runtime.StepStarted, Image: p.Image.Name})
			return errors.New("install.d/10-fail exited 1")
		}
		obs.Event(runtime.Event{Type: runtime.StepStarted, Image: p.Image.Name})
		if running != nil {
			running.Done()
		}
		if block {
			<-ctx.Done()
			return &runtime.InterruptedError{Step: "phase install.d", Cause: context.Cause(ctx)}
		}
		return nil
	}
}

// TestOneFailureDoesNotStopTheOthers: without FailFast the other images
// finish; results keep the plans' order and count the steps.
func TestOneFailureDoesNotStopTheOthers(t *testing.T) {
	var mu sync.Mutex
	seen := map[string]int{}
	obs := runtime.ObserverFunc(func(e runtime.Event) {
		mu.Lock()
		defer mu.Unlock()
		seen[e.Image]++
	})
	res := Run(context.Background(), plans("a", "bad", "c"), Options{Builds: 2, Observer: obs}, fake(false, nil))
	want := []Status{OK, Failed, OK}
	for i, r := range res {
		if r.Status != want[i] || r.Ran != 1 || r.Cached != 1 {
			t.Errorf("%s: %s, ran %d, cached %d; want %s", r.Image, r.Status, r.Ran, r.Cached, want[i])
		}
	}
	if !AnyFailed(res) || seen["a"] != 2 || seen["bad"] != 2 || seen["c"] != 2 {
		t.Errorf("events per image %v", seen)
	}
	var buf bytes.Buffer
	if err := WriteSummary(&buf, res); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 4 || !strings.HasPrefix(lines[0], "IMAGE") || !strings.Contains(lines[2], "bad") || !strings.Contains(lines[2], "failed") {
		t.Errorf("summary:\n%s", buf.String())
	}
}

// TestFailFast: with FailFast the running builds are stopped (their cause
// names the failed image) and the ones not started never start.
func TestFailFast(t *testing.T) {
	var running sync.WaitGroup
	running.Add(1) // "a" runs when "bad" fails
	res := Run(context.Background(), plans("a", "bad", "c", "d"), Options{Builds: 2, FailFast: true}, fake(true, &running))
	want := []Status{Cancelled, Failed, Skipped, Skipped}
	for i, r := range res {
		if r.Status != want[i] {
			t.Errorf("%s: %s, want %s", r.Image, r.Status, want[i])
		}
	}
	var ie *runtime.InterruptedError
	var ff *FailFastError
	if !errors.As(res[0].Err, &ie) || !errors.As(ie.Cause, &ff) || ff.Image != "bad" {
		t.Errorf("a was stopped by %v", res[0].Err)
	}
}

func TestDefaultJobs(t *testing.T) {
	const gib = 1 << 20 // KiB
	for _, tc := range []struct {
		name          string
		images, cpus  int
		avail         int64
		tmpfs         bool
		minTmpfs, out int
	}{
		{"cores bound", 3, 2, 20 * gib, true, 2, 2},
		{"images bound", 2, 16, 64 * gib, true, 2, 2},
		{"tmpfs counted", 8, 8, 9 * gib, true, 2, 3},
		{"no tmpfs", 8, 8, 9 * gib, false, 2, 8},
		{"bigger tmpfs", 8, 8, 9 * gib, true, 8, 1},
		{"never zero", 3, 2, gib / 2, false, 2, 1},
		{"meminfo unknown", 3, 2, 0, true, 2, 2},
	} {
		if got := DefaultJobs(tc.images, tc.cpus, tc.avail, tc.tmpfs, tc.minTmpfs); got != tc.out {
			t.Errorf("%s: %d jobs, want %d", tc.name, got, tc.out)
		}
	}
	for _, tc := range []struct {
		name                string
		images, jobs        int
		avail               int64
		tmpfs               bool
		minTmpfs, wantBuild int
	}{
		{"twice the jobs", 8, 2, 64 * gib, true, 2, 4},
		{"images bound", 3, 2, 64 * gib, true, 2, 3},
		{"memory bound", 8, 4, 9 * gib, true, 2, 3},
		{"one job, one build", 3, 1, 64 * gib, true, 2, 1},
		{"never zero", 3, 2, gib / 2, false, 2, 1},
		{"meminfo unknown", 3, 2, 0, true, 2, 3},
	} {
		if got := DefaultBuilds(tc.images, tc.jobs, tc.avail, tc.tmpfs, tc.minTmpfs); got != tc.wantBuild {
			t.Errorf("%s: %d builds, want %d", tc.name, got, tc.wantBuild)
		}
	}
	if n := MemAvailableKB([]byte("MemTotal:       24000000 kB\nMemFree: 1 kB\nMemAvailable:   20971520 kB\n")); n != 20971520 {
		t.Errorf("MemAvailable %d", n)
	}
}
