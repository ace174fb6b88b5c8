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

	"github.com/alecthomas/kong"
	kongcompletion "github.com/jotaen/kong-completion"
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
	NoColor bool `help:"Never colour the output (colour is used only on a terminal)." env:"NO_COLOR"`

	Stdout io.Writer `kong:"-"`
	Stderr io.Writer `kong:"-"`
}

// CLI is the whole command tree. Each command is defined in its own file.
type CLI struct {
	Globals

	Version    VersionCmd                `cmd:"" help:"Print the dib version."`
	Completion kongcompletion.Completion `cmd:"" help:"Print a shell completion script (bash, zsh or fish)."`
	Validate   ValidateCmd               `cmd:"" help:"Check Dibfiles and report every problem with its position."`
	Schema     SchemaCmd                 `cmd:"" help:"Print the JSON Schema of the Dibfile."`
	Plan       PlanCmd                   `cmd:"" help:"Compile a Dibfile and show its build plan."`
	Diff       DiffCmd                   `cmd:"" help:"Compare two Dibfiles or plan files."`
	Convert    ConvertCmd                `cmd:"" help:"Convert a diskimage-builder YAML file into a Dibfile."`
	Blockdev   BlockdevCmd               `cmd:"" help:"Compile a DIB block-device config and print the disk layout."`
	Elements   ElementsCmd               `cmd:"" help:"Resolve elements as diskimage-builder does and show their hooks in run order."`
	Boot       BootCmd                   `cmd:"" help:"Boot a disk image in QEMU and wait for a login prompt."`
	Apply      ApplyCmd                  `cmd:"" help:"Build the images of a Dibfile or plan file (root)."`
}

// exitError carries an exit code through kong's Run without printing
// anything more: the command has already rendered its output.
type exitError struct{ code int }

func (e exitError) Error() string { return fmt.Sprintf("exit status %d", e.code) }

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// run parses args, runs the command and returns the process exit code.
func run(args []string, stdout, stderr io.Writer) int {
	var cli CLI
	cli.Stdout, cli.Stderr = stdout, stderr
	exitCode := -1
	parser, err := kong.New(&cli,
		kong.Name("dib"),
		kong.Description("Build disk images from a Dibfile, with diskimage-builder elements, through a plan you can read first."),
		kong.UsageOnError(),
		kong.ConfigureHelp(kong.HelpOptions{Compact: true}),
		kong.Writers(stdout, stderr),
		kong.Exit(func(code int) { exitCode = code }),
		kong.Vars{"version": version},
	)
	if err != nil {
		fmt.Fprintf(stderr, "dib: internal error: %v\n", err)
		return exitFailed
	}
	kongcompletion.Register(parser)
	ctx, err := parser.Parse(args)
	if exitCode >= 0 { // --help, completion, or kong's own exit
		if exitCode != 0 {
			return exitUsage
		}
		return exitOK
	}
	if err != nil {
		fmt.Fprintf(stderr, "dib: error: %v\n", err)
		return exitUsage
	}
	if err := ctx.Run(&cli.Globals); err != nil {
		var ee exitError
		if errors.As(err, &ee) {
			return ee.code
		}
		fmt.Fprintf(stderr, "dib: error: %v\n", err)
		return exitFailed
	}
	return exitOK
}
