package element

import (
	"strings"
	"testing"
	"testing/fstest"

	"github.com/dibuild/dib/spec/diag"
)

// installTypesFS has the shape of DIB's nova example: nova/install.d holds
// nova-package-install/74-nova and nova-source-install/74-nova.
func installTypesFS() fstest.MapFS {
	return with(osFS(), fstest.MapFS{
		"install-types/extra-data.d/99-enable-install-types": exe(""),
		"nova/element-deps":                                      file("install-types\n"),
		"nova/install.d/10-nova-common":                          exe(""),
		"nova/install.d/nova-source-install/74-nova":             exe("source"),
		"nova/install.d/nova-package-install/74-nova":            exe("package"),
		"nova/install.d/nova-package-install/75-nova-extra":      exe("package"),
		"simple-init/element-deps":                               file("install-types\n"),
		"simple-init/install.d/simple-init-repo-install/50-si":   exe("repo"),
		"simple-init/install.d/simple-init-source-install/50-si": exe("source"),
		"plain/install.d/nova-source-install/74-nova":            exe("source"), // no install-types element
	})
}

func TestInstallTypes(t *testing.T) {
	tests := []struct {
		name     string
		elements []string
		def      string
		types    map[string]string
		run      string // Run names, and the install dir of each link
		warning  string
	}{
		{name: "default is source", elements: []string{"os", "nova", "simple-init"},
			run: "10-nova-common 50-si=simple-init-source-install 74-nova=nova-source-install"},
		{name: "default package", elements: []string{"os", "nova"}, def: "package",
			run: "10-nova-common 74-nova=nova-package-install 75-nova-extra=nova-package-install"},
		{name: "per-prefix override", elements: []string{"os", "nova", "simple-init"}, types: map[string]string{"nova": "package", "simple_init": "repo"},
			run: "10-nova-common 50-si=simple-init-repo-install 74-nova=nova-package-install 75-nova-extra=nova-package-install"},
		{name: "override without a directory", elements: []string{"os", "nova"}, types: map[string]string{"nova": "pip"},
			run: "10-nova-common", warning: "no element has install.d/nova-pip-install"},
		{name: "without the install-types element nothing is linked", elements: []string{"os", "plain"},
			run: ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res, ds := Resolve(Options{Path: []Source{{"test", installTypesFS()}}, Elements: tt.elements, SkipBase: true,
				DefaultInstallType: tt.def, InstallTypes: tt.types})
			if ds.HasErrors() {
				t.Fatal(ds)
			}
			p := phase(t, res, "install.d")
			// Before install types, the *-install directories are skipped.
			for _, s := range p.Scripts {
				if strings.Contains(s.Name, "install") {
					t.Errorf("script %s before install types", s.Name)
				}
			}
			var got []string
			for _, s := range p.Run {
				x := s.Name
				if s.LinkedBy != "" {
					x += "=" + strings.Split(s.Target, "/")[1]
					if s.LinkedBy != "install-types" || s.Element == "" {
						t.Errorf("link %+v", s)
					}
				}
				got = append(got, x)
			}
			if g := strings.Join(got, " "); g != tt.run {
				t.Errorf("run %q, want %q", g, tt.run)
			}
			w := strings.Join(messages(ds, diag.Warning), "\n")
			if tt.warning == "" && w != "" || !strings.Contains(w, tt.warning) {
				t.Errorf("warnings %q, want %q", w, tt.warning)
			}
			env := string(res.InstallTypeEnv.Content)
			def := tt.def
			if def == "" {
				def = "source"
			}
			if !strings.Contains(env, `DIB_DEFAULT_INSTALLTYPE:-"`+def+`"`) || res.InstallTypeEnv.Path != "environment.d/11-dib-install-type.bash" {
				t.Errorf("install type env %+v", res.InstallTypeEnv)
			}
		})
	}
}

func TestInstallTypesReplaceWarns(t *testing.T) {
	m := with(installTypesFS(), fstest.MapFS{"nova/install.d/74-nova": exe("plain")})
	res, ds := Resolve(Options{Path: []Source{{"test", m}}, Elements: []string{"os", "nova"}, SkipBase: true})
	if w := messages(ds, diag.Warning); len(w) != 1 || !strings.Contains(w[0], "replaces install.d/74-nova") {
		t.Errorf("warnings %q", w)
	}
	p := phase(t, res, "install.d")
	if names(p.Scripts) != "10-nova-common 74-nova" || p.Run[1].Target != "install.d/nova-source-install/74-nova" {
		t.Errorf("scripts %q run %+v", names(p.Scripts), p.Run)
	}
}
