package render

import (
	"io"
	"strings"

	"github.com/dibuild/dib/compiler/plan"
)

// DiffText renders a plan diff: changed steps with their cause, hook files
// with unified diffs, then environment, packages, elements, layout and
// outputs. An empty diff prints one line saying so.
func DiffText(w io.Writer, d *plan.Diff, opt Options) error {
	d = escaped(d)
	p := &printer{w: w, opt: opt}
	if d.Empty() {
		p.printf("No differences: both plans build the same image.\n")
		return p.err
	}
	sign := func(change string) string {
		switch change {
		case plan.Added:
			return p.style("32", "+")
		case plan.Removed:
			return p.style("31", "-")
		default:
			return p.style("33", "~")
		}
	}
	if len(d.Steps) > 0 {
		p.heading("Steps")
		for _, s := range d.Steps {
			switch s.Change {
			case plan.Changed:
				p.printf("  %s %s  %s → %s  (%s)\n", sign(s.Change), s.Title, plan.ShortID(s.OldID), plan.ShortID(s.NewID), s.Cause)
			case plan.Added:
				p.printf("  %s %s  %s\n", sign(s.Change), s.Title, plan.ShortID(s.NewID))
			default:
				p.printf("  %s %s  %s\n", sign(s.Change), s.Title, plan.ShortID(s.OldID))
			}
		}
	}
	if len(d.Scripts) > 0 {
		p.heading("Hook files")
		for _, f := range d.Scripts {
			el := ""
			if f.Element != "" {
				el = "  (" + f.Element + ")"
			}
			p.printf("  %s %s%s\n", sign(f.Change), f.Path, el)
			if f.Unified != "" {
				for _, line := range strings.Split(strings.TrimSuffix(f.Unified, "\n"), "\n") {
					switch {
					case strings.HasPrefix(line, "+") && !strings.HasPrefix(line, "+++"):
						line = p.style("32", line)
					case strings.HasPrefix(line, "-") && !strings.HasPrefix(line, "---"):
						line = p.style("31", line)
					case strings.HasPrefix(line, "@@"):
						line = p.style("36", line)
					}
					p.printf("      %s\n", line)
				}
			}
		}
	}
	section := func(title string, cs []plan.Change) {
		if len(cs) == 0 {
			return
		}
		p.heading(title)
		for _, c := range cs {
			switch c.Change {
			case plan.Added:
				p.printf("  %s %s = %s\n", sign(c.Change), c.Key, c.New)
			case plan.Removed:
				p.printf("  %s %s = %s\n", sign(c.Change), c.Key, c.Old)
			default:
				p.printf("  %s %s: %s → %s\n", sign(c.Change), c.Key, c.Old, c.New)
			}
		}
	}
	section("Environment", d.Env)
	section("Packages", d.Packages)
	section("Elements", d.Elements)
	section("Disk layout", d.Layout)
	section("Outputs", d.Outputs)
	return p.err
}
