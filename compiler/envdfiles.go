package compiler

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"path"
	"path/filepath"
	"strings"

	"github.com/dibuild/dib/compiler/element"
	"github.com/dibuild/dib/compiler/envd"
	"github.com/dibuild/dib/compiler/plan"
	"github.com/dibuild/dib/spec/diag"
)

// sourceEnvironment sources the build's environment.d files as DIB's
// dib-run-parts does before the phases after root.d (the full list, with
// disk-image-create's 11-dib-install-type.bash), starting from the
// variables collected so far, and records what the files export: every
// variable a file set or changed gets the file as its origin, and the value
// it replaced (if any) as Overrides. A file that fails to source is an error
// naming the element, the file and the line.
func sourceEnvironment(res *element.Result, b *envBuilder) diag.Diagnostics {
	if len(res.EnvironmentD) == 0 {
		return nil
	}
	var in envd.Input
	for _, name := range b.names() {
		v := b.vars[name]
		val := v.Value
		if v.Secret {
			s, ok := b.secrets[name]
			if !ok {
				continue // a missing secret: unset while sourcing
			}
			val = s
		}
		in.Env = append(in.Env, envd.Var{Name: name, Value: val})
	}
	for _, e := range res.EnvironmentD {
		in.Files = append(in.Files, envd.File{Path: "environment.d/" + e.File, Element: e.Element})
	}
	files := append([]element.File(nil), res.Files...)
	if res.InstallTypeEnv.Path != "" {
		files = append(files, res.InstallTypeEnv)
	}
	for _, f := range files {
		top, _, _ := strings.Cut(f.Path, "/")
		if top != "environment.d" && top != "bin" {
			continue // what environment.d files may reach: themselves, bin/
		}
		in.Tree = append(in.Tree, envd.TreeEntry{Path: f.Path, Mode: f.Mode, Link: f.LinkTarget, Content: f.Content})
	}

	vars, ds := evaluate(res, in)
	if ds != nil {
		return ds
	}
	// The runtime exports the release the plan decided (DIB_RELEASE) to
	// every phase. When a file decided it, the files run again with it,
	// so what they derive from it (the security suite, …) is what the
	// phases will see; the origins stay those of the first run.
	if rel, ok := find(vars, "DIB_RELEASE"); ok && rel.File >= 0 {
		in2 := in
		in2.Env = append(append([]envd.Var(nil), in.Env...), envd.Var{Name: "DIB_RELEASE", Value: rel.Value})
		again, ds := evaluate(res, in2)
		if ds != nil {
			return ds
		}
		for i, v := range again {
			if first, ok := find(vars, v.Name); ok && first.File >= 0 {
				again[i].File = first.File
			}
		}
		vars = again
		in = in2
	}
	derived, known := identityDerived(in, vars)
	b.identity, b.identityKnown = derived, known

	var secretValues []string
	for _, s := range b.secrets {
		if s != "" {
			secretValues = append(secretValues, s)
		}
	}
	seen := map[string]bool{}
	for _, v := range vars {
		seen[v.Name] = true
		if v.File < 0 {
			continue // as given
		}
		f := in.Files[v.File]
		nv := plan.EnvVar{Name: v.Name, Value: v.Value,
			Origin: plan.Origin{Kind: plan.OriginEnvironmentD, Element: f.Element, File: f.Path}}
		if old, ok := b.vars[v.Name]; ok {
			if old.Derived() {
				old.Overrides = nil
			}
			nv.Overrides = &old
			nv.Secret = old.Secret
		}
		if nv.Secret || isSecretName(v.Name) || containsAny(v.Value, secretValues) {
			nv.Secret, nv.Value = true, plan.Redacted
		}
		b.vars[v.Name] = nv
	}
	for _, name := range b.names() {
		if !seen[name] {
			if v := b.vars[name]; v.Secret && v.Missing {
				continue // not given to the files, so not unset by them
			}
			delete(b.vars, name) // an environment.d file unset it
		}
	}
	return nil
}

