// Package diag is the one diagnostic type every stage of dib reports with:
// YAML and schema errors, element errors, block-device errors, plan and
// runtime errors alike. A Diagnostic is data; renderers in the CLI turn it
// into text or JSON.
package diag

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
)

// Severity orders diagnostics by how bad they are.
type Severity int

const (
	// Error stops the command; the input cannot be used.
	Error Severity = iota
	// Warning is reported but does not stop the command.
	Warning
	// Note adds information to a previous diagnostic.
	Note
)

// String returns the lowercase word used in renderings ("error", "warning", "note").
func (s Severity) String() string {
	switch s {
	case Error:
		return "error"
	case Warning:
		return "warning"
	default:
		return "note"
	}
}

// MarshalText renders the severity as its word, so JSON carries "error", not 0.
func (s Severity) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// UnmarshalText parses the word written by MarshalText.
func (s *Severity) UnmarshalText(b []byte) error {
	switch string(b) {
	case "error":
		*s = Error
	case "warning":
		*s = Warning
	case "note":
		*s = Note
	default:
		return fmt.Errorf("unknown severity %q", b)
	}
	return nil
}

// Diagnostic is one problem found in the user's input or during a build.
// Line and Col are 1-based and 0 when unknown. Path is a JSON pointer into
// the Dibfile when the problem is about a Dibfile value. Subject names what
// the problem is about when it is not a Dibfile position: an element, a
// step ID, a host tool.
type Diagnostic struct {
	Severity Severity `json:"severity"`
	File     string   `json:"file,omitempty"`
	Line     int      `json:"line,omitempty"`
	Col      int      `json:"column,omitempty"`
	Path     string   `json:"path,omitempty"`
	Subject  string   `json:"subject,omitempty"`
	Message  string   `json:"message"`
	Hint     string   `json:"hint,omitempty"`
}

// Errorf returns an error-severity diagnostic with a formatted message.
func Errorf(format string, args ...any) Diagnostic {
	return Diagnostic{Severity: Error, Message: fmt.Sprintf(format, args...)}
}

// Warningf returns a warning-severity diagnostic with a formatted message.
func Warningf(format string, args ...any) Diagnostic {
	return Diagnostic{Severity: Warning, Message: fmt.Sprintf(format, args...)}
}

// At returns d with its position set.
func (d Diagnostic) At(file string, line, col int) Diagnostic {
	d.File, d.Line, d.Col = file, line, col
	return d
}

// WithHint returns d with its hint set.
func (d Diagnostic) WithHint(format string, args ...any) Diagnostic {
	d.Hint = fmt.Sprintf(format, args...)
	return d
}

// WithSubject returns d with its subject set.
func (d Diagnostic) WithSubject(s string) Diagnostic {
	d.Subject = s
	return d
}

// WithPath returns d with its JSON pointer set.
func (d Diagnostic) WithPath(p string) Diagnostic {
	d.Path = p
	return d
}

// Position renders "file:line:col", dropping the parts that are unknown.
func (d Diagnostic) Position() string {
	var b strings.Builder
	b.WriteString(d.File)
	if d.Line > 0 {
		fmt.Fprintf(&b, ":%d", d.Line)
		if d.Col > 0 {
			fmt.Fprintf(&b, ":%d", d.Col)
		}
	}
	return b.String()
}

// Error renders the diagnostic on one line, as the text renderer does,
// without the hint: "file:line:col: error: message".
func (d Diagnostic) Error() string {
	var b strings.Builder
	if pos := d.Position(); pos != "" {
		b.WriteString(pos)
		b.WriteString(": ")
	}
	b.WriteString(d.Severity.String())
	b.WriteString(": ")
	if d.Subject != "" && d.File == "" {
		b.WriteString(d.Subject)
		b.WriteString(": ")
	}
	b.WriteString(d.Message)
	return b.String()
}

// Diagnostics is a list of problems; it is an error when it holds at least
// one error-severity diagnostic.
type Diagnostics []Diagnostic

// Append adds diagnostics and plain errors. A plain error that is (or wraps)
// Diagnostics or a Diagnostic keeps its structure; any other error becomes an
// error-severity diagnostic with its text as message.
func (ds Diagnostics) Append(items ...any) Diagnostics {
	for _, it := range items {
		switch v := it.(type) {
		case nil:
		case Diagnostic:
			ds = append(ds, v)
		case Diagnostics:
			ds = append(ds, v...)
		case error:
			var many Diagnostics
			var one Diagnostic
			switch {
			case errors.As(v, &many):
				ds = append(ds, many...)
			case errors.As(v, &one):
				ds = append(ds, one)
			default:
				ds = append(ds, Diagnostic{Severity: Error, Message: v.Error()})
			}
		default:
			panic(fmt.Sprintf("diag.Append: unsupported type %T", it))
		}
	}
	return ds
}

// HasErrors reports whether any diagnostic has error severity.
func (ds Diagnostics) HasErrors() bool {
	for _, d := range ds {
		if d.Severity == Error {
			return true
		}
	}
	return false
}

// Err returns ds as an error when it holds an error, else nil. Warnings
// alone are not an error.
func (ds Diagnostics) Err() error {
	if ds.HasErrors() {
		return ds
	}
	return nil
}

// Error joins the one-line renderings.
func (ds Diagnostics) Error() string {
	lines := make([]string, len(ds))
	for i, d := range ds {
		lines[i] = d.Error()
	}
	return strings.Join(lines, "\n")
}

// Sort orders diagnostics by file, line, column, then severity, path and
// message, so renderings never depend on the order problems were found in.
// The sort is stable: equal diagnostics keep their relative order.
func (ds Diagnostics) Sort() {
	sort.SliceStable(ds, func(i, j int) bool {
		a, b := ds[i], ds[j]
		if a.File != b.File {
			return a.File < b.File
		}
		if a.Line != b.Line {
			return a.Line < b.Line
		}
		if a.Col != b.Col {
			return a.Col < b.Col
		}
		if a.Severity != b.Severity {
			return a.Severity < b.Severity
		}
		if a.Path != b.Path {
			return a.Path < b.Path
		}
		return a.Message < b.Message
	})
}

// WriteText renders each diagnostic as "file:line:col: severity: message",
// followed by an indented "hint: …" line when there is a hint.
//
// Control characters in any field are escaped (Escape), and newlines too:
// one diagnostic is one line and its hint. Overlong values in the message,
// subject and hint are cut (Clip); the file name is kept whole.
func (ds Diagnostics) WriteText(w io.Writer) error {
	for _, d := range ds {
		d.File, d.Subject = escapeLine(d.File), Clip(escapeLine(d.Subject))
		d.Message, d.Hint = Clip(escapeLine(d.Message)), Clip(escapeLine(d.Hint))
		if _, err := fmt.Fprintln(w, d.Error()); err != nil {
			return err
		}
		if d.Hint != "" {
			if _, err := fmt.Fprintf(w, "  hint: %s\n", d.Hint); err != nil {
				return err
			}
		}
	}
	return nil
}

func escapeLine(s string) string {
	return strings.ReplaceAll(strings.ReplaceAll(Escape(s), "\n", `\n`), "\t", `\t`)
}

// WriteJSON renders the diagnostics as a JSON array (never null).
func (ds Diagnostics) WriteJSON(w io.Writer) error {
	if ds == nil {
		ds = Diagnostics{}
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(ds)
}
