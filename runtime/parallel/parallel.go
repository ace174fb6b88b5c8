// Package parallel builds the images of one Dibfile at once (`dib apply` of
// a Dibfile with images:): a bounded pool of builds, whose events all go
// to one observer (each names its image), and a result per image. One
// image failing does not stop the others unless FailFast asks for it.
//
// The builds share what runtime.Apply shares between concurrent applies:
// the build cache (held shared, runtime/cache) and, through the caller's
// runtime.Options.Flights, the steps they have in common, which run once.
package parallel

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/dibuild/dib/compiler/plan"
	"github.com/dibuild/dib/runtime"
)

// Options tune Run.
type Options struct {
	// Builds is the most builds in progress at once; below 1, one. How
	// many of their steps run at once is the runtime.Slots the apply
	// function gives them (DefaultBuilds).
	Builds int
	// FailFast stops the other builds (they clean up) when one fails, and
	// starts no more.
	FailFast bool
	// Observer receives the events of every build.
	Observer runtime.Observer
}

// ApplyFunc builds one plan, sending its events to obs (runtime.Apply
// with the caller's options).
type ApplyFunc func(ctx context.Context, p *plan.Plan, obs runtime.Observer) error

// Status is how an image's build ended.
type Status string

// Statuses.
const (
	OK        Status = "ok"
	Failed    Status = "failed"
	Cancelled Status = "cancelled" // stopped by --fail-fast or a signal
	Skipped   Status = "not started"
)

// Result is the outcome of one image's build.
type Result struct {
	Image  string
	Status Status
	// Wall is the time from its start to its end (cleanup included).
	Wall time.Duration
	// Ran and Cached count its steps that ran and that the cache (or
	// another build of the set) provided.
	Ran, Cached int
	Err         error
}

// FailFastError is the cause of the builds stopped by FailFast.
type FailFastError struct{ Image string }

func (e *FailFastError) Error() string {
	return fmt.Sprintf("image %s failed (--fail-fast)", e.Image)
}

// Run builds plans with at most o.Builds in progress, in their order, and
// returns one result per plan, in the same order.
func Run(ctx context.Context, plans []*plan.Plan, o Options, apply ApplyFunc) []Result {
	jobs := max(o.Builds, 1)
	obs := o.Observer
	if obs == nil {
		obs = runtime.ObserverFunc(func(runtime.Event) {})
	}
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	results := make([]Result, len(plans))
	slots := make(chan struct{}, jobs)
	var wg sync.WaitGroup
	for i, p := range plans {
		results[i] = Result{Image: p.Image.Name, Status: Skipped}
		select {
		case slots <- struct{}{}:
			if ctx.Err() != nil {
				<-slots
			}
		case <-ctx.Done():
		}
		if ctx.Err() != nil {
			continue // stopped (fail-fast or signal): start no more
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-slots }()
			r := &results[i]
			var mu sync.Mutex
			count := runtime.ObserverFunc(func(e runtime.Event) {
				mu.Lock()
				switch e.Type {
				case runtime.StepStarted:
					r.Ran++
				case runtime.StepCached:
					r.Cached++
				}
				mu.Unlock()
				obs.Event(e)
			})
			start := time.Now()
			err := apply(ctx, p, count)
			mu.Lock()
			defer mu.Unlock()
			r.Wall, r.Err = time.Since(start), err
			var ie *runtime.InterruptedError
			switch {
			case err == nil:
				r.Status = OK
			case errors.As(err, &ie) || (ctx.Err() != nil && errors.Is(err, context.Canceled)):
				r.Status = Cancelled
			default:
				r.Status = Failed
				if o.FailFast {
					cancel(&FailFastError{Image: p.Image.Name})
				}
			}
		}()
	}
	wg.Wait()
	return results
}

// AnyFailed reports whether any build did not succeed.
func AnyFailed(results []Result) bool {
	for _, r := range results {
		if r.Status != OK {
			return true
		}
	}
	return false
}

// WriteSummary writes the results as a table: image, status, wall time,
// steps run and cached.
func WriteSummary(w io.Writer, results []Result) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "IMAGE\tSTATUS\tWALL\tSTEPS RUN\tCACHED")
	for _, r := range results {
		wall := "-"
		if r.Status != Skipped {
			wall = r.Wall.Round(100 * time.Millisecond).String()
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%d\n", r.Image, r.Status, wall, r.Ran, r.Cached)
	}
	return tw.Flush()
}

// DefaultJobs is `dib apply -j`'s default, the most steps of the images
// of a Dibfile that run at once, on a machine with cpus cores and
// memAvailableKB of available memory (MemAvailable).
//
// A step keeps about one core busy (dpkg, apt and the element scripts
// run one at a time; compressing a snapshot briefly takes more), so no
// more steps than cores run. Each build needs memory too: its processes
// (apt's cache, dpkg, mke2fs, the snapshot compressor: about 1 GiB at
// their peak) and, when it builds in a tmpfs, the tree, which lives in
// RAM; a tmpfs build is counted as --min-tmpfs GB more (DIB's rule: a
// build gets a tmpfs when the machine has twice that). So:
//
//	jobs = min(images, cores, memBuilds), at least 1
//	memBuilds = MemAvailable / (1 GiB + min-tmpfs GiB if tmpfs)
func DefaultJobs(images, cpus int, memAvailableKB int64, tmpfs bool, minTmpfsGB int) int {
	return max(min(images, cpus, memBuilds(memAvailableKB, tmpfs, minTmpfsGB)), 1)
}

// DefaultBuilds is how many builds are in progress at once for jobs
// steps at a time: twice as many (so that a build between steps, or
// waiting for a step another build runs, leaves its core to a third),
// bounded by the images and by memory as in DefaultJobs; one with
// jobs 1 (one image after another, as -j 1 and --break ask).
//
// Measured with bench/parallel.sh (three images sharing a bootstrap, 2
// cores, -j 2): two builds in progress took 83.8 s, the third image
// running alone on one core for its last 33 s.
func DefaultBuilds(images, jobs int, memAvailableKB int64, tmpfs bool, minTmpfsGB int) int {
	if jobs <= 1 {
		return 1
	}
	return max(min(images, 2*jobs, memBuilds(memAvailableKB, tmpfs, minTmpfsGB)), 1)
}

// memBuilds is how many builds the available memory holds (a large
// number when it is unknown).
func memBuilds(memAvailableKB int64, tmpfs bool, minTmpfsGB int) int {
	if memAvailableKB <= 0 {
		return 1 << 30
	}
	per := int64(1 << 20) // KiB in 1 GiB
	if tmpfs {
		per += int64(max(minTmpfsGB, 0)) << 20
	}
	return int(memAvailableKB / per)
}

// MemAvailableKB parses MemAvailable from a /proc/meminfo text; 0 if
// absent.
func MemAvailableKB(meminfo []byte) int64 {
	for _, line := range strings.Split(string(meminfo), "\n") {
		f := strings.Fields(line)
		if len(f) >= 2 && f[0] == "MemAvailable:" {
			n, _ := strconv.ParseInt(f[1], 10, 64)
			return n
		}
	}
	return 0
}
