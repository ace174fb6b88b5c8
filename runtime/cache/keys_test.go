package cache

import (
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/dibuild/dib/compiler/plan"
)

func sum(s string) string {
	h := sha256.Sum256([]byte(s))
	return hex.EncodeToString(h[:])
}

// keyPlan is a small plan with one of each kind of input: a bootstrap
// from a mirror, a hook tree with two phase scripts and a static file, a
// phase seeing a variable and a secret, packages, a phase running a host
// tool, an output and its checksum.
func keyPlan(mod func(p *plan.Plan)) *plan.Plan {
	blobs := map[string][]byte{}
	file := func(path, content string, mode uint32) plan.File {
		blobs[sum(content)] = []byte(content)
		return plan.File{Path: path, Mode: mode, SHA256: sum(content), Size: int64(len(content))}
	}
	p := &plan.Plan{Image: plan.Image{Name: "img"},
		Env:   []plan.EnvVar{{Name: "VAR", Value: "v1"}, {Name: "PW", Value: plan.Redacted, Secret: true}, {Name: "IMAGE_TYPES", Value: "tar", Identity: true}},
		Blobs: map[string][]byte{},
		Files: []plan.File{
			file("install.d/10-a", "#!/bin/sh\necho a\n", 0o755),
			file("finalise.d/10-b", "#!/bin/sh\necho b\n", 0o755),
			file("static/etc/motd", "hello\n", 0o644),
		},
		HostTools: []plan.HostTool{{Program: "mmdebstrap", Package: "mmdebstrap"}, {Program: "grub-mkimage", Package: "grub-common"}, {Program: "tar", Package: "tar"}},
	}
	p.Blobs = blobs
	out := plan.Output{Format: "tar", Path: "img.tar"}
	p.Steps = []plan.Step{
		{ID: "boot", Kind: plan.KindBootstrap, Title: "bootstrap", Tools: []string{"mmdebstrap"}, Snapshot: true, Mirror: true,
			Bootstrap: &plan.Bootstrap{Provider: "mmdebstrap", Suite: "bookworm", Mirror: "http://deb.debian.org/debian", Available: true}},
		{ID: "hooks", Kind: plan.KindHooks, Title: "write hook tree", Deps: []string{"boot"}, Hooks: &plan.Hooks{Files: 3}},
		{ID: "install", Kind: plan.KindPhase, Title: "phase install.d", Deps: []string{"hooks"}, Env: []string{"IMAGE_TYPES", "PW", "VAR"},
			Phase: &plan.Phase{Name: "install.d", Where: plan.Chroot, Scripts: []plan.Script{{Name: "10-a", Path: "install.d/10-a", SHA256: sum("#!/bin/sh\necho a\n")}}}},
		{ID: "pkgs", Kind: plan.KindPackages, Title: "install packages", Deps: []string{"install"}, Packages: &plan.Packages{Names: []string{"curl"}}},
		{ID: "final", Kind: plan.KindPhase, Title: "phase finalise.d", Deps: []string{"pkgs"}, Tools: []string{"grub-mkimage"}, Env: []string{"VAR"}, Snapshot: true,
			Phase: &plan.Phase{Name: "finalise.d", Where: plan.Chroot, Scripts: []plan.Script{{Name: "10-b", Path: "finalise.d/10-b", SHA256: sum("#!/bin/sh\necho b\n")}}}},
		{ID: "out", Kind: plan.KindOutput, Title: "output tar", Deps: []string{"final"}, Tools: []string{"tar"}, Output: &out},
		{ID: "sum", Kind: plan.KindChecksum, Title: "checksum", Deps: []string{"out"}, Checksum: &plan.Checksum{Path: "img.tar", Algorithms: []string{"sha256"}}},
	}
	if mod != nil {
		mod(p)
	}
	if err := seal(p); err != nil {
		panic(err)
	}
	return p
}

// setFile gives the hook-tree file at path (added when absent) the
// content, and every phase script of that path its digest.
func setFile(p *plan.Plan, path, content string) {
	p.Blobs[sum(content)] = []byte(content)
	for i := range p.Steps {
		if ph := p.Steps[i].Phase; ph != nil {
			for j := range ph.Scripts {
				if ph.Scripts[j].Path == path {
					ph.Scripts[j].SHA256 = sum(content)
				}
			}
		}
	}
	for i := range p.Files {
		if p.Files[i].Path == path {
			p.Files[i].SHA256 = sum(content)
			return
		}
	}
	p.Files = append(p.Files, plan.File{Path: path, Mode: 0o755, SHA256: sum(content), Size: int64(len(content))})
	p.Steps[1].Hooks.Files = len(p.Files)
}

func seal(p *plan.Plan) error { return p.Seal() }

