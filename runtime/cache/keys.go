package cache

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"slices"
	"strings"

	"github.com/dibuild/dib/compiler/plan"
	"github.com/dibuild/dib/runtime/lib"
)

// keySalt changes every cache key when the cache's format or meaning
// changes. Bump it then.
const keySalt = "dib-cache-v1"

// ExecutorVersion is the version of dib's executor of a step kind: it is
// in every key, so a change to how dib runs a kind (a new mount, another
// mke2fs flag) invalidates what older executors cached. Bump the kind's
// number with such a change.
func ExecutorVersion(kind string) string {
	switch kind {
	case plan.KindBootstrap:
		return "bootstrap/1"
	case plan.KindHooks:
		return "hooks/1"
	case plan.KindPhase:
		return "phase/1"
	case plan.KindPackages:
		return "packages/1"
	case plan.KindImageSize, plan.KindPartition, plan.KindBootloader:
		return "disk/1"
	case plan.KindOutput:
		return "output/1"
	case plan.KindChecksum:
		return "checksum/1"
	case plan.KindManifest:
		return "manifest/1"
	}
	return kind + "/1"
}

// Key is the cache key of one step, with the labelled lines it digests.
type Key struct {
	Key    string
	Inputs []string
	// State is set for steps whose result is the build's state (the tree,
	// the disk); outputs and checksums hang off the final state instead
	// of chaining, so adding an output changes no other key.
	State bool
	// Points are the keys of the states inside a phase step, after the
	// scripts its SnapshotAfter names, in script order.
	Points []Point
}

// Point is the key of the state after the first Scripts scripts of a
// phase step: it digests what Key does with the phase cut after them, so
// a change to a later script of the phase keeps it.
type Point struct {
	Scripts int
	Key     string
	Inputs  []string
}

// IsState reports whether a step's result is build state (not an output
// or checksum file beside the image).
func IsState(s *plan.Step) bool {
	return s.Kind != plan.KindOutput && s.Kind != plan.KindChecksum
}

// Keys computes the cache key of every step of p. A state step's key
// digests the key of the state step before it, the step's plan ID, the
// executor version of its kind, the installed versions of the host tools
// it runs (hostPkgs: Debian package -> version) and, for each secret it
// sees, the cache's keyed digest of the value. An output or checksum
// step's key digests the key of the final state instead of its
// predecessor.
//
// The plan ID already covers the step's parameters, scripts, files,
// non-secret environment and its dependencies; chaining adds what the
// plan cannot know (the host, dib's executors, secret values) for every
// step before, since each state is built on the one before it.
//
// dibID identifies the dib program itself (SelfID): until every executor
// carries a version that is bumped with each change of its behaviour, any
// other dib binary builds anew rather than trusting results it did not
// make.
func (c *Cache) Keys(p *plan.Plan, dibID string, hostPkgs map[string]string, secrets map[string]string) []Key {
	toolPkg := map[string]string{}
	for _, t := range p.HostTools {
		toolPkg[t.Program] = t.Package
	}
	secret := map[string]bool{}
	for _, e := range p.Env {
		if e.Secret {
			secret[e.Name] = true
		}
	}
	scripts := RunScripts(p)
	reads := identityReadsOf(p, scripts)
	keys := make([]Key, len(p.Steps))
	prev := ""
	for i := range p.Steps {
		s := &p.Steps[i]
		lines := []string{"cache " + keySalt, "dib " + dibID}
		if IsState(s) {
			if prev != "" {
				lines = append(lines, "prev "+prev)
			}
		}
		lines = append(lines, "step "+ownDigest(p, s, scripts, reads.unread(s)), "executor "+ExecutorVersion(s.Kind))
		for _, t := range s.Tools {
			pkg := toolPkg[t]
			ver := hostPkgs[pkg]
			if pkg == "" || ver == "" {
				ver = "unknown"
			}
			lines = append(lines, "tool "+t+" "+pkg+"="+ver)
		}
		for _, name := range s.Env {
			if !secret[name] {
				continue
			}
			v, ok := secrets[name]
			if !ok {
				lines = append(lines, "secret "+name+" missing")
				continue
			}
			lines = append(lines, "secret "+name+" hmac:"+c.SecretDigest(name, v))
		}
		keys[i] = Key{Inputs: lines, State: IsState(s)}
		if IsState(s) {
			keys[i].Points = points(p, s, lines, scripts, reads)
			keys[i].Key = digest(lines)
			prev = keys[i].Key
		}
	}
	// Outputs hang off the final state, and off the outputs they read (a
	// checksum off its output), in plan order.
	index := map[string]int{}
	for i, s := range p.Steps {
		index[s.ID] = i
	}
	for i := range p.Steps {
		if keys[i].State {
			continue
		}
		in := append([]string{keys[i].Inputs[0], keys[i].Inputs[1], "state " + prev}, keys[i].Inputs[2:]...)
		for _, d := range p.Steps[i].Deps {
			if j, ok := index[d]; ok && j < i && !keys[j].State {
				in = append(in, "dep "+keys[j].Key)
			}
		}
		keys[i].Inputs = in
		keys[i].Key = digest(in)
	}
	return keys
}

