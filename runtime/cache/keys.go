package cache

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"slices"
	"strings"

	"github.com/dibuild/dib/compiler/plan"
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
	unread := map[string]bool{}
	for _, v := range OutputVariables() {
		if !mentions(p, v) {
			unread[v] = true
		}
	}
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
		lines = append(lines, "step "+ownDigest(p, s, scripts, unread), "executor "+ExecutorVersion(s.Kind))
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
			keys[i].Points = points(p, s, lines, scripts, unread)
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
func points(p *plan.Plan, s *plan.Step, lines []string, scripts map[string]string, unread map[string]bool) []Point {
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
				l = "step " + ownDigest(p, &cut, scripts, unread)
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
// dependencies, which the chain of cache keys replaces, and for the hook
// tree without the scripts the phases run.
//
// The variables that only describe the outputs (OutputVariables) are left
// out when nothing can read them: when no file of the hook tree names one,
// no script sees a difference, so adding an output (say vhd) or a checksum
// keeps every phase's key and only the outputs run; when one does, it is
// an input of every step that sees it like any other variable.
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

// OutputVariables are DIB's variables that describe only the outputs and
// that no $_LIB file reads: IMAGE_TYPES, the formats. Every phase sees it,
// few hooks read it. (DIB_CHECKSUM is not one: $_LIB's common-functions
// reads it, so any hook may.)
func OutputVariables() []string { return []string{"IMAGE_TYPES"} }

// mentions reports whether any file of the plan's hook tree (or a file the
// runtime generates into it) contains word.
func mentions(p *plan.Plan, word string) bool {
	for _, f := range p.Files {
		if b, ok := p.Blob(f.SHA256); ok && bytes.Contains(b, []byte(word)) {
			return true
		}
	}
	for _, s := range p.Steps {
		if s.Hooks != nil {
			for _, g := range s.Hooks.Generated {
				if strings.Contains(g.Content, word) {
					return true
				}
			}
		}
	}
	return false
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
