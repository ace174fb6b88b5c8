package cache

import (
	"encoding/json"
	"fmt"
	"reflect"
	"sort"
	"strings"
	"time"

	"github.com/dibuild/dib/compiler/plan"
)

// Action is what Apply does with one step.
type Action int

// Actions.
const (
	// Run executes the step.
	Run Action = iota
	// Restored: the state after the step comes from a snapshot.
	Restored
	// Reuse: the step's outputs are restored from the cache (or are
	// already in place); the step does not run.
	Reuse
)

// StepDecision is the decision for one step and why.
type StepDecision struct {
	Key    Key
	Action Action
	Reason string
	// Entry is the cache entry used (Restored, Reuse) or nil.
	Entry *Meta
}

// Decision is the plan of an apply against the cache.
type Decision struct {
	Steps []StepDecision
	// Restore is the index of the step whose snapshot is restored before
	// running the rest; -1 when the build starts from nothing.
	Restore int
	// RestoreScripts, when not zero, says the snapshot restored is the
	// state inside step Restore after that many of its scripts (a Point):
	// the step then runs from the next script. RestoreEntry is the entry
	// restored (either kind).
	RestoreScripts int
	RestoreEntry   *Meta
	// NoState is set when nothing runs: every output is cached.
	NoState bool
	// FirstRun is the index of the first state step that runs (its
	// reason says why); len(Steps) when none does.
	FirstRun int
}

// DecideOptions tune Decide.
type DecideOptions struct {
	Now     time.Time
	MaxAge  time.Duration // 0: DefaultMaxAge
	Refresh bool          // results of mirror steps are not reused
	NoCache bool
	// Exclude lists keys not to use (entries found corrupt).
	Exclude map[string]bool
	// Lookup, when set, finds the record of a key the cache does not
	// hold elsewhere (a registry, runtime/cache/remote): the decision may
	// then use entries (and parents of snapshot layers) the caller must
	// fetch before restoring them.
	Lookup func(key string) *Meta
}

// Decide finds the longest prefix of the plan whose state is cached and
// which outputs can be restored. keys are from Keys.
func (c *Cache) Decide(p *plan.Plan, keys []Key, o DecideOptions) *Decision {
	n := len(p.Steps)
	d := &Decision{Steps: make([]StepDecision, n), Restore: -1, FirstRun: n}
	for i := range keys {
		d.Steps[i].Key = keys[i]
	}
	if o.NoCache {
		for i := range d.Steps {
			d.Steps[i].Reason = "--no-cache"
		}
		d.FirstRun = 0
		return d
	}
	if o.Now.IsZero() {
		o.Now = time.Now()
	}
	maxAge := o.MaxAge
	if maxAge <= 0 {
		maxAge = DefaultMaxAge
	}
	u := usability{c: c, o: o, maxAge: maxAge}
	usable := u.usable
	entries := make([]*Meta, n)
	firstMiss, missWhy := n, ""
	for i := range p.Steps {
		if !keys[i].State {
			continue
		}
		m, why := usable(keys[i].Key)
		if m == nil {
			firstMiss, missWhy = i, why
			break
		}
		entries[i] = m
	}
	outputsMissing := false
	outWhy := make([]string, n)
	for i := range p.Steps {
		if keys[i].State {
			continue
		}
		m, why := usable(keys[i].Key)
		entries[i], outWhy[i] = m, why
		if m == nil {
			outputsMissing = true
		}
	}
	if firstMiss == n && !outputsMissing {
		d.NoState = true
		for i := range d.Steps {
			d.Steps[i].Action, d.Steps[i].Entry = Reuse, entries[i]
			d.Steps[i].Reason = "cached"
			if len(entries[i].Outputs) > 0 {
				d.Steps[i].Reason = "cached: outputs restored from the cache"
			}
		}
		return d
	}
	restorable := func(m *Meta) bool {
		if m == nil || m.Snapshot == nil {
			return false
		}
		_, err := c.chain(m, o.Exclude, o.Lookup)
		return err == nil
	}
	for j := firstMiss - 1; j >= 0; j-- {
		if keys[j].State && restorable(entries[j]) {
			d.Restore, d.RestoreEntry = j, entries[j]
			break
		}
	}
	if firstMiss < n {
		pts := keys[firstMiss].Points
		for q := len(pts) - 1; q >= 0; q-- {
			if m, _ := usable(pts[q].Key); restorable(m) {
				d.Restore, d.RestoreScripts, d.RestoreEntry = firstMiss, pts[q].Scripts, m
				break
			}
		}
	}
	d.FirstRun = firstMiss
	d.explain(p, keys, entries, outWhy, missWhy)
	return d
}