// points computes the keys inside phase step s (Key.Points): its key's
// lines with the step's own digest taken of the phase cut after the
// script, and a line naming how many scripts ran.
func points(p *plan.Plan, s *plan.Step, lines []string, scripts map[string]string, reads *identityReads) []Point {
	if s.Phase == nil || len(s.SnapshotAfter) == 0 {
		return nil
	}
	var out []Point
	for j, sc := range s.Phase.Scripts {
		if j == len(s.Phase.Scripts)-1 || !slices.Contains(s.SnapshotAfter, sc.Name) {
			continue
		}
		cut := *s
		ph := *s.Phase
		ph.Scripts = ph.Scripts[:j+1]
		cut.Phase = &ph
		in := make([]string, 0, len(lines)+1)
		for _, l := range lines {
			if strings.HasPrefix(l, "step ") {
				l = "step " + ownDigest(p, &cut, scripts, reads.unread(&cut))
				in = append(in, l, fmt.Sprintf("scripts %d through %s", j+1, sc.Path))
				continue
			}
			in = append(in, l)
		}
		out = append(out, Point{Scripts: j + 1, Key: digest(in), Inputs: in})
	}
	return out
}

// RunScripts returns the hook-tree files the plan's phases run, by path,
// with their digest. Each is covered by the key of the phase that runs it,
// not by the hook tree's, so editing one script invalidates its phase and
// what follows, not every phase after the hook tree is written. A restore
// rewrites them from the plan (runtime).
func RunScripts(p *plan.Plan) map[string]string {
	out := map[string]string{}
	for _, s := range p.Steps {
		if s.Phase == nil {
			continue
		}
		for _, sc := range s.Phase.Scripts {
			out[sc.Path] = sc.SHA256
		}
	}
	return out
}

// ownDigest digests what the step itself consumes: the lines hashed into
// its plan ID (plan.Explain, secrets redacted) without the IDs of its
// dependencies, which the chain of cache keys replaces, for the hook tree
// without the scripts the phases run, and without the variables in unread
// (see identityReads).
func ownDigest(p *plan.Plan, s *plan.Step, scripts map[string]string, unread map[string]bool) string {
	lines, err := p.ExplainStep(s)
	if err != nil {
		return s.ID // a step that cannot be explained keys on its plan ID
	}
	kept := lines[:0:0]
	for _, l := range lines {
		if strings.HasPrefix(l, "dep ") {
			continue
		}
		if f := strings.Fields(l); len(f) >= 2 && f[0] == "env" && unread[f[1]] {
			continue
		}
		if s.Kind == plan.KindHooks && strings.HasPrefix(l, "file ") {
			// file PATH MODE LINK SHA256
			f := strings.Fields(l)
			if len(f) >= 3 && scripts[f[1]] != "" && scripts[f[1]] == f[len(f)-1] {
				continue
			}
		}
		kept = append(kept, l)
	}
	return digest(kept)
}

// identityReads says which identity variables (plan.EnvVar.Identity: the
// image's name, its output formats, what environment.d derives from them)
// each step can read. Images of one Dibfile differ in them; a step that
// cannot read them builds the same tree for each, and keying it on them
// would only keep images from sharing it. A variable is read by a step
// when a file the step may run mentions its name:
//
//   - a phase step: its own scripts (up to the cut, for a point inside
//     it), every file of the hook tree that is no phase's script and no
//     environment.d file (bin/ helpers, data, generated lists), and the
//     helpers of dib's $_LIB those name (lib.Texts), transitively. The
//     environment.d files are left out because the compiler ran them with
//     the identity variables changed and marked what they derive from
//     them as identity variables too (compiler/envdfiles.go).
//   - any other step: every file of the hook tree and every helper.
//
// What this cannot see: a program that reads the whole environment (a
// script that saves `env` into the image, a package's maintainer script
// reading IMAGE_NAME). DIB's and dib's elements use these variables only by
// name, to place files beside the outputs.
type identityReads struct {
	identity []string
	// mentions maps a hook-tree path (or lib:NAME) to the identity
	// variables it names.
	mentions map[string][]string
	// texts are the files by path (a helper as lib:NAME); shared the
	// tree files every phase may run; lib the helpers' names.
	texts  map[string][]byte
	shared []string
	lib    []string
	// scriptPaths are the files the phases run.
	scriptPaths map[string]bool
}

