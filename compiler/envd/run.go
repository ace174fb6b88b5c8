package envd

import (
	"context"
	"errors"
	"io"
	"os/exec"
	"syscall"
)

// run runs the driver with bash in dir, with exactly env (as nobody when
// asNobody), in a new
// network namespace when the kernel lets dib make one (as root, or through
// a user namespace), else without one. The whole process group is killed
// when ctx ends.
func run(ctx context.Context, bash, script, dir string, env []string, stderr io.Writer, asNobody bool) error {
	err := start(ctx, bash, script, dir, env, stderr, true, asNobody)
	var se *startError
	if errors.As(err, &se) {
		// No namespace for us here: the clean environment stays.
		return start(ctx, bash, script, dir, env, stderr, false, asNobody)
	}
	return err
}

// Nobody is the user and group the files run as when dib runs as root.
const Nobody = 65534

type startError struct{ err error }

func (e *startError) Error() string { return e.err.Error() }

func start(ctx context.Context, bash, script, dir string, env []string, stderr io.Writer, isolate, asNobody bool) error {
	cmd := exec.Command(bash, "--noprofile", "--norc", script)
	cmd.Dir, cmd.Env, cmd.Stdout, cmd.Stderr = dir, env, io.Discard, stderr
	attr := &syscall.SysProcAttr{Setpgid: true}
	if asNobody {
		// Planning needs no privilege: as root, the files run as nobody,
		// so an element's file cannot change the host's files.
		attr.Credential = &syscall.Credential{Uid: Nobody, Gid: Nobody, Groups: []uint32{}}
	}
	if isolate {
		attr.Cloneflags = syscall.CLONE_NEWNET
		if syscall.Geteuid() != 0 {
			attr.Cloneflags |= syscall.CLONE_NEWUSER
			attr.UidMappings = []syscall.SysProcIDMap{{ContainerID: syscall.Geteuid(), HostID: syscall.Geteuid(), Size: 1}}
			attr.GidMappings = []syscall.SysProcIDMap{{ContainerID: syscall.Getegid(), HostID: syscall.Getegid(), Size: 1}}
		}
	}
	cmd.SysProcAttr = attr
	if err := cmd.Start(); err != nil {
		if isolate {
			return &startError{err}
		}
		return err
	}
	done := make(chan struct{})
	go func() {
		select {
		case <-ctx.Done():
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		case <-done:
		}
	}()
	err := cmd.Wait()
	close(done)
	// Children the files left behind (a background job) go with the group.
	_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	if ctx.Err() != nil && err != nil {
		return ctx.Err()
	}
	return err
}
