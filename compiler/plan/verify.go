package plan

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io/fs"
	"sort"
	"strings"
)

// Verify recomputes what a plan says about itself, as BuildKit recomputes
// digests when it loads a definition: the digest of every blob, the blob
// and size of every file, the one parameter set of each step (matching
// its kind), every step ID from its content, environment and
// dependencies, and the plan ID. A plan changed after `dib plan` is
// refused, with the step named.
func (p *Plan) Verify() error {
	for k, b := range p.Blobs {
		sum := sha256.Sum256(b)
		if got := hex.EncodeToString(sum[:]); got != k {
			return fmt.Errorf("blob %s: its content has digest %s: the plan file was changed after `dib plan`", ShortID(k), ShortID(got))
		}
	}
	for _, f := range p.Files {
		if fs.FileMode(f.Mode)&(fs.ModeDir|fs.ModeSymlink) != 0 {
			continue
		}
		b, ok := p.Blobs[f.SHA256]
		if !ok && f.Size > 0 {
			return fmt.Errorf("file %s: no content with digest %s in the plan", f.Path, ShortID(f.SHA256))
		}
		if ok && int64(len(b)) != f.Size {
			return fmt.Errorf("file %s: size %d, but its content has %d bytes", f.Path, f.Size, len(b))
		}
	}
	env := envDigests(p.Env)
	ids := make(map[string]string, len(p.Steps))
	for i := range p.Steps {
		s := &p.Steps[i]
		if err := s.checkParams(); err != nil {
			return fmt.Errorf("step %d %q (%s): %w", i+1, s.Title, ShortID(s.ID), err)
		}
		lines, err := s.HashInputs(env, p.Files, ids)
		if err != nil {
			return fmt.Errorf("step %d %q (%s): %w", i+1, s.Title, ShortID(s.ID), err)
		}
		if got := digestLines(lines); got != s.ID {
			return fmt.Errorf("step %d %q (%s) was changed after `dib plan`: its content hashes to %s", i+1, s.Title, ShortID(s.ID), ShortID(got))
		}
		if _, dup := ids[s.ID]; dup {
			return fmt.Errorf("step %d %q: ID %s appears twice", i+1, s.Title, ShortID(s.ID))
		}
		ids[s.ID] = s.ID
	}
	if got := p.planID(); got != p.ID {
		return fmt.Errorf("plan ID %s does not match its contents (image, elements, variables, host tools, outputs, steps: %s): the plan file was changed after `dib plan`", ShortID(p.ID), ShortID(got))
	}
	return nil
}

// checkParams checks that exactly one typed parameter field is set, the
// one of the step's kind: the ID covers that one only.
func (s *Step) checkParams() error {
	set := map[string]bool{
		KindBootstrap: s.Bootstrap != nil, KindHooks: s.Hooks != nil, KindPhase: s.Phase != nil,
		KindPackages: s.Packages != nil, KindImageSize: s.ImageSize != nil, KindPartition: s.Partition != nil,
		KindBootloader: s.Bootloader != nil, KindOutput: s.Output != nil,
		KindChecksum: s.Checksum != nil, KindManifest: s.Manifest != nil,
	}
	var others []string
	for k, on := range set {
		if on && k != s.Kind {
			others = append(others, k)
		}
	}
	sort.Strings(others)
	if _, known := set[s.Kind]; !known {
		return fmt.Errorf("unknown step kind %q", s.Kind)
	}
	if len(others) > 0 {
		return fmt.Errorf("a %s step carries parameters of another kind (%s)", s.Kind, strings.Join(others, ", "))
	}
	if !set[s.Kind] {
		return fmt.Errorf("a %s step without its parameters", s.Kind)
	}
	return nil
}