func identityReadsOf(p *plan.Plan, scripts map[string]string) *identityReads {
	r := &identityReads{mentions: map[string][]string{}, texts: map[string][]byte{}, scriptPaths: map[string]bool{}}
	for _, v := range p.Env {
		if v.Identity {
			r.identity = append(r.identity, v.Name)
		}
	}
	if len(r.identity) == 0 {
		return r
	}
	for path := range scripts {
		r.scriptPaths[path] = true
	}
	note := func(path string, text []byte) {
		r.texts[path] = text
		for _, name := range r.identity {
			if bytes.Contains(text, []byte(name)) {
				r.mentions[path] = append(r.mentions[path], name)
			}
		}
	}
	for _, f := range p.Files {
		b, _ := p.Blob(f.SHA256)
		note(f.Path, b)
		if !r.scriptPaths[f.Path] && !strings.HasPrefix(f.Path, "environment.d/") {
			r.shared = append(r.shared, f.Path)
		}
	}
	for _, s := range p.Steps {
		if s.Hooks == nil {
			continue
		}
		for _, g := range s.Hooks.Generated {
			note(g.Path, []byte(g.Content))
			r.shared = append(r.shared, g.Path)
		}
	}
	texts, err := lib.Texts()
	if err != nil {
		r.identity = nil // cannot tell what the helpers read: key on everything
		return r
	}
	for _, name := range slices.Sorted(maps.Keys(texts)) {
		r.lib = append(r.lib, name)
		note("lib:"+name, texts[name])
	}
	return r
}

// unread returns the identity variables step s cannot read.
func (r *identityReads) unread(s *plan.Step) map[string]bool {
	if len(r.identity) == 0 {
		return nil
	}
	var runs []string
	if s.Kind == plan.KindPhase && s.Phase != nil {
		runs = append(runs, r.shared...)
		for _, sc := range s.Phase.Scripts {
			runs = append(runs, sc.Path)
		}
	} else {
		for path := range r.texts {
			runs = append(runs, path)
		}
	}
	read := map[string]bool{}
	seen := map[string]bool{}
	for len(runs) > 0 {
		path := runs[len(runs)-1]
		runs = runs[:len(runs)-1]
		if seen[path] {
			continue
		}
		seen[path] = true
		for _, name := range r.mentions[path] {
			read[name] = true
		}
		// The helpers a file names run with it.
		text := r.texts[path]
		for _, name := range r.lib {
			if !seen["lib:"+name] && bytes.Contains(text, []byte(name)) {
				runs = append(runs, "lib:"+name)
			}
		}
	}
	out := map[string]bool{}
	for _, name := range r.identity {
		if !read[name] {
			out[name] = true
		}
	}
	return out
}

// SelfID is the sha256 of the running dib executable.
func SelfID() (string, error) {
	exe, err := os.Executable()
	if err != nil {
		return "", err
	}
	sum, _, err := hashFile(exe)
	return sum, err
}

func digest(lines []string) string {
	h := sha256.New()
	for _, l := range lines {
		h.Write([]byte(l))
		h.Write([]byte{'\n'})
	}
	return hex.EncodeToString(h.Sum(nil))
}

// HostPackages reads the installed Debian packages and their versions
// from a dpkg status file (the host's /var/lib/dpkg/status): the versions
// of the host tools that shape a step's result. A missing file gives an
// empty map.
func HostPackages(status string) (map[string]string, error) {
	data, err := os.ReadFile(status)
	if errors.Is(err, fs.ErrNotExist) {
		return map[string]string{}, nil
	}
	if err != nil {
		return nil, err
	}
	out := map[string]string{}
	for _, para := range bytes.Split(data, []byte("\n\n")) {
		var name, ver, status string
		sc := bufio.NewScanner(bytes.NewReader(para))
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			k, v, ok := strings.Cut(sc.Text(), ": ")
			if !ok {
				continue
			}
			switch k {
			case "Package":
				name = v
			case "Version":
				ver = v
			case "Status":
				status = v
			}
		}
		if name != "" && strings.HasSuffix(status, " installed") {
			out[name] = ver
		}
	}
	return out, nil
}
