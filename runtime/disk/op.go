package disk

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/dibuild/dib/runtime/shell"
	"github.com/dibuild/dib/runtime/stack"
)

// errInjected is what a step fails with under failure injection (tests).
var errInjected = errors.New("injected failure")

// op is one disk operation (assembly or mount): its commands, its cleanup
// stack and a step counter that tests use to inject a failure at step N.
type op struct {
	ctx    context.Context
	runner *shell.Runner
	stack  *stack.Stack
	steps  int
	failAt int // 1-based step that fails; 0 never
}

func newOp(ctx context.Context, r *shell.Runner, failAt int) *op {
	if r == nil {
		r = &shell.Runner{}
	}
	return &op{ctx: ctx, runner: r, stack: &stack.Stack{}, failAt: failAt}
}

// step counts one fallible step named name and fails it when injected.
func (o *op) step(name string) error {
	o.steps++
	if o.failAt == o.steps {
		return fmt.Errorf("%s: %w (step %d)", name, errInjected, o.steps)
	}
	return o.ctx.Err()
}

// run runs argv (with extra environment variables) as one step.
func (o *op) run(env []string, argv ...string) error {
	_, err := o.output(env, argv...)
	return err
}

// output runs argv as one step and returns its stdout.
func (o *op) output(env []string, argv ...string) ([]byte, error) {
	if err := o.step(argv[0]); err != nil {
		return nil, err
	}
	c := shell.Command{Argv: argv, Prefix: "disk"}
	if env != nil {
		c.Env = append(os.Environ(), env...)
	}
	out, err := o.runner.Output(o.ctx, c)
	if err != nil {
		return nil, err
	}
	return out, nil
}

// losetup attaches a loop device over size bytes of file at offset and
// pushes its detach. The device is returned.
func (o *op) losetup(file string, offset, size int64, readOnly bool) (string, error) {
	argv := []string{"losetup", "--find", "--show", "--offset", fmt.Sprint(offset)}
	if size > 0 {
		argv = append(argv, "--sizelimit", fmt.Sprint(size))
	}
	if readOnly {
		argv = append(argv, "--read-only")
	}
	out, err := o.output(nil, append(argv, file)...)
	if err != nil {
		return "", err
	}
	dev := strings.TrimSpace(string(out))
	if !strings.HasPrefix(dev, "/dev/loop") {
		return "", fmt.Errorf("losetup printed %q, not a loop device", dev)
	}
	o.stack.Push("detach "+dev, func(ctx context.Context) error {
		_, err := o.runner.Output(ctx, shell.Command{Argv: []string{"losetup", "--detach", dev}, Prefix: "disk"})
		return err
	})
	return dev, nil
}

// release runs the cleanup stack back to mark.
func (o *op) release(mark int) error {
	return o.stack.ReleaseTo(context.WithoutCancel(o.ctx), mark)
}