func evaluate(res *element.Result, in envd.Input) ([]envd.Var, diag.Diagnostics) {
	vars, err := envd.Evaluate(context.Background(), in)
	var fail *envd.Failure
	if errors.As(err, &fail) {
		return nil, diag.Diagnostics{failureDiag(res, in.Files, fail)}
	}
	if err != nil {
		return nil, diag.Diagnostics{diag.Errorf("environment.d: %v", err)}
	}
	return vars, nil
}

func find(vars []envd.Var, name string) (envd.Var, bool) {
	for _, v := range vars {
		if v.Name == name {
			return v, true
		}
	}
	return envd.Var{}, false
}

// failureDiag turns a file that did not source into a diagnostic at the
// file's line, in its element's directory.
func failureDiag(res *element.Result, files []envd.File, f *envd.Failure) diag.Diagnostic {
	if f.File < 0 || f.File >= len(files) {
		d := diag.Errorf("environment.d files could not be sourced: %s", f.Message)
		if len(f.Stderr) > 0 {
			d.Message += "\n  " + strings.Join(f.Stderr, "\n  ")
		}
		return d
	}
	file := files[f.File]
	d := diag.Errorf("%s of element %s does not source: %s", file.Path, file.Element, f.Message).
		WithSubject("element " + file.Element)
	d.File, d.Line = elementFile(res, file.Element, file.Path), f.Line
	return d.WithHint("DIB sources it with bash under set -eu -o pipefail before every phase; dib does so when planning, with the build's variables and no network")
}

// elementFile returns where an element's file is on disk (or in dib's
// built-in elements), for diagnostics.
func elementFile(res *element.Result, name, rel string) string {
	for _, e := range res.Elements {
		if e.Name != name {
			continue
		}
		dir := e.Dir
		if dir == "" {
			dir = e.Name
		}
		if e.Source == element.BuiltinName {
			return fmt.Sprintf("%s:%s", element.BuiltinName, path.Join(dir, rel))
		}
		return filepath.Join(e.Source, dir, filepath.FromSlash(rel))
	}
	return rel
}

func containsAny(s string, subs []string) bool {
	for _, sub := range subs {
		if strings.Contains(s, sub) {
			return true
		}
	}
	return false
}

// identityProbe is appended to the identity variables' values to find what
// the environment.d files derive from them.
const identityProbe = "-dib-identity-probe"

// identityDerived returns the variables the environment.d files derive
// from the identity variables (plan.IdentityVariables): when a file
// mentions one, the files run again with every identity variable's value
// changed, and each variable whose value (or presence) changes is derived
// (DIB's manifests element makes DIB_MANIFEST_SAVE_DIR of IMAGE_NAME).
// known is false when that run fails: what the files make of the
// identity variables is then unknown.
func identityDerived(in envd.Input, vars []envd.Var) (derived map[string]bool, known bool) {
	given := map[string]bool{}
	for _, name := range plan.IdentityVariables() {
		if _, ok := find(in.Env, name); ok {
			given[name] = true
		}
	}
	if !mentionsAny(in.Tree, given) {
		return nil, true
	}
	probe := in
	probe.Env = make([]envd.Var, len(in.Env))
	for i, v := range in.Env {
		if given[v.Name] {
			v.Value += identityProbe
		}
		probe.Env[i] = v
	}
	again, err := envd.Evaluate(context.Background(), probe)
	if err != nil {
		return nil, false
	}
	derived = map[string]bool{}
	for _, pair := range [][2][]envd.Var{{vars, again}, {again, vars}} {
		for _, v := range pair[0] {
			if w, ok := find(pair[1], v.Name); (!ok || w.Value != v.Value) && !given[v.Name] {
				derived[v.Name] = true
			}
		}
	}
	return derived, true
}

// mentionsAny reports whether a file of the tree contains one of names.
func mentionsAny(tree []envd.TreeEntry, names map[string]bool) bool {
	for _, e := range tree {
		for name := range names {
			if bytes.Contains(e.Content, []byte(name)) {
				return true
			}
		}
	}
	return false
}