// usability says whether a cache entry may be used: present (here or in a
// registry, Lookup), not excluded as corrupt, its mirror result not older
// than maxAge (none with --refresh), its outputs kept.
type usability struct {
	c      *Cache
	o      DecideOptions
	maxAge time.Duration
}

// usable is the entry of key k, or nil and why it cannot be used.
func (u usability) usable(k string) (*Meta, string) {
	if u.o.Exclude[k] {
		return nil, "its cache entry was corrupt and was dropped"
	}
	m, err := u.c.Get(k)
	if err != nil {
		return nil, err.Error()
	}
	if m == nil && u.o.Lookup != nil {
		m = u.o.Lookup(k)
	}
	if m == nil {
		return nil, "not in the cache"
	}
	if !m.MirrorTime.IsZero() {
		age := u.o.Now.Sub(m.MirrorTime)
		if u.o.Refresh {
			return nil, "--refresh: its cached result used a package mirror " + Age(age) + " ago"
		}
		if age > u.maxAge {
			return nil, fmt.Sprintf("its cached result used a package mirror %s ago, more than cache.max-age (%s)", Age(age), Age(u.maxAge))
		}
	}
	if m.Incomplete {
		return nil, "its outputs were not kept (written outside the output directory)"
	}
	return m, ""
}

// explain sets each step's action and reason once the first step to run
// (d.FirstRun, why it misses: missWhy) and the state to restore are
// decided; entries are the usable entries, outWhy why an output step's
// entry is not.
func (d *Decision) explain(p *plan.Plan, keys []Key, entries []*Meta, outWhy []string, missWhy string) {
	n := len(d.Steps)
	for i := range d.Steps {
		sd := &d.Steps[i]
		switch {
		case !keys[i].State && entries[i] != nil:
			sd.Action, sd.Entry, sd.Reason = Reuse, entries[i], "cached: outputs restored from the cache"
		case !keys[i].State:
			sd.Reason = outWhy[i]
		case i == d.FirstRun && i == d.Restore:
			sc := p.Steps[i].Phase.Scripts
			sd.Reason = fmt.Sprintf("%s; runs from script %s: the state after %s is restored from the cache",
				missWhy, sc[d.RestoreScripts].Name, sc[d.RestoreScripts-1].Name)
		case i <= d.Restore:
			sd.Action, sd.Entry = Restored, d.RestoreEntry
			sd.Reason = fmt.Sprintf("cached: state restored from the snapshot after step %d", d.Restore+1)
			if d.RestoreScripts > 0 {
				sd.Reason = fmt.Sprintf("cached: state restored from the snapshot inside step %d", d.Restore+1)
			}
		case i == d.FirstRun:
			sd.Reason = missWhy
		case i > d.FirstRun:
			sd.Reason = fmt.Sprintf("an earlier step runs (step %d)", d.FirstRun+1)
		default:
			if d.Restore >= 0 {
				sd.Reason = fmt.Sprintf("cached, but the state after it is not kept (the last snapshot before it is after step %d)", d.Restore+1)
			} else {
				sd.Reason = "cached, but the state after it is not kept (no snapshot before it)"
			}
			if d.FirstRun == n {
				sd.Reason += "; it rebuilds the state for the outputs that run"
			}
		}
	}
}

