package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"syscall"

	"github.com/dibuild/dib/runtime/inspect"
	"github.com/dibuild/dib/spec/diag"
)

// ShellCmd opens a shell in a built tree or image.
type ShellCmd struct {
	Target  string `arg:"" placeholder:"IMAGE|TREE" help:"A built tree (directory), an archive of one (tar, tgz, tar.zst) or a disk image (raw, qcow2)."`
	Command string `short:"c" placeholder:"CMD" help:"Run CMD with the image's shell (sh -c) instead of an interactive shell; dib exits with its status."`
	WorkDir string `name:"work-dir" placeholder:"DIR" env:"TMP_DIR" help:"Parent of the session's directory (default: the system temp dir)."`
}

// Help is shown by `dib shell --help`.
func (ShellCmd) Help() string {
	return `Opens a shell inside a built image, for debugging, as root in a chroot with
/proc, /sys and /dev. A disk image is opened in user space as dib builds
them (a read-only loop device per partition, no device-mapper), its root
filesystem and the others of its fstab mounted read-only. Trees and disk
images are seen through an overlay: what you change is discarded on exit,
the image is never written. Everything is unmounted and detached when the
shell ends, however it ends; a session killed with SIGKILL is cleaned up by
the next dib shell.

Examples:
  sudo dib shell out/debian-vm.qcow2
  sudo dib shell out/debian-tarball.tar -c 'dpkg -l | wc -l'`
}

// Run opens the target, runs the shell and closes the target.
func (c ShellCmd) Run(g *Globals) error {
	if os.Geteuid() != 0 {
		_ = diag.Diagnostics{diag.Errorf("dib shell needs root: it mounts the image and chroots into it").
			WithHint("run it with sudo")}.WriteText(g.Stderr)
		return exitError{code: exitFailed}
	}
	if parent, err := privateNamespace(g); parent || err != nil { // no mount outlives dib, even killed
		return err
	}
	ctx := context.Background()
	s, err := inspect.Open(ctx, inspect.Options{Target: c.Target, WorkDir: c.WorkDir, Log: g.Stderr})
	if err != nil {
		var ds diag.Diagnostics
		if !errors.As(err, &ds) {
			var d diag.Diagnostic
			if errors.As(err, &d) {
				ds = diag.Diagnostics{d}
			} else {
				ds = diag.Diagnostics{diag.Errorf("dib shell %s: %v", c.Target, err)}
			}
		}
		_ = ds.WriteText(g.Stderr)
		return exitError{code: exitFailed}
	}
	for _, n := range s.Notes {
		fmt.Fprintf(g.Stderr, "note: %s\n", n)
	}
	code, runErr := c.shell(g, s)
	if err := s.Close(ctx); err != nil {
		_ = diag.Diagnostics{diag.Errorf("dib shell: cleaning up: %v", err)}.WriteText(g.Stderr)
		return exitError{code: exitFailed}
	}
	if runErr != nil {
		return runErr
	}
	if code != 0 {
		return exitError{code: code}
	}
	return nil
}

// shell runs the image's shell in the session's root and returns its exit
// status. Ctrl-C belongs to the shell; SIGTERM and SIGHUP end it.
func (c ShellCmd) shell(g *Globals, s *inspect.Session) (int, error) {
	sh := "/bin/sh"
	for _, p := range []string{"/bin/bash", "/usr/bin/bash"} {
		if st, err := os.Stat(filepath.Join(s.Root, p)); err == nil && st.Mode().IsRegular() {
			sh = p
			break
		}
	}
	argv := []string{"chroot", s.Root, sh}
	if c.Command != "" {
		argv = append(argv, "-c", c.Command)
	} else {
		fmt.Fprintf(g.Stderr, "dib shell: %s (%s); what you change is discarded when the shell exits\n", c.Target, s.Kind)
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, g.Stdout, g.Stderr
	if g.Stdin != nil {
		cmd.Stdin = g.Stdin
	}
	term, _ := g.lookupEnv("TERM")
	cmd.Env = []string{"HOME=/root", "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "LANG=C.UTF-8",
		"TERM=" + term, "PS1=(dib shell " + filepath.Base(c.Target) + ") \\w\\$ ", s.Marker}
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, os.Interrupt, syscall.SIGQUIT, syscall.SIGTERM, syscall.SIGHUP)
	defer signal.Stop(sigs)
	if err := cmd.Start(); err != nil {
		return 0, err
	}
	done := make(chan struct{})
	go func() {
		for {
			select {
			case sig := <-sigs:
				if sig == syscall.SIGTERM || sig == syscall.SIGHUP {
					_ = cmd.Process.Signal(syscall.SIGHUP)
					_ = cmd.Process.Signal(syscall.SIGCONT)
				}
			case <-done:
				return
			}
		}
	}()
	err := cmd.Wait()
	close(done)
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		if st, ok := ee.Sys().(syscall.WaitStatus); ok && st.Signaled() {
			return 128 + int(st.Signal()), nil
		}
		return ee.ExitCode(), nil
	}
	return 0, err
}
