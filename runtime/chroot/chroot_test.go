package chroot

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/dibuild/dib/runtime/mount"
	"github.com/dibuild/dib/runtime/ns/nstest"
	"github.com/dibuild/dib/runtime/shell"
	"github.com/dibuild/dib/runtime/stack"
)

func TestMain(m *testing.M) { nstest.Main(m) }

// fakeTree makes a tiny root filesystem out of read-only binds of the
// host's /usr/bin and libraries (Debian's merged /usr), enough for sh.
func fakeTree(t *testing.T, st *stack.Stack) string {
	t.Helper()
	root := t.TempDir()
	for _, d := range []string{"usr/bin", "usr/lib", "usr/lib64", "usr/sbin", "etc", "tmp"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for _, d := range []string{"usr/bin", "usr/lib", "usr/lib64"} {
		dst := filepath.Join(root, d)
		if err := mount.Bind("/"+d, dst, false, true); err != nil {
			t.Fatal(err)
		}
		st.Push("test unbind "+d, func(context.Context) error { return mount.UnmountAll(dst) })
	}
	for _, l := range []string{"bin", "lib", "lib64", "sbin"} {
		if err := os.Symlink("usr/"+l, filepath.Join(root, l)); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink("../run/systemd/resolve/stub-resolv.conf", filepath.Join(root, "etc/resolv.conf")); err != nil {
		t.Fatal(err)
	}
	return root
}

func TestPrepareRunTeardown(t *testing.T) {
	nstest.RequireRoot(t)
	var outer stack.Stack
	defer outer.Release(context.Background())
	root := fakeTree(t, &outer)
	hooks := t.TempDir()
	if err := os.WriteFile(filepath.Join(hooks, "marker"), []byte("hooks"), 0o644); err != nil {
		t.Fatal(err)
	}
	hostResolv := filepath.Join(t.TempDir(), "resolv.conf")
	if err := os.WriteFile(hostResolv, []byte("nameserver 192.0.2.53\n"), 0o644); err != nil {
		t.Fatal(err)
	}

	var st stack.Stack
	c := &Chroot{Root: root, HooksPath: hooks, HostResolvConf: hostResolv}
	if err := c.Prepare(&st); err != nil {
		st.Release(context.Background())
		t.Fatal(err)
	}
	var out bytes.Buffer
	r := &shell.Runner{Out: &out}
	script := `
test -r /proc/self/status && echo proc-ok
test -d /sys/kernel && echo sys-ok
test -c /dev/null && echo dev-ok
mountpoint -q /dev/pts 2>/dev/null || grep -q ' /dev/pts ' /proc/self/mountinfo && echo pts-ok
cat /tmp/in_target.d/marker; echo
touch /tmp/in_target.d/x 2>/dev/null || echo hooks-ro
cat /etc/resolv.conf
/usr/sbin/policy-rc.d; echo policy=$?
echo var=$DIB_X
setsid sleep 1000 >/dev/null 2>&1 < /dev/null &
sleep 1 # let the daemon leave our process group before we exit
`
	if _, err := c.Run(context.Background(), r, []string{"DIB_X=y", "PATH=/usr/bin"}, "t", "sh", "-c", script); err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	for _, want := range []string{"proc-ok", "sys-ok", "dev-ok", "pts-ok", "hooks\n", "hooks-ro", "nameserver 192.0.2.53", "policy=101", "var=y"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("missing %q in\n%s", want, out.String())
		}
	}
	// The daemon was started in the background: give it a moment to exist.
	seen := false
	for i := 0; i < 50 && !seen; i++ {
		seen = len(Inside(root)) > 0
		if !seen {
			time.Sleep(100 * time.Millisecond)
		}
	}
	if !seen {
		t.Error("the setsid daemon is not seen inside the chroot")
	}
	if err := st.Release(context.Background()); err != nil {
		t.Fatal(err)
	}
	if pids := Inside(root); len(pids) != 0 {
		t.Errorf("processes left: %v", pids)
	}
	for _, p := range []string{"proc", "sys", "dev", "dev/pts", "tmp/in_target.d"} {
		if pts, _ := mount.Under(filepath.Join(root, p)); slices.Contains(pts, filepath.Join(root, p)) {
			t.Errorf("%s still mounted", p)
		}
	}
	if l, err := os.Readlink(filepath.Join(root, "etc/resolv.conf")); err != nil || l != "../run/systemd/resolve/stub-resolv.conf" {
		t.Errorf("resolv.conf not restored: %q %v", l, err)
	}
	if _, err := os.Lstat(filepath.Join(root, "usr/sbin/policy-rc.d")); err == nil {
		t.Error("policy-rc.d left behind")
	}
	if _, err := os.Lstat(filepath.Join(root, InTarget)); err == nil {
		t.Error("in_target.d left behind")
	}
}

func TestPrepareRefusesEmptyTree(t *testing.T) {
	var st stack.Stack
	c := &Chroot{Root: t.TempDir()}
	if err := c.Prepare(&st); err == nil || !strings.Contains(err.Error(), "no root filesystem") {
		t.Errorf("got %v", err)
	}
	if st.Len() != 0 {
		t.Errorf("stack %v", st.Names())
	}
}

func TestArgv(t *testing.T) {
	c := &Chroot{Root: "/b/built"}
	if got := strings.Join(c.Argv("/tmp/in_target.d/install.d/10-x"), " "); got != "chroot /b/built /tmp/in_target.d/install.d/10-x" {
		t.Error(got)
	}
}
