package shell

import (
	"sort"
	"strings"
)

// Redacted replaces every secret value in logged argv and output.
const Redacted = "<redacted>"

// Redactor hides secret values (passwords, tokens from the Dibfile's secret
// env entries) in everything the runtime logs. The zero value hides nothing.
type Redactor struct {
	r    *strings.Replacer
	vals []string // the values, longest first
}

// NewRedactor returns a Redactor for the given secret values. Empty values
// are ignored; longer values are replaced first so a secret that contains
// another is hidden whole. Each line of a multi-line secret (a key, a
// certificate) is hidden on its own too, since output is handled a line
// at a time.
func NewRedactor(secrets ...string) *Redactor {
	vals := make([]string, 0, len(secrets))
	seen := map[string]bool{}
	add := func(s string) {
		if s == "" || seen[s] {
			return
		}
		seen[s] = true
		vals = append(vals, s)
	}
	for _, s := range secrets {
		add(s)
		if strings.ContainsAny(s, "\r\n") {
			for _, l := range strings.FieldsFunc(s, func(r rune) bool { return r == '\n' || r == '\r' }) {
				add(l)
			}
		}
	}
	if len(vals) == 0 {
		return &Redactor{}
	}
	sort.Slice(vals, func(i, j int) bool {
		if len(vals[i]) != len(vals[j]) {
			return len(vals[i]) > len(vals[j])
		}
		return vals[i] < vals[j]
	})
	pairs := make([]string, 0, 2*len(vals))
	for _, v := range vals {
		pairs = append(pairs, v, Redacted)
	}
	return &Redactor{r: strings.NewReplacer(pairs...), vals: vals}
}

// Redact returns s with every secret replaced by Redacted.
func (r *Redactor) Redact(s string) string {
	if r == nil || r.r == nil {
		return s
	}
	return r.r.Replace(s)
}

// RedactPrefix redacts s, a piece of a stream that continues, and splits
// the result: done can be written out, and hold (at most the longest
// secret minus one byte, taken from the end) must be put in front of what
// comes next, because it may be the start of a secret cut by the split.
func (r *Redactor) RedactPrefix(s string) (done, hold string) {
	out := r.Redact(s)
	if r == nil || len(r.vals) == 0 {
		return out, ""
	}
	// The longest suffix of out that begins some secret.
	for n := min(len(out), len(r.vals[0])-1); n > 0; n-- {
		tail := out[len(out)-n:]
		for _, v := range r.vals {
			if len(v) > n && strings.HasPrefix(v, tail) {
				return out[:len(out)-n], tail
			}
		}
	}
	return out, ""
}

// RedactAll redacts each string of ss into a new slice.
func (r *Redactor) RedactAll(ss []string) []string {
	out := make([]string, len(ss))
	for i, s := range ss {
		out[i] = r.Redact(s)
	}
	return out
}
