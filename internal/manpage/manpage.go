// Package manpage renders man pages (roff, man(7) macros) from a kong
// command-line model, so the pages say exactly what --help says.
package manpage

import (
	"fmt"
	"reflect"
	"strings"

	"github.com/alecthomas/kong"
)

// Page is one man page: its file name and its text.
type Page struct {
	Name string // "dib.1", "dib-plan.1"
	Text string
}

// Pages renders the application's page and one page per visible command.
// prog is the program name; date and version go into .TH.
func Pages(app *kong.Application, prog, version, date string) []Page {
	var pages []Page
	pages = append(pages, Page{prog + ".1", page(app.Node, prog, version, date, app)})
	for _, n := range app.Leaves(true) {
		if n.Hidden || n.Type != kong.CommandNode {
			continue
		}
		name := prog + "-" + strings.ReplaceAll(n.Path(), " ", "-")
		pages = append(pages, Page{name + ".1", page(n, prog, version, date, app)})
	}
	return pages
}

func page(n *kong.Node, prog, version, date string, app *kong.Application) string {
	var b strings.Builder
	title := prog
	if n != app.Node {
		title = prog + "-" + strings.ReplaceAll(n.Path(), " ", "-")
	}
	fmt.Fprintf(&b, ".TH %s 1 %q %q \"User Commands\"\n", strings.ToUpper(title), date, prog+" "+version)
	b.WriteString(".SH NAME\n")
	fmt.Fprintf(&b, "%s \\- %s\n", esc(title), esc(firstSentence(help(n, app))))
	b.WriteString(".SH SYNOPSIS\n")
	if n == app.Node {
		fmt.Fprintf(&b, ".B %s\n\\fICOMMAND\\fR [\\fIFLAGS\\fR]\n", prog)
	} else {
		fmt.Fprintf(&b, ".B %s %s\n", prog, esc(n.Path()))
		for _, p := range n.Positional {
			s := "\\fI" + esc(strings.ToUpper(p.Name)) + "\\fR"
			if p.IsSlice() {
				s += "..."
			}
			if !p.Required {
				s = "[" + s + "]"
			}
			b.WriteString(s + "\n")
		}
		b.WriteString("[\\fIFLAGS\\fR]\n")
	}
	b.WriteString(".SH DESCRIPTION\n")
	b.WriteString(paragraphs(help(n, app)))
	if d := detail(n); d != "" {
		b.WriteString(".PP\n")
		b.WriteString(paragraphs(d))
	}
	if n == app.Node {
		b.WriteString(".SH COMMANDS\n")
		for _, c := range app.Leaves(true) {
			if c.Type != kong.CommandNode {
				continue
			}
			fmt.Fprintf(&b, ".TP\n.B %s\n%s\nSee \\fB%s-%s\\fR(1).\n", esc(c.Path()), esc(c.Help), prog, strings.ReplaceAll(c.Path(), " ", "-"))
		}
	}
	if len(n.Positional) > 0 {
		b.WriteString(".SH ARGUMENTS\n")
		for _, p := range n.Positional {
			fmt.Fprintf(&b, ".TP\n.I %s\n%s\n", esc(strings.ToUpper(p.Name)), esc(p.Help))
		}
	}
	var flags []*kong.Flag
	for _, group := range n.AllFlags(true) {
		flags = append(flags, group...)
	}
	if len(flags) > 0 {
		b.WriteString(".SH OPTIONS\n")
		for _, f := range flags {
			b.WriteString(".TP\n")
			name := "\\fB\\-\\-" + esc(f.Name) + "\\fR"
			if f.Short != 0 {
				name = fmt.Sprintf("\\fB\\-%c\\fR, %s", f.Short, name)
			}
			if !f.IsBool() && !f.IsCounter() {
				name += "=\\fI" + esc(f.FormatPlaceHolder()) + "\\fR"
			}
			b.WriteString(name + "\n")
			text := f.Help
			if f.HasDefault && f.Default != "" && !f.IsBool() {
				text += " Default: " + f.Default + "."
			}
			if env := f.Tag.Envs; len(env) > 0 {
				text += " Environment: " + strings.Join(env, ", ") + "."
			}
			b.WriteString(esc(text) + "\n")
		}
	}
	b.WriteString(".SH EXIT STATUS\n0 success; 1 invalid input or a failed build; 2 differences found (diff); 64 usage error.\n")
	if n != app.Node {
		fmt.Fprintf(&b, ".SH SEE ALSO\n\\fB%s\\fR(1)\n", prog)
	}
	return b.String()
}

// help is a node's one-line help; the application's is its description.
func help(n *kong.Node, app *kong.Application) string {
	if n == app.Node {
		return app.Help
	}
	return n.Help
}

// detail is the text of a command's Help() method, if it has one.
func detail(n *kong.Node) string {
	if !n.Target.IsValid() {
		return n.Detail
	}
	v := n.Target
	for _, cand := range []reflect.Value{v, v.Addr()} {
		if !cand.CanInterface() {
			continue
		}
		if h, ok := cand.Interface().(interface{ Help() string }); ok {
			return h.Help()
		}
	}
	return n.Detail
}

func firstSentence(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.Index(s, ". "); i > 0 {
		return s[:i]
	}
	return strings.TrimSuffix(s, ".")
}

// paragraphs renders text: blank lines separate paragraphs; indented
// lines (examples) are kept as they are, in a no-fill block.
func paragraphs(s string) string {
	var b strings.Builder
	inExample := false
	for _, line := range strings.Split(strings.TrimSpace(s), "\n") {
		indented := strings.HasPrefix(line, " ")
		switch {
		case strings.TrimSpace(line) == "":
			if inExample {
				b.WriteString(".fi\n")
				inExample = false
			}
			b.WriteString(".PP\n")
			continue
		case indented && !inExample:
			b.WriteString(".nf\n")
			inExample = true
		case !indented && inExample:
			b.WriteString(".fi\n")
			inExample = false
		}
		b.WriteString(esc(line) + "\n")
	}
	if inExample {
		b.WriteString(".fi\n")
	}
	return b.String()
}

// esc escapes text for roff: backslashes, leading dots and quotes, dashes.
func esc(s string) string {
	s = strings.ReplaceAll(s, `\`, `\e`)
	s = strings.ReplaceAll(s, "-", `\-`)
	if strings.HasPrefix(s, ".") || strings.HasPrefix(s, "'") {
		s = `\&` + s
	}
	var b strings.Builder
	for _, r := range s { // non-ASCII as groff's \[uXXXX], readable without preconv
		if r < 0x80 {
			b.WriteRune(r)
			continue
		}
		fmt.Fprintf(&b, `\[u%04X]`, r)
	}
	return b.String()
}
