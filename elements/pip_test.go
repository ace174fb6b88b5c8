package elements

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// pip-and-virtualenv's source install in a chroot, against a local index
// (PIP_NO_INDEX, PIP_FIND_LINKS): Debian's own pip and setuptools wheels,
// a stand-in virtualenv wheel built in the chroot, and a stand-in
// get-pip.py that installs pip from the same index. apt-get is a stand-in
// that logs. Then the exported commands and the cache clean-up.
func TestPipAndVirtualenvInChroot(t *testing.T) {
	t.Parallel()
	if _, err := os.Stat("/usr/share/python-wheels"); err != nil {
		if os.Getenv("DIB_REQUIRE_INTEGRATION") == "1" {
			t.Fatal("/usr/share/python-wheels missing (python3-pip-whl, pulled in by python3-venv)")
		}
		t.Skip("no /usr/share/python-wheels")
	}
	hooks := hooksTree(t, "pip-and-virtualenv")
	writeFile(t, filepath.Join(hooks, "bin", "apt-get"), "#!/bin/sh\necho \"apt-get $*\" >> /var/log/pav-apt\n", 0o755)
	writeFile(t, filepath.Join(hooks, "standin", "virtualenv", "setup.py"),
		"from setuptools import setup\nsetup(name='virtualenv', version='99.0', py_modules=['virtualenv'])\n", 0o644)
	writeFile(t, filepath.Join(hooks, "standin", "virtualenv", "virtualenv.py"), "VERSION = '99.0'\n", 0o644)
	writeFile(t, filepath.Join(hooks, "standin", "get-pip.py"), `import subprocess, sys
with open('/var/log/get-pip', 'w') as f:
    f.write(' '.join(sys.argv[1:]) + '\n')
subprocess.check_call([sys.executable, '-m', 'pip', 'install', '-q'] + sys.argv[1:] + ['pip'])
`, 0o644)
	steps := `
h=/tmp/in_target.d
mkdir -p /tmp/wheels
cp /usr/share/python-wheels/*.whl /tmp/wheels/
cp -r $h/standin/virtualenv /tmp/venv-src
python3 -m pip wheel -q --no-deps --no-build-isolation -w /tmp/wheels /tmp/venv-src
if $h/install.d/pip-and-virtualenv-source-install/04-install-pip 2>/var/log/pav-nogetpip; then exit 9; fi
cp $h/standin/get-pip.py /tmp/get-pip.py
PIP_NO_INDEX=1 PIP_FIND_LINKS=/tmp/wheels DISTRO_NAME=debian $h/install.d/pip-and-virtualenv-source-install/04-install-pip
ls /usr/local/lib/python3*/dist-packages | grep dist-info > /var/log/pav-local

mkdir -p /usr/local/bin
ln -sf /usr/bin/python3 /usr/local/bin/dib-python
( DISTRO_NAME=debian DIB_PYTHON_VERSION=3; . $h/environment.d/51-pip-and-virutalenv-default.bash; echo "$DIB_PYTHON_PIP|$DIB_PYTHON_VIRTUALENV" > /var/log/pav-env )
mkdir -p /root/.cache/pip/http
HOME=/root DIB_DISABLE_PIP_CLEANUP=1 $h/post-install.d/89-clean-up-pip-cache
[ -d /root/.cache/pip ] || exit 8
HOME=/root $h/post-install.d/89-clean-up-pip-cache
[ ! -e /root/.cache/pip ] || exit 7
`
	up, out := overlayChroot(t, hooks, steps)
	read := func(p string) string { return readUp(t, up, out, p) }
	if got := read("var/log/pav-nogetpip"); !strings.Contains(got, "/tmp/get-pip.py is missing") {
		t.Errorf("without get-pip.py: %q", got)
	}
	if got := read("var/log/pav-apt"); got != "apt-get -y install python3-pip python3-virtualenv\n" {
		t.Errorf("apt-get calls %q", got)
	}
	if got := read("var/log/get-pip"); got != "-U --force-reinstall --break-system-packages\n" {
		t.Errorf("get-pip.py arguments %q", got)
	}
	local := read("var/log/pav-local")
	for _, w := range []string{"pip-23", "setuptools-", "virtualenv-99.0.dist-info"} {
		if !strings.Contains(local, w) {
			t.Errorf("/usr/local lacks %s:\n%s", w, local)
		}
	}
	if got := read("var/log/pav-env"); !strings.HasPrefix(got, "/usr/bin/python3") || !strings.Contains(got, " -m pip|/usr/bin/python3") ||
		!strings.HasSuffix(got, " -m venv\n") {
		t.Errorf("exported commands %q, want the resolved interpreter with -m pip and -m venv", got)
	}
}
