// Package preflight checks, before anything runs, that the host has every
// external program a plan will run, so a build fails in its first second
// with one message listing them all, never halfway through.
package preflight

import (
	"fmt"
	"os/exec"
	"sort"
	"strings"

	"github.com/dibuild/dib/compiler/plan"
)

// LookPath finds a program; tests replace it.
type LookPath func(string) (string, error)

// Check marks every host tool of the plan as found or not and returns the
// missing ones. look is exec.LookPath when nil.
func Check(p *plan.Plan, look LookPath) []plan.HostTool {
	if look == nil {
		look = exec.LookPath
	}
	var missing []plan.HostTool
	for i := range p.HostTools {
		_, err := look(p.HostTools[i].Program)
		found := err == nil
		p.HostTools[i].Found = &found
		if !found {
			missing = append(missing, p.HostTools[i])
		}
	}
	return missing
}

// Packages returns the sorted, distinct Debian packages of tools.
func Packages(tools []plan.HostTool) []string {
	seen := map[string]bool{}
	var pkgs []string
	for _, t := range tools {
		if !seen[t.Package] && t.Package != "?" {
			seen[t.Package] = true
			pkgs = append(pkgs, t.Package)
		}
	}
	sort.Strings(pkgs)
	return pkgs
}

// Error is the one message `dib apply` stops with when tools are missing.
type Error struct{ Missing []plan.HostTool }

func (e *Error) Error() string {
	var progs []string
	for _, t := range e.Missing {
		progs = append(progs, t.Program)
	}
	pkgs := Packages(e.Missing)
	return fmt.Sprintf("missing host tools: %s\n  hint: apt-get install %s", strings.Join(progs, ", "), strings.Join(pkgs, " "))
}
