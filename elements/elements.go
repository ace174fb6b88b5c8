// Package elements holds dib's built-in elements in diskimage-builder's
// on-disk format (element-deps, element-provides, package-installs.yaml,
// pkg-map, environment.d/, <phase>.d/ hooks, bin/, static/, init-scripts/…),
// embedded in the binary.
//
// go:embed does not keep file modes, yet DIB runs only the executable files
// of a phase directory and the runtime must write bin/ helpers and static/
// files with their execute bit. The modes therefore travel in
// executables.txt (one slash-separated path per line, relative to the root
// of FS), which `go test ./elements -update` regenerates from the checkout
// and which a test compares with the files' real modes.
package elements

import (
	"embed"
	"io/fs"
	"sort"
	"strings"
	"time"
)

// The element directories. A test checks that every directory beside this
// file (except testdata) is listed here, so a new element cannot be forgotten.
//
//go:embed all:base all:baremetal all:block-device-efi all:block-device-efi-4k
//go:embed all:block-device-efi-lvm all:block-device-gpt all:block-device-mbr
//go:embed all:bootloader all:cache-url all:centos-minimal all:cloud-init all:cloud-init-datasources
//go:embed all:debian-minimal all:debootstrap all:deploy-tgtadm all:devuser all:dhcp-all-interfaces
//go:embed all:dib-init-system all:dib-python all:dib-run-parts all:dpkg all:dracut-regenerate
//go:embed all:enable-serial-console all:epel all:fedora-minimal all:growroot all:iscsi-boot all:install-bin all:install-static
//go:embed all:install-types all:local-config all:manifests all:modprobe
//go:embed all:no-final-image all:openssh-server all:package-installs all:pkg-map all:ramdisk
//go:embed all:ramdisk-base all:redhat-common all:rpm-distro all:select-boot-kernel-initrd
//go:embed all:selinux-fixfiles-restore all:yum all:yum-minimal all:iso all:dracut-ramdisk all:dracut-network
//go:embed all:runtime-ssh-host-keys all:source-repositories all:stable-interface-names
//go:embed all:svc-map all:sysprep all:ubuntu-common all:ubuntu-minimal all:vm
//go:embed all:apt-conf all:apt-preferences all:apt-sources all:cloud-init-disable-resizefs
//go:embed all:cloud-init-growpart all:cloud-init-nocloud all:disable-selinux all:element-manifest
//go:embed all:ensure-venv all:journal-to-console all:pip-cache all:selinux-permissive all:sysctl
//go:embed all:debian all:debian-systemd all:disable-nouveau all:dkms all:dynamic-login all:grub2
//go:embed all:modprobe-blacklist all:posix all:autoupdates all:fail2ban all:ibft-interfaces
//go:embed all:cleanup-kernel-initrd all:simple-init all:openstack-ci-mirrors all:pypi
//go:embed all:docker all:containerfile all:ubuntu all:lvm all:growvols all:pip-and-virtualenv
//go:embed all:mellanox all:nm-dhcp-ib-interfaces all:ubuntu-signed
var tree embed.FS

//go:embed executables.txt
var executables string

// Mode bits reported by FS.
const (
	ExecMode = fs.FileMode(0o755)
	FileMode = fs.FileMode(0o644)
	DirMode  = fs.ModeDir | 0o755
)

// FS returns the built-in elements: its root holds one directory per
// element. Stat, ReadDir and the files' Stat report ExecMode for the files
// listed in executables.txt, FileMode for the other files and DirMode for
// directories, so callers can apply DIB's "only executable files run" rule
// exactly as on a real element tree.
func FS() fs.FS {
	return modeFS{tree: tree, exec: parseExecutables(executables)}
}

// Names returns the names of the built-in elements, sorted.
func Names() []string {
	entries, err := tree.ReadDir(".")
	if err != nil {
		return nil
	}
	var names []string
	for _, e := range entries {
		if e.IsDir() {
			names = append(names, e.Name())
		}
	}
	sort.Strings(names)
	return names
}