// TestKeysInvalidateExactly changes one input of the plan, the host or the
// build at a time and checks which steps' cache keys change: the step that
// consumes it and every state step after it; outputs only through the
// final state or the output they read.
func TestKeysInvalidateExactly(t *testing.T) {
	c, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	host := map[string]string{"mmdebstrap": "1.3.5-7", "grub-common": "2.06-13", "tar": "1.34"}
	secrets := map[string]string{"PW": "hunter2"}
	base := c.Keys(keyPlan(nil), "dib-1", host, secrets)
	all := []int{0, 1, 2, 3, 4, 5, 6}
	for _, tc := range []struct {
		name    string
		plan    func(*plan.Plan)
		dib     string
		host    map[string]string
		secrets map[string]string
		changed []int
	}{
		{name: "nothing", changed: nil},
		{name: "title and snapshot points (cosmetic)", plan: func(p *plan.Plan) { p.Steps[2].Title = "x"; p.Steps[2].Snapshot = true }, changed: nil},
		{name: "bootstrap mirror", plan: func(p *plan.Plan) { p.Steps[0].Bootstrap.Mirror = "http://other/debian" }, changed: all},
		{name: "install.d script", plan: func(p *plan.Plan) { setFile(p, "install.d/10-a", "#!/bin/sh\necho A\n") }, changed: []int{2, 3, 4, 5, 6}},
		{name: "finalise.d script", plan: func(p *plan.Plan) { setFile(p, "finalise.d/10-b", "#!/bin/sh\necho B\n") }, changed: []int{4, 5, 6}},
		{name: "static file of the hook tree", plan: func(p *plan.Plan) { p.Files[2].SHA256 = sum("bye\n") }, changed: []int{1, 2, 3, 4, 5, 6}},
		{name: "variable", plan: func(p *plan.Plan) { p.Env[0].Value = "v2" }, changed: []int{2, 3, 4, 5, 6}},
		{name: "secret value", secrets: map[string]string{"PW": "other"}, changed: []int{2, 3, 4, 5, 6}},
		{name: "secret missing", secrets: map[string]string{}, changed: []int{2, 3, 4, 5, 6}},
		{name: "packages", plan: func(p *plan.Plan) { p.Steps[3].Packages.Names = []string{"curl", "less"} }, changed: []int{3, 4, 5, 6}},
		{name: "host tool of finalise.d", host: map[string]string{"mmdebstrap": "1.3.5-7", "grub-common": "2.12-1", "tar": "1.34"}, changed: []int{4, 5, 6}},
		{name: "host tool of the output", host: map[string]string{"mmdebstrap": "1.3.5-7", "grub-common": "2.06-13", "tar": "1.35"}, changed: []int{5, 6}},
		{name: "host tool of the bootstrap", host: map[string]string{"mmdebstrap": "1.4.0-1", "grub-common": "2.06-13", "tar": "1.34"}, changed: all},
		{name: "dib itself", dib: "dib-2", changed: all},
		{name: "output option", plan: func(p *plan.Plan) { p.Steps[5].Output.SourceDateEpoch = 1 }, changed: []int{5, 6}},
		{name: "IMAGE_TYPES, read by no hook", plan: func(p *plan.Plan) { p.Env[2].Value = "tar tgz" }, changed: nil},
		{name: "checksum algorithms", plan: func(p *plan.Plan) { p.Steps[6].Checksum.Algorithms = []string{"md5"} }, changed: []int{6}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dib, h, s := "dib-1", host, secrets
			if tc.dib != "" {
				dib = tc.dib
			}
			if tc.host != nil {
				h = tc.host
			}
			if tc.secrets != nil {
				s = tc.secrets
			}
			got := c.Keys(keyPlan(tc.plan), dib, h, s)
			var changed []int
			for i := range got {
				if got[i].Key != base[i].Key {
					changed = append(changed, i)
				}
			}
			if !reflect.DeepEqual(changed, tc.changed) {
				t.Errorf("changed keys %v, want %v", changed, tc.changed)
			}
		})
	}
}

// TestSecretNotInKeys: a cache key input never holds a secret or a digest
// one could test a guess against without the cache's own key.
func TestSecretNotInKeys(t *testing.T) {
	c1, _ := Open(t.TempDir())
	c2, _ := Open(t.TempDir())
	k1 := c1.Keys(keyPlan(nil), "d", nil, map[string]string{"PW": "hunter2"})
	k2 := c2.Keys(keyPlan(nil), "d", nil, map[string]string{"PW": "hunter2"})
	for i := range k1 {
		for _, l := range k1[i].Inputs {
			if strings.Contains(l, "hunter2") || strings.Contains(l, sum("hunter2")) {
				t.Errorf("step %d input %q shows the secret", i, l)
			}
		}
	}
	// Two caches key the same secret differently: the digest is theirs.
	if k1[2].Key == k2[2].Key {
		t.Error("the same secret gives the same key in two caches")
	}
	if k1[1].Key != k2[1].Key {
		t.Error("a step without secrets keys differently in two caches")
	}
	for name, want := range map[string]os.FileMode{c1.Dir: 0o700 | os.ModeDir, filepath.Join(c1.Dir, "hmac.key"): 0o600} {
		if fi, err := os.Stat(name); err != nil || fi.Mode() != want {
			t.Errorf("%s: mode %v, want %v (%v)", name, fi.Mode(), want, err)
		}
	}
}

