package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func TestElementsCommand(t *testing.T) {
	user := t.TempDir()
	for p, content := range map[string]string{
		"commented/element-deps":  "debian-minimal\n# a comment\n",
		"mine/element-deps":       "debian-minimal\n",
		"mine/install.d/50-mine":  "#!/bin/sh\n",
		"mine/environment.d/zz-x": "export X=1\n",
	} {
		f := filepath.Join(user, p)
		if err := os.MkdirAll(filepath.Dir(f), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(f, []byte(content), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	tests := []struct {
		name   string
		args   []string
		code   int
		stdout []string // substrings
		stderr []string
		check  func(t *testing.T, out string)
	}{
		{name: "text", args: []string{"elements", "debian-minimal", "vm"}, stdout: []string{
			"Elements requested: base debian-minimal vm block-device-mbr", "operating-system", "builtin:debian-minimal", "install.d (chroot)", "11-dib-install-type.bash"}},
		{name: "user element before the built-in ones", args: []string{"elements", "--elements-path", user, "mine"},
			stdout: []string{"mine", user + "/mine", "50-mine", "zz-x"}},
		{name: "list", args: []string{"elements", "--list", "debian-minimal"}, check: func(t *testing.T, out string) {
			lines := strings.Fields(out)
			if !slices.IsSorted(lines) || !slices.Contains(lines, "debian-minimal") || slices.Contains(lines, "operating-system") {
				t.Errorf("list %q", lines)
			}
		}},
		{name: "dot", args: []string{"elements", "--dot", "debian-minimal", "vm"}, stdout: []string{"digraph elements {", `"vm" -> "bootloader"`}},
		{name: "json", args: []string{"elements", "--json", "debian-minimal"}, check: func(t *testing.T, out string) {
			var v struct {
				Expanded    []string `json:"expanded"`
				Diagnostics []any    `json:"diagnostics"`
				Source      string   `json:"block_device_config_source"`
			}
			if err := json.Unmarshal([]byte(out), &v); err != nil || !slices.Contains(v.Expanded, "dpkg") || v.Diagnostics == nil || v.Source == "" {
				t.Errorf("json %v %+v", err, v)
			}
		}},
		{name: "comment line", args: []string{"elements", "--elements-path", user, "commented"}, code: exitFailed,
			stderr: []string{"element-deps:2: error: Element '# a comment' not found", "hint: element-deps has no comments"}},
		{name: "two operating systems", args: []string{"elements", "debian-minimal", "ubuntu-minimal"}, code: exitFailed,
			stderr: []string{"already provided by ['"}},
		{name: "json error", args: []string{"elements", "--json", "nope"}, code: exitFailed, stdout: []string{`"kind": "MissingElementException"`}},
		{name: "no element", args: []string{"elements"}, code: exitUsage},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, out, errs := runDib(t, tt.args...)
			if code != tt.code {
				t.Fatalf("exit %d, want %d\n%s%s", code, tt.code, out, errs)
			}
			for _, s := range tt.stdout {
				if !strings.Contains(out, s) {
					t.Errorf("stdout lacks %q:\n%s", s, out)
				}
			}
			for _, s := range tt.stderr {
				if !strings.Contains(errs, s) {
					t.Errorf("stderr lacks %q:\n%s", s, errs)
				}
			}
			if tt.check != nil {
				tt.check(t, out)
			}
		})
	}
}
