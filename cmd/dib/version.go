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
	_, err := fmt.Fprintf(g.Stdout, "dib %s (%s, %s/%s)\n", version, runtime.Version(), runtime.GOOS, runtime.GOARCH)
	return err
}