// TestImageTypesReadByAHook: once a hook names IMAGE_TYPES, its value is an
// input of every step that sees it.
func TestImageTypesReadByAHook(t *testing.T) {
	c, _ := Open(t.TempDir())
	reads := func(types string) func(p *plan.Plan) {
		return func(p *plan.Plan) {
			setFile(p, "install.d/10-a", "#!/bin/sh\necho $IMAGE_TYPES\n")
			p.Env[2].Value = types
		}
	}
	a := c.Keys(keyPlan(reads("tar")), "d", nil, nil)
	b := c.Keys(keyPlan(reads("tar tgz")), "d", nil, nil)
	var changed []int
	for i := range a {
		if a[i].Key != b[i].Key {
			changed = append(changed, i)
		}
	}
	if !reflect.DeepEqual(changed, []int{2, 3, 4, 5, 6}) {
		t.Errorf("changed %v", changed)
	}
}

// TestIdentityVariablesKeyOnlyWhereRead: a phase keys on an identity
// variable (IMAGE_NAME here) only when a file it may run names it: its own
// scripts, the tree's other files, the $_LIB helpers those name; not
// another phase's scripts, not the environment.d files (the compiler
// marked what they derive). Any other step keys on it when anything names
// it. A variable not marked is always an input.
func TestIdentityVariablesKeyOnlyWhereRead(t *testing.T) {
	c, _ := Open(t.TempDir())
	const install, pkgs = 2, 3
	named := func(name string, marked bool, mod func(p *plan.Plan)) func(p *plan.Plan) {
		return func(p *plan.Plan) {
			p.Env = append(p.Env, plan.EnvVar{Name: "IMAGE_NAME", Value: name, Identity: marked})
			for _, i := range []int{install, pkgs, 4} {
				p.Steps[i].Env = append(p.Steps[i].Env, "IMAGE_NAME")
			}
			if mod != nil {
				mod(p)
			}
		}
	}
	for _, tc := range []struct {
		name            string
		unmarked        bool
		mod             func(p *plan.Plan)
		installDiffers  bool
		packagesDiffers bool
	}{
		{name: "named by nothing the phase runs", packagesDiffers: true},
		{name: "named by the phase's script", mod: func(p *plan.Plan) { setFile(p, "install.d/10-a", "#!/bin/sh\necho $IMAGE_NAME\n") }, installDiffers: true, packagesDiffers: true},
		{name: "named by another phase's script", mod: func(p *plan.Plan) { setFile(p, "finalise.d/10-b", "#!/bin/sh\necho $IMAGE_NAME\n") }, packagesDiffers: true},
		{name: "named by a helper of the tree", mod: func(p *plan.Plan) { setFile(p, "bin/helper", "#!/bin/sh\necho ${IMAGE_NAME}\n") }, installDiffers: true, packagesDiffers: true},
		{name: "named by a $_LIB helper the script sources", mod: func(p *plan.Plan) {
			setFile(p, "install.d/10-a", "#!/bin/bash\nsource $_LIB/img-functions\n")
		}, installDiffers: true, packagesDiffers: true},
		{name: "named by an environment.d file", mod: func(p *plan.Plan) { setFile(p, "environment.d/10-x", "export X=${IMAGE_NAME}.d\n") }, packagesDiffers: true},
		{name: "not an identity variable", unmarked: true, installDiffers: true, packagesDiffers: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := c.Keys(keyPlan(named("web", !tc.unmarked, tc.mod)), "d", nil, nil)
			b := c.Keys(keyPlan(named("db", !tc.unmarked, tc.mod)), "d", nil, nil)
			if got := a[install].Key != b[install].Key; got != tc.installDiffers {
				t.Errorf("install.d keys differ: %v, want %v", got, tc.installDiffers)
			}
			if got := a[pkgs].Key != b[pkgs].Key; got != tc.packagesDiffers {
				t.Errorf("packages keys differ: %v, want %v", got, tc.packagesDiffers)
			}
			if a[1].Key != b[1].Key {
				t.Error("the hook tree keys on the image name")
			}
		})
	}
}
