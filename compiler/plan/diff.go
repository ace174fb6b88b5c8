package plan

import (
	"bytes"
	"encoding/json"
	"fmt"
	"sort"
	"strings"
)

// Diff is what changed from plan A to plan B. Steps are matched by their
// title (unique within a plan: "phase install.d", "output qcow2", …), so a
// step whose ID changed shows as changed, not as removed and added.
type Diff struct {
	A, B     string       `json:"-"`
	SameID   bool         `json:"same"`
	Steps    []StepChange `json:"steps,omitempty"`
	Scripts  []FileChange `json:"scripts,omitempty"`
	Env      []Change     `json:"env,omitempty"`
	Packages []Change     `json:"packages,omitempty"`
	Elements []Change     `json:"elements,omitempty"`
	Layout   []Change     `json:"layout,omitempty"`
	Outputs  []Change     `json:"outputs,omitempty"`
}

// Empty reports whether the plans build the same thing.
func (d *Diff) Empty() bool {
	return len(d.Steps) == 0 && len(d.Scripts) == 0 && len(d.Env) == 0 && len(d.Packages) == 0 &&
		len(d.Elements) == 0 && len(d.Layout) == 0 && len(d.Outputs) == 0
}

// Change kinds.
const (
	Added   = "added"
	Removed = "removed"
	Changed = "changed"
)

// StepChange is one step added, removed or changed.
type StepChange struct {
	Change string `json:"change"`
	Title  string `json:"title"`
	Kind   string `json:"kind"`
	OldID  string `json:"old_id,omitempty"`
	NewID  string `json:"new_id,omitempty"`
	// Cause says why a changed step changed: its own inputs, or only
	// because a step it depends on changed.
	Cause string `json:"cause,omitempty"`
}

// FileChange is one hook file added, removed or changed, with a unified
// diff of its text when both sides are available and text.
type FileChange struct {
	Change  string `json:"change"`
	Path    string `json:"path"`
	Element string `json:"element,omitempty"`
	OldSHA  string `json:"old_sha256,omitempty"`
	NewSHA  string `json:"new_sha256,omitempty"`
	Unified string `json:"unified,omitempty"`
}

// Change is a keyed value that was added, removed or changed.
type Change struct {
	Change string `json:"change"`
	Key    string `json:"key"`
	Old    string `json:"old,omitempty"`
	New    string `json:"new,omitempty"`
}

// Compare computes the difference between two plans.
func Compare(a, b *Plan) *Diff {
	d := &Diff{SameID: a.ID == b.ID}
	d.Steps = diffSteps(a, b)
	d.Scripts = diffFiles(a, b)
	d.Env = diffMaps(envMap(a), envMap(b))
	d.Packages = diffMaps(packageMap(a), packageMap(b))
	// An element that moved to another directory is the same element:
	// its content is compared through the hook files.
	for _, c := range diffMaps(elementMap(a), elementMap(b)) {
		if c.Change != Changed {
			d.Elements = append(d.Elements, c)
		}
	}
	d.Layout = diffMaps(layoutMap(a), layoutMap(b))
	d.Outputs = diffMaps(outputMap(a), outputMap(b))
	return d
}

func diffSteps(a, b *Plan) []StepChange {
	type entry struct {
		s     *Step
		index int
	}
	index := func(p *Plan) map[string]entry {
		m := map[string]entry{}
		for i := range p.Steps {
			m[p.Steps[i].Title] = entry{&p.Steps[i], i}
		}
		return m
	}
	am, bm := index(a), index(b)
	changedIDs := map[string]bool{} // old IDs of steps that changed
	var out []StepChange
	for i := range a.Steps {
		s := &a.Steps[i]
		o, ok := bm[s.Title]
		if !ok {
			out = append(out, StepChange{Change: Removed, Title: s.Title, Kind: s.Kind, OldID: s.ID})
			changedIDs[s.ID] = true
			continue
		}
		if o.s.ID == s.ID {
			continue
		}
		changedIDs[s.ID] = true
		cause := "its own inputs changed"
		pa, _ := json.Marshal(s.params())
		pb, _ := json.Marshal(o.s.params())
		if bytes.Equal(pa, pb) && strings.Join(s.Env, ",") == strings.Join(o.s.Env, ",") && strings.Join(s.Tools, ",") == strings.Join(o.s.Tools, ",") {
			cause = "a step it depends on changed"
		}
		out = append(out, StepChange{Change: Changed, Title: s.Title, Kind: s.Kind, OldID: s.ID, NewID: o.s.ID, Cause: cause})
	}
	for i := range b.Steps {
		s := &b.Steps[i]
		if _, ok := am[s.Title]; !ok {
			out = append(out, StepChange{Change: Added, Title: s.Title, Kind: s.Kind, NewID: s.ID})
		}
	}
	return out
}

