// Command dib is the command-line front end of dib: a declarative, planned,
// cached disk-image builder that runs diskimage-builder elements.
//
// The CLI is thin: each command lives in its own file, turns flags into one
// library call and renders the result. Exit codes:
//
//	0   success
//	1   invalid input or failed build
//	2   differences found (dib diff)
//	64  usage error (sysexits EX_USAGE)
package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/alecthomas/kong"
	kongcompletion "github.com/jotaen/kong-completion"

	"github.com/dibuild/dib/spec/diag"
	"github.com/dibuild/dib/spec/dibyaml"
)

// Exit codes, documented in the README.
const (
	exitOK      = 0
	exitFailed  = 1
	exitDiffers = 2
	exitUsage   = 64
)

// version is set at link time with -ldflags "-X main.version=…".
var version = "0.1.0-dev"

// Globals are the flags every command accepts.
type Globals struct {
	NoColor bool             `help:"Never colour the output (colour is used only on a terminal; a non-empty NO_COLOR does the same)."`
	Ver     kong.VersionFlag `name:"version" help:"Print the dib version and exit."`

	Stdin  io.Reader `kong:"-"`
	Stdout io.Writer `kong:"-"`
	Stderr io.Writer `kong:"-"`
	// Environ replaces the process environment (KEY=VALUE) in tests.
	Environ []string `kong:"-"`
}

// CLI is the whole command tree. Each command is defined in its own file.
type CLI struct {
	Globals

	Help       HelpCmd                   `cmd:"" help:"Show the help of a command or a topic: elements, phases, block-device, secrets, caching, exit-codes."`
	Version    VersionCmd                `cmd:"" help:"Print the dib version."`
	Man        ManCmd                    `cmd:"" help:"Write man pages for dib and each of its commands."`
	Completion kongcompletion.Completion `cmd:"" help:"Print a shell completion script (bash, zsh or fish)."`
	Init       InitCmd                   `cmd:"" help:"Write a commented Dibfile to start from, for a distribution and disk layout."`
	Validate   ValidateCmd               `cmd:"" help:"Check Dibfiles and report every problem with its position."`
	Schema     SchemaCmd                 `cmd:"" help:"Print the JSON Schema of the Dibfile."`
	Plan       PlanCmd                   `cmd:"" help:"Compile a Dibfile and show its build plan."`
	Diff       DiffCmd                   `cmd:"" help:"Compare two Dibfiles or plan files."`
	Convert    ConvertCmd                `cmd:"" help:"Convert a diskimage-builder YAML file into a Dibfile."`
	Blockdev   BlockdevCmd               `cmd:"" help:"Compile a DIB block-device config and print the disk layout."`
	Elements   ElementsCmd               `cmd:"" help:"Resolve elements as diskimage-builder does and show their hooks in run order."`
	Boot       BootCmd                   `cmd:"" help:"Boot a disk image in QEMU and wait for a login prompt."`
	Export     ExportCmd                 `cmd:"" help:"Write what runs the builds on a distributed engine: a Kubernetes Job per image."`
	Apply      ApplyCmd                  `cmd:"" help:"Build the images of a Dibfile or plan file (root)."`
	Shell      ShellCmd                  `cmd:"" help:"Open a shell (or run a command) inside a built tree or disk image, for debugging (root)."`
	Cache      CacheCmd                  `cmd:"" help:"List, prune and verify the build cache of step results."`
	Clean      CleanCmd                  `cmd:"" help:"Reclaim what killed builds left in an output directory (work directories, temporary outputs, loop devices, processes)."`

	DiskImageCreate    DiskImageCreateCmd    `cmd:"" name:"disk-image-create" passthrough:"" group:"diskimage-builder compatibility" help:"diskimage-builder's disk-image-create: same options and environment (also as a symlink named disk-image-create)."`
	RamdiskImageCreate RamdiskImageCreateCmd `cmd:"" name:"ramdisk-image-create" passthrough:"" group:"diskimage-builder compatibility" help:"diskimage-builder's ramdisk-image-create: same options and environment (also as a symlink named ramdisk-image-create)."`
}

// exitError carries an exit code through kong's Run without printing
// anything more: the command has already rendered its output.
type exitError struct{ code int }

func (e exitError) Error() string { return fmt.Sprintf("exit status %d", e.code) }

func main() {
	os.Exit(run(programArgs(os.Args), os.Stdout, os.Stderr))
}

// programArgs returns the arguments dib parses: when dib is invoked
// through a link named disk-image-create or ramdisk-image-create, as
// diskimage-builder's programs, the command of that name.
func programArgs(argv []string) []string {
	if len(argv) == 0 {
		return nil
	}
	switch name := filepath.Base(argv[0]); name {
	case dibyaml.DiskImageCreate, dibyaml.RamdiskImageCreate:
		return append([]string{name}, argv[1:]...)
	}
	return argv[1:]
}

// run parses args, runs the command and returns the process exit code.
func run(args []string, stdout, stderr io.Writer) int {
	return runWith(args, stdout, stderr, nil)
}

// runWith is run with an environment in place of the process's (nil: the
// process's).
func runWith(args []string, stdout, stderr io.Writer, environ []string) int {
	return runWithInput(args, nil, stdout, stderr, environ)
}

// runWithInput is runWith reading standard input from stdin (nil: the
// process's).
func runWithInput(args []string, stdin io.Reader, stdout, stderr io.Writer, environ []string) int {
	var cli CLI
	cli.Stdin, cli.Stdout, cli.Stderr, cli.Environ = stdin, stdout, stderr, environ
	exitCode := -1
	parser, err := kong.New(&cli,
		kong.Name("dib"),
		kong.Description("Build disk images from a Dibfile, with diskimage-builder elements, through a plan you can read first."),
		kong.UsageOnError(),
		kong.ConfigureHelp(kong.HelpOptions{Compact: true}),
		kong.Writers(stdout, stderr),
		kong.Exit(func(code int) { exitCode = code }),
		kong.Vars{"version": versionLine()},
	)
	if err != nil {
		fmt.Fprintf(stderr, "dib: internal error: %v\n", err)
		return exitFailed
	}
	kongcompletion.Register(parser)
	if len(args) == 0 { // dib alone: what it is and what it can do
		args = []string{"--help"}
	}
	args = helpArgs(parser.Model, args)
	ctx, err := parser.Parse(args)
	if exitCode >= 0 { // --help, completion, or kong's own exit
		if exitCode != 0 {
			return exitUsage
		}
		return exitOK
	}
	if err != nil {
		printError(stderr, err)
		return exitUsage
	}
	if err := ctx.Run(&cli.Globals); err != nil {
		var ee exitError
		if errors.As(err, &ee) {
			return ee.code
		}
		printError(stderr, err)
		return exitFailed
	}
	return exitOK
}

// printError prints an error that is not a diagnostic, its control
// characters escaped: a plan file or an argument can carry any bytes, and
// none may reach the terminal (diag.Escape), nor may a value it holds
// run on for pages (diag.Clip).
func printError(w io.Writer, err error) {
	fmt.Fprintf(w, "dib: error: %s\n", diag.Clip(diag.Escape(err.Error())))
}
