package plan

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"sort"
	"strings"
)

// hashSalt changes every step ID when the meaning of a step changes in a
// way its parameters do not show (a new runtime behaviour). Bump it then.
const hashSalt = "dib-step-v1"

// HashInputs returns the labelled lines that make up the step's ID, in the
// order they are hashed. `dib plan --explain STEP` prints them.
//
// Every field the runtime reads must appear here: the kind, where it runs,
// the typed parameters (which list the content digest of every script and
// file), the tools, the environment it sees (name and value digest) and the
// IDs of its dependencies. Title and Origin are cosmetic and left out.
//
// env maps a variable name to the digest of its value (Redacted for
// secrets, see envDigests); deps maps a dependency key to its final ID.
func (s *Step) HashInputs(env map[string]string, files []File, deps map[string]string) ([]string, error) {
	lines := []string{"salt " + hashSalt, "kind " + s.Kind, "where " + s.Where}
	params, err := json.Marshal(s.params())
	if err != nil {
		return nil, fmt.Errorf("step %s: %w", s.Title, err)
	}
	lines = append(lines, "params "+string(params))
	for _, t := range s.Tools {
		lines = append(lines, "tool "+t)
	}
	for _, name := range s.Env {
		d, ok := env[name]
		if !ok {
			return nil, fmt.Errorf("step %s: unknown variable %s", s.Title, name)
		}
		lines = append(lines, "env "+name+" "+d)
	}
	if s.Kind == KindHooks {
		for _, f := range files {
			lines = append(lines, fmt.Sprintf("file %s %o %s %s", f.Path, f.Mode, f.Link, f.SHA256))
		}
	}
	ids := make([]string, 0, len(s.Deps))
	for _, d := range s.Deps {
		id, ok := deps[d]
		if !ok {
			return nil, fmt.Errorf("step %s: dependency %s is not an earlier step", s.Title, d)
		}
		ids = append(ids, id)
	}
	sort.Strings(ids)
	for _, id := range ids {
		lines = append(lines, "dep "+id)
	}
	return lines, nil
}

// params returns the typed parameter struct of the step.
func (s *Step) params() any {
	switch {
	case s.Bootstrap != nil:
		return s.Bootstrap
	case s.Hooks != nil:
		return s.Hooks
	case s.Phase != nil:
		return s.Phase
	case s.Packages != nil:
		return s.Packages
	case s.ImageSize != nil:
		return s.ImageSize
	case s.Partition != nil:
		return s.Partition
	case s.Bootloader != nil:
		return s.Bootloader
	case s.Output != nil:
		return s.Output
	case s.Checksum != nil:
		return s.Checksum
	case s.Manifest != nil:
		return s.Manifest
	}
	return nil
}

// Seal computes every step ID and the plan ID. Before Seal, Step.ID holds
// a local key unique in the plan and Deps name those keys; Seal replaces both
// with content digests. Steps must already be in dependency order.
//
// Secret values take no part: a step sees a secret variable as its name
// and the word <secret>. A digest of the value in the ID, with any salt a
// plan or an image could carry (the image holds the plan ID), would let
// anyone with the image test guesses offline; keeping a step from being
// reused when a secret changes is the step cache's business, with a key
// that never leaves the machine.
func (p *Plan) Seal() error {
	env := envDigests(p.Env)
	ids := make(map[string]string, len(p.Steps))
	for i := range p.Steps {
		s := &p.Steps[i]
		lines, err := s.HashInputs(env, p.Files, ids)
		if err != nil {
			return err
		}
		key := s.ID
		if _, dup := ids[key]; dup || key == "" {
			return fmt.Errorf("step %q: local key %q is empty or not unique", s.Title, key)
		}
		id := digestLines(lines)
		ids[key] = id
		s.ID = id
		for j, d := range s.Deps {
			s.Deps[j] = ids[d]
		}
		sort.Strings(s.Deps)
	}
	p.ID = p.planID()
	return nil
}

// planID is the digest of the image name, the step IDs and everything
// else in the plan the runtime acts on outside a step (planWide), so that
// Read refuses a plan file changed anywhere that matters.
func (p *Plan) planID() string {
	all := []string{"plan " + hashSalt, "image " + p.Image.Name}
	for _, s := range p.Steps {
		all = append(all, "step "+s.ID)
	}
	all = append(all, "plan-wide "+p.planWide())
	return digestLines(all)
}