func diffFiles(a, b *Plan) []FileChange {
	am, bm := map[string]File{}, map[string]File{}
	for _, f := range a.Files {
		am[f.Path] = f
	}
	for _, f := range b.Files {
		bm[f.Path] = f
	}
	var out []FileChange
	for _, p := range unionKeys(am, bm) {
		fa, inA := am[p]
		fb, inB := bm[p]
		switch {
		case inA && !inB:
			out = append(out, FileChange{Change: Removed, Path: p, Element: fa.Element, OldSHA: fa.SHA256})
		case !inA && inB:
			out = append(out, FileChange{Change: Added, Path: p, Element: fb.Element, NewSHA: fb.SHA256})
		case fa.SHA256 != fb.SHA256 || fa.Mode != fb.Mode || fa.Link != fb.Link:
			c := FileChange{Change: Changed, Path: p, Element: fb.Element, OldSHA: fa.SHA256, NewSHA: fb.SHA256}
			ta, okA := a.Blobs[fa.SHA256]
			tb, okB := b.Blobs[fb.SHA256]
			if okA && okB && isText(ta) && isText(tb) {
				c.Unified = Unified("a/"+p, "b/"+p, string(ta), string(tb))
			}
			if fa.Mode != fb.Mode && c.Unified == "" {
				c.Unified = fmt.Sprintf("mode %o -> %o\n", fa.Mode, fb.Mode)
			}
			out = append(out, c)
		}
	}
	return out
}

func isText(b []byte) bool { return !bytes.ContainsRune(b, 0) }

func envMap(p *Plan) map[string]string {
	m := map[string]string{}
	for _, v := range p.Env {
		m[v.Name] = v.Value
	}
	return m
}

func packageMap(p *Plan) map[string]string {
	m := map[string]string{}
	for _, s := range p.Steps {
		if s.Phase == nil {
			continue
		}
		for _, pk := range s.Phase.Packages {
			verb := "install"
			if pk.Uninstall {
				verb = "uninstall"
			}
			m[s.Phase.Name+" "+verb+" "+pk.Name+" ("+pk.Element+")"] = strings.Join(pk.Mapped, " ")
		}
		if s.Packages != nil {
			for _, n := range s.Packages.Names {
				m["packages "+n] = n
			}
		}
	}
	return m
}

func elementMap(p *Plan) map[string]string {
	m := map[string]string{}
	for _, e := range p.Elements {
		m[e.Name] = e.Source
	}
	return m
}

func outputMap(p *Plan) map[string]string {
	m := map[string]string{}
	for _, o := range p.Outputs {
		b, _ := json.Marshal(o)
		m[o.Path] = string(b)
	}
	return m
}

// layoutMap flattens the disk layout into "path = value" leaves so a change
// shows as the few values that moved.
func layoutMap(p *Plan) map[string]string {
	m := map[string]string{}
	for _, s := range p.Steps {
		if s.Partition == nil || s.Partition.Layout == nil {
			continue
		}
		b, _ := json.Marshal(s.Partition.Layout)
		var v any
		_ = json.Unmarshal(b, &v)
		flatten("", v, m)
	}
	return m
}

func flatten(prefix string, v any, m map[string]string) {
	switch x := v.(type) {
	case map[string]any:
		for k, e := range x {
			flatten(prefix+"/"+k, e, m)
		}
	case []any:
		for i, e := range x {
			flatten(fmt.Sprintf("%s/%d", prefix, i), e, m)
		}
	default:
		b, _ := json.Marshal(x)
		m[prefix] = string(b)
	}
}

func diffMaps(a, b map[string]string) []Change {
	var out []Change
	for _, k := range unionKeys(a, b) {
		va, inA := a[k]
		vb, inB := b[k]
		switch {
		case inA && !inB:
			out = append(out, Change{Change: Removed, Key: k, Old: va})
		case !inA && inB:
			out = append(out, Change{Change: Added, Key: k, New: vb})
		case va != vb:
			out = append(out, Change{Change: Changed, Key: k, Old: va, New: vb})
		}
	}
	return out
}

func unionKeys[V any](a, b map[string]V) []string {
	keys := make([]string, 0, len(a)+len(b))
	for k := range a {
		keys = append(keys, k)
	}
	for k := range b {
		if _, ok := a[k]; !ok {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	return keys
}
