package main

import (
	"fmt"
	"runtime"
)

// VersionCmd prints the dib version and the Go toolchain it was built with.
type VersionCmd struct{}

// Help is shown by `dib version --help`.
func (VersionCmd) Help() string { return "Example:\n  dib version" }

// Run prints the version.
func (VersionCmd) Run(g *Globals) error {
	_, err := fmt.Fprintln(g.Stdout, versionLine())
	return err
}

// versionLine is what `dib version` and `dib --version` print.
func versionLine() string {
	return fmt.Sprintf("dib %s (%s, %s/%s)", version, runtime.Version(), runtime.GOOS, runtime.GOARCH)
}
