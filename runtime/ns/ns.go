// Package ns runs a dib build in a private mount namespace, so that no
// mount made by the build (chroot binds, tmpfs workspace, loop mounts) can
// ever appear on the host, even when dib is killed with SIGKILL: the
// kernel drops the namespace, and every mount in it, with its last process.
//
// Go cannot move a running multi-threaded process into a new mount
// namespace (unshare(2) affects one thread), so dib re-executes itself with
// CLONE_NEWNS. The command does, with Enter:
//
//	parent, code, err := ns.Enter(ctx, ns.Options{})
//	if parent || err != nil {
//		... exit with code (the child ran the command) or err ...
//	}
//	// here: private namespace, / is rprivate; build.
package ns

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	goruntime "runtime"
	"strings"
	"syscall"
)

// EnvMarker is set in the re-executed child to the parent's mount
// namespace identity ("mnt:[4026531841]").
const EnvMarker = "DIB_MOUNT_NS_PARENT"

// Options tune Reexec. Zero values mean: same arguments as this process,
// same environment, dib's own stdio.
type Options struct {
	Args   []string // argv of the child; default os.Args
	Env    []string // extra KEY=VALUE entries added to os.Environ()
	Stdin  io.Reader
	Stdout io.Writer
	Stderr io.Writer
}

// current returns the identity of this process's mount namespace.
func current() (string, error) { return os.Readlink("/proc/self/ns/mnt") }

// InPrivateMountNamespace reports whether this process runs in the private
// mount namespace Reexec created: the marker is set and names a namespace
// other than ours.
func InPrivateMountNamespace() bool {
	parent := os.Getenv(EnvMarker)
	if parent == "" {
		return false
	}
	cur, err := current()
	return err == nil && cur != parent
}

// Reexec runs this executable again (/proc/self/exe) in a new mount
// namespace whose mounts do not propagate to the host, and waits for it.
// SIGINT, SIGTERM and SIGHUP received meanwhile are forwarded to the
// child, which cleans up; if dib itself dies, the child gets SIGTERM. It
// returns the child's exit code. It needs CAP_SYS_ADMIN (root).
func Reexec(ctx context.Context, o Options) (int, error) {
	parent, err := current()
	if err != nil {
		return -1, fmt.Errorf("read mount namespace: %w", err)
	}
	args := o.Args
	if args == nil {
		args = os.Args
	}
	if len(args) == 0 {
		return -1, errors.New("ns: no arguments to re-execute")
	}
	cmd := exec.CommandContext(ctx, "/proc/self/exe", args[1:]...)
	cmd.Args[0] = args[0]
	cmd.Env = append(withoutMarker(os.Environ()), o.Env...)
	cmd.Env = append(cmd.Env, EnvMarker+"="+parent)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = o.Stdin, o.Stdout, o.Stderr
	if cmd.Stdin == nil {
		cmd.Stdin = os.Stdin
	}
	if cmd.Stdout == nil {
		cmd.Stdout = os.Stdout
	}
	if cmd.Stderr == nil {
		cmd.Stderr = os.Stderr
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{
		// Go's fork also remounts / MS_REC|MS_PRIVATE in the child when
		// CLONE_NEWNS is asked for; MakeRootPrivate repeats it explicitly.
		Unshareflags: syscall.CLONE_NEWNS,
		Pdeathsig:    syscall.SIGTERM,
	}
	// The child is cancelled like any build: SIGTERM, so it unmounts.
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }

	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP)
	defer signal.Stop(sigs)

	// Pdeathsig fires when the thread that forked the child exits.
	goruntime.LockOSThread()
	defer goruntime.UnlockOSThread()
	if err := cmd.Start(); err != nil {
		if errors.Is(err, syscall.EPERM) {
			return -1, fmt.Errorf("create a private mount namespace: %w (dib apply needs root)", err)
		}
		return -1, fmt.Errorf("create a private mount namespace: %w", err)
	}
	done := make(chan struct{})
	go func() {
		for {
			select {
			case s := <-sigs:
				_ = cmd.Process.Signal(s)
			case <-done:
				return
			}
		}
	}()
	err = cmd.Wait()
	close(done)
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
				return 128 + int(ws.Signal()), nil
			}
			return ee.ExitCode(), nil
		}
		return -1, err
	}
	return 0, nil
}

// Enter makes what follows run in a private mount namespace. Outside one it
// re-executes this program in a new one (Reexec) and returns parent=true
// with the child's exit code: the child ran the command, the caller only
// exits with code. Inside one (the child) it marks / rprivate
// (MakeRootPrivate) and returns parent=false: the caller goes on.
func Enter(ctx context.Context, o Options) (parent bool, code int, err error) {
	if !InPrivateMountNamespace() {
		code, err := Reexec(ctx, o)
		return true, code, err
	}
	return false, 0, MakeRootPrivate()
}

// MakeRootPrivate marks every mount of this namespace private, recursively
// (mount --make-rprivate /), so nothing mounted afterwards propagates to
// the host's peer group.
func MakeRootPrivate() error {
	if err := syscall.Mount("", "/", "", syscall.MS_REC|syscall.MS_PRIVATE, ""); err != nil {
		return fmt.Errorf("make / rprivate: %w", err)
	}
	return nil
}

func withoutMarker(env []string) []string {
	out := env[:0:0]
	for _, e := range env {
		if !strings.HasPrefix(e, EnvMarker+"=") {
			out = append(out, e)
		}
	}
	return out
}
