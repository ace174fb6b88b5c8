package rootfs

import (
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/dibuild/dib/spec/diag"
)

func TestArgv(t *testing.T) {
	tests := []struct {
		name string
		o    Options
		want []string
	}{
		{
			name: "debian bookworm minimal",
			o:    Options{Family: "debian", Suite: "bookworm", Mirror: "http://deb.debian.org/debian", Arch: "amd64", Target: "/b/built"},
			want: []string{"mmdebstrap", "--mode=root", "--format=directory", "--variant=minbase", "--architectures=amd64",
				"--aptopt=DPkg::Options::=--force-unsafe-io", "bookworm", "/b/built", "http://deb.debian.org/debian"},
		},
		{
			name: "ubuntu noble with keyring, components, packages and cache",
			o: Options{Family: "ubuntu", Suite: "noble", Mirror: "http://archive.ubuntu.com/ubuntu", Arch: "amd64",
				Components: []string{"main", "universe"}, Include: []string{"systemd", "linux-image-generic"},
				Keyrings:    []string{"/usr/share/keyrings/ubuntu-archive-keyring.gpg"},
				AptCacheDir: "/root/.cache/image-create/apt/ubuntu-noble-amd64", Target: "/tmp/dib_build.x/built"},
			want: []string{"mmdebstrap", "--mode=root", "--format=directory", "--variant=minbase", "--architectures=amd64",
				"--components=main,universe", "--include=systemd,linux-image-generic",
				"--keyring=/usr/share/keyrings/ubuntu-archive-keyring.gpg",
				"--aptopt=DPkg::Options::=--force-unsafe-io",
				"--skip=download/empty", "--skip=essential/unlink",
				`--setup-hook=mkdir -p "$1"/var/cache/apt/archives && mount -o bind '/root/.cache/image-create/apt/ubuntu-noble-amd64' "$1"/var/cache/apt/archives`,
				`--customize-hook=umount "$1"/var/cache/apt/archives`,
				"noble", "/tmp/dib_build.x/built", "http://archive.ubuntu.com/ubuntu"},
		},
		{
			name: "debian with updates and security sources",
			o: Options{Family: "debian", Suite: "bookworm", Mirror: "http://deb.debian.org/debian", Arch: "amd64", Target: "/b/built",
				Sources: []string{"deb http://deb.debian.org/debian bookworm-updates main", "deb http://deb.debian.org/debian-security bookworm-security main"}},
			want: []string{"mmdebstrap", "--mode=root", "--format=directory", "--variant=minbase", "--architectures=amd64",
				"--aptopt=DPkg::Options::=--force-unsafe-io", "bookworm", "/b/built", "http://deb.debian.org/debian",
				"deb http://deb.debian.org/debian bookworm-updates main", "deb http://deb.debian.org/debian-security bookworm-security main"},
		},
		{
			name: "variant and extra args, no mirror",
			o:    Options{Family: "debian", Suite: "trixie", Variant: "apt", ExtraArgs: []string{"--no-merged-usr"}, Target: "/t"},
			want: []string{"mmdebstrap", "--mode=root", "--format=directory", "--variant=apt",
				"--aptopt=DPkg::Options::=--force-unsafe-io", "--no-merged-usr", "trixie", "/t"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Argv(tt.o)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("Argv =\n%q\nwant\n%q", got, tt.want)
			}
		})
	}
}

func TestUnsupportedFamilies(t *testing.T) {
	for _, fam := range []string{"centos", "fedora", "rhel", "rocky", "alma", "opensuse", "gentoo", "redhat", "suse"} {
		t.Run(fam, func(t *testing.T) {
			_, err := Argv(Options{Family: fam, Suite: "x", Target: "/t"})
			var d diag.Diagnostic
			if !errors.As(err, &d) || d.Severity != diag.Error {
				t.Fatalf("want an error diagnostic, got %#v", err)
			}
			if !strings.Contains(d.Message, "not available yet") || !strings.Contains(d.Message, fam) {
				t.Errorf("message %q", d.Message)
			}
		})
	}
}

func TestArgvNeedsSuiteAndTarget(t *testing.T) {
	if _, err := Argv(Options{Family: "debian", Target: "/t"}); err == nil {
		t.Error("no suite accepted")
	}
	if _, err := Argv(Options{Family: "debian", Suite: "bookworm"}); err == nil {
		t.Error("no target accepted")
	}
}