// Age renders a duration for people: 45s, 12m, 5h, 8d.
func Age(d time.Duration) string {
	switch {
	case d < time.Minute:
		return fmt.Sprintf("%ds", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%dm", int(d.Minutes()))
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh", int(d.Hours()))
	}
	return fmt.Sprintf("%dd", int(d.Hours()/24))
}

// Explain names what changed for a step that is not in the cache: it
// compares the step's inputs with the most recent entry of the same step
// (same image, same position and title) in the cache. stepInputs are the
// plan's lines of the step (plan.Explain).
func (c *Cache) Explain(p *plan.Plan, i int, k Key, stepInputs []string) []string {
	list, err := c.List()
	if err != nil {
		return nil
	}
	s := &p.Steps[i]
	var prev *Meta
	for _, m := range list {
		if m.Image == p.Image.Name && m.Title == s.Title && m.Kind == s.Kind && m.Key != k.Key {
			prev = m // List is oldest first: the last match is the newest
		}
	}
	if prev == nil {
		return []string{"no earlier build of this step is in the cache"}
	}
	// Dependency IDs, the step's own digest and the chain say less than
	// the lines they digest: leave them out.
	drop := func(lines []string) []string {
		var out []string
		for _, l := range lines {
			label, _, _ := strings.Cut(l, " ")
			switch label {
			case "dep", "step", "prev", "state":
				continue
			}
			out = append(out, l)
		}
		return out
	}
	changes := diffLines(drop(prev.StepInputs), drop(stepInputs))
	changes = append(changes, diffLines(drop(prev.Inputs), drop(k.Inputs))...)
	if len(changes) == 0 {
		changes = []string{"an earlier step's result changed"}
	}
	return changes
}

// diffLines describes the differences of two lists of labelled lines
// ("LABEL NAME VALUE…"), by label and name; params lines (JSON) are
// compared field by field.
func diffLines(old, cur []string) []string {
	group := func(lines []string) (map[string][]string, []string) {
		m := map[string][]string{}
		var order []string
		for _, l := range lines {
			f := strings.SplitN(l, " ", 3)
			id := f[0]
			if len(f) == 3 && f[0] != "params" {
				id = f[0] + " " + f[1]
			}
			if f[0] == "dep" || f[0] == "step" || f[0] == "prev" || f[0] == "state" {
				id = f[0]
			}
			if _, ok := m[id]; !ok {
				order = append(order, id)
			}
			m[id] = append(m[id], l)
		}
		return m, order
	}
	om, oorder := group(old)
	cm, corder := group(cur)
	var out []string
	seen := map[string]bool{}
	for _, id := range append(corder, oorder...) {
		if seen[id] {
			continue
		}
		seen[id] = true
		o, c := om[id], cm[id]
		if reflect.DeepEqual(o, c) {
			continue
		}
		switch {
		case len(o) == 0:
			out = append(out, "added: "+id)
		case len(c) == 0:
			out = append(out, "removed: "+id)
		case id == "params":
			out = append(out, diffParams(strings.TrimPrefix(o[0], "params "), strings.TrimPrefix(c[0], "params "))...)
		case id == "dep":
			out = append(out, "a step it depends on changed")
		default:
			out = append(out, "changed: "+id)
		}
	}
	return out
}

// diffParams names the changed fields of two JSON documents, e.g.
// "changed: scripts[3].sha256 (install.d/50-devuser)".
func diffParams(a, b string) []string {
	var x, y any
	if json.Unmarshal([]byte(a), &x) != nil || json.Unmarshal([]byte(b), &y) != nil {
		return []string{"changed: parameters"}
	}
	var out []string
	var walk func(path string, x, y any, ctx string)
	walk = func(path string, x, y any, ctx string) {
		if len(out) >= 8 || reflect.DeepEqual(x, y) {
			return
		}
		switch xv := x.(type) {
		case map[string]any:
			yv, ok := y.(map[string]any)
			if !ok {
				break
			}
			keys := map[string]bool{}
			for k := range xv {
				keys[k] = true
			}
			for k := range yv {
				keys[k] = true
			}
			var sorted []string
			for k := range keys {
				sorted = append(sorted, k)
			}
			sort.Strings(sorted)
			c := ctx
			if p, ok := yv["path"].(string); ok {
				c = p
			} else if nm, ok := yv["name"].(string); ok && c == "" {
				c = nm
			}
			for _, k := range sorted {
				walk(strings.TrimPrefix(path+"."+k, "."), xv[k], yv[k], c)
			}
			return
		case []any:
			yv, ok := y.([]any)
			if !ok || len(xv) != len(yv) {
				break
			}
			for i := range xv {
				walk(fmt.Sprintf("%s[%d]", path, i), xv[i], yv[i], ctx)
			}
			return
		}
		l := "changed: " + path
		if ctx != "" {
			l += " (" + ctx + ")"
		}
		out = append(out, l)
	}
	walk("", x, y, "")
	if len(out) == 0 {
		out = []string{"changed: parameters"}
	}
	return out
}