// planWide is the JSON of what the runtime reads beside the steps: the
// image (DIB_RELEASE, ARCH, DISTRO_NAME defaults, the element lists), the
// elements (IMAGE_ELEMENT, their directories), every variable as the hooks
// get it (a secret as its name, source and the word <secret>, never its
// value), the host tools (what --install-host-tools installs), the outputs,
// SOURCE_DATE_EPOCH and the cache settings. Left out is what is only
// shown or depends on the planning host: the Dibfile's path, origins,
// provisions, notes and diagnostics, whether a host tool was found or a
// secret's source was set where the plan was made.
func (p *Plan) planWide() string {
	img := p.Image
	img.Source = ""
	scrub := func(v EnvVar) EnvVar {
		// Missing says whether the planning host had the secret's
		// source; the runtime looks for the value either way.
		v.Origin, v.Missing = Origin{}, false
		if v.Secret {
			v.Value = Redacted
		}
		return v
	}
	env := make([]EnvVar, 0, len(p.Env))
	for _, v := range p.Env {
		v = scrub(v)
		if v.Overrides != nil {
			o := scrub(*v.Overrides)
			v.Overrides = &o
		}
		env = append(env, v)
	}
	tools := make([][2]string, 0, len(p.HostTools))
	for _, t := range p.HostTools {
		tools = append(tools, [2]string{t.Program, t.Package})
	}
	b, err := json.Marshal(struct {
		Image           Image
		Elements        []Element
		Env             []EnvVar
		HostTools       [][2]string
		Outputs         []Output
		SourceDateEpoch int64
		EpochFrom       string `json:",omitempty"`
		Cache           *CacheSettings
	}{img, p.Elements, env, tools, p.Outputs, p.SourceDateEpoch, p.SourceDateEpochFrom, p.Cache})
	if err != nil {
		panic(err) // plain data always marshals
	}
	return string(b)
}

// envDigests maps each variable to what its value contributes to step
// IDs: the sha256 of the value, or Redacted for a secret.
func envDigests(vars []EnvVar) map[string]string {
	env := make(map[string]string, len(vars))
	for _, v := range vars {
		if v.Secret {
			env[v.Name] = Redacted
			continue
		}
		h := sha256.Sum256([]byte(v.Value))
		env[v.Name] = hex.EncodeToString(h[:])
	}
	return env
}

func digestLines(lines []string) string {
	h := sha256.New()
	for _, l := range lines {
		h.Write([]byte(l))
		h.Write([]byte{'\n'})
	}
	return hex.EncodeToString(h.Sum(nil))
}

// ShortID is the first 12 hex digits of an ID, as shown to users.
func ShortID(id string) string {
	if len(id) > 12 {
		return id[:12]
	}
	return id
}

// Step returns the step with the given ID or unique ID prefix.
func (p *Plan) Step(idOrPrefix string) (*Step, error) {
	var found *Step
	for i := range p.Steps {
		if strings.HasPrefix(p.Steps[i].ID, idOrPrefix) {
			if found != nil {
				return nil, fmt.Errorf("step ID prefix %q is ambiguous", idOrPrefix)
			}
			found = &p.Steps[i]
		}
	}
	if found == nil {
		return nil, fmt.Errorf("no step with ID %q", idOrPrefix)
	}
	return found, nil
}

// Explain returns the labelled lines hashed into a sealed step's ID, as
// `dib plan --explain` prints them; they hash to the ID exactly (a secret
// enters as "<secret>").
func (p *Plan) Explain(idOrPrefix string) ([]string, error) {
	s, err := p.Step(idOrPrefix)
	if err != nil {
		return nil, err
	}
	return p.ExplainStep(s)
}

// ExplainStep returns the lines Explain would for s, a step of p or one
// made from it (the build cache explains a phase cut after one of its
// scripts this way).
func (p *Plan) ExplainStep(s *Step) ([]string, error) {
	env := envDigests(p.Env)
	ids := map[string]string{}
	for _, st := range p.Steps {
		ids[st.ID] = st.ID
	}
	return s.HashInputs(env, p.Files, ids)
}