func parseExecutables(s string) map[string]bool {
	m := map[string]bool{}
	for _, line := range strings.Split(s, "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		m[line] = true
	}
	return m
}

// modeFS wraps the embedded tree and fixes up the modes it reports.
type modeFS struct {
	tree embed.FS
	exec map[string]bool
}

var (
	_ fs.ReadDirFS  = modeFS{}
	_ fs.ReadFileFS = modeFS{}
	_ fs.StatFS     = modeFS{}
)

func (m modeFS) mode(name string, isDir bool) fs.FileMode {
	switch {
	case isDir:
		return DirMode
	case m.exec[name]:
		return ExecMode
	default:
		return FileMode
	}
}

func (m modeFS) Open(name string) (fs.File, error) {
	f, err := m.tree.Open(name)
	if err != nil {
		return nil, err
	}
	return &modeFile{File: f, fsys: m, name: name}, nil
}

func (m modeFS) ReadFile(name string) ([]byte, error) { return m.tree.ReadFile(name) }

func (m modeFS) Stat(name string) (fs.FileInfo, error) {
	f, err := m.tree.Open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	return modeInfo{FileInfo: fi, mode: m.mode(name, fi.IsDir())}, nil
}

func (m modeFS) ReadDir(name string) ([]fs.DirEntry, error) {
	entries, err := m.tree.ReadDir(name)
	if err != nil {
		return nil, err
	}
	return m.wrapEntries(name, entries), nil
}

func (m modeFS) wrapEntries(dir string, entries []fs.DirEntry) []fs.DirEntry {
	out := make([]fs.DirEntry, len(entries))
	for i, e := range entries {
		p := e.Name()
		if dir != "." {
			p = dir + "/" + p
		}
		out[i] = modeEntry{DirEntry: e, mode: m.mode(p, e.IsDir())}
	}
	return out
}

// modeFile is an open file or directory of modeFS.
type modeFile struct {
	fs.File
	fsys modeFS
	name string
}

func (f *modeFile) Stat() (fs.FileInfo, error) {
	fi, err := f.File.Stat()
	if err != nil {
		return nil, err
	}
	return modeInfo{FileInfo: fi, mode: f.fsys.mode(f.name, fi.IsDir())}, nil
}

// ReadDir makes directories opened through Open report fixed modes too
// (fs.WalkDir and fs.ReadDir use it when the FS is wrapped).
func (f *modeFile) ReadDir(n int) ([]fs.DirEntry, error) {
	d, ok := f.File.(fs.ReadDirFile)
	if !ok {
		return nil, &fs.PathError{Op: "readdir", Path: f.name, Err: fs.ErrInvalid}
	}
	entries, err := d.ReadDir(n)
	return f.fsys.wrapEntries(f.name, entries), err
}

// Read and Seek are forwarded so io.ReadSeeker users keep working.
func (f *modeFile) Seek(offset int64, whence int) (int64, error) {
	s, ok := f.File.(interface {
		Seek(int64, int) (int64, error)
	})
	if !ok {
		return 0, &fs.PathError{Op: "seek", Path: f.name, Err: fs.ErrInvalid}
	}
	return s.Seek(offset, whence)
}

type modeInfo struct {
	fs.FileInfo
	mode fs.FileMode
}

func (i modeInfo) Mode() fs.FileMode  { return i.mode }
func (i modeInfo) ModTime() time.Time { return time.Time{} }
func (i modeInfo) Sys() any           { return nil }

type modeEntry struct {
	fs.DirEntry
	mode fs.FileMode
}

func (e modeEntry) Type() fs.FileMode { return e.mode.Type() }

func (e modeEntry) Info() (fs.FileInfo, error) {
	fi, err := e.DirEntry.Info()
	if err != nil {
		return nil, err
	}
	return modeInfo{FileInfo: fi, mode: e.mode}, nil
}
