package compiler

import (
	"github.com/dibuild/dib/compiler/element"
	"github.com/dibuild/dib/compiler/plan"
)

// packageDifferences lists where the packages this plan installs knowingly
// differ from upstream DIB's for the same elements, release and options
// (docs/packages.md). Only dib's own (builtin) elements differ; an element
// taken from the elements path behaves as the file says.
func packageDifferences(res *element.Result, arch string) []plan.PackageDifference {
	var out []plan.PackageDifference
	if builtinElement(res, "stable-interface-names") && arch != "amd64" && arch != "i386" && arch != "x86_64" {
		out = append(out, plan.PackageDifference{
			Packages: []string{"biosdevname"}, Change: "left out", Element: "stable-interface-names",
			Reason: "DIB asks for it on every architecture, but Debian and Ubuntu build it for amd64 and i386 only: DIB's build fails here",
		})
	}
	return out
}

// builtinElement reports whether name is among the expanded elements and
// comes from dib's built-in set.
func builtinElement(res *element.Result, name string) bool {
	for _, e := range res.Elements {
		if e.Name == name {
			return e.Source == element.BuiltinName
		}
	}
	return false
}
