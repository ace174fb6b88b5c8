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
	r *strings.Replacer
}

// NewRedactor returns a Redactor for the given secret values. Empty values
// are ignored; longer values are replaced first so a secret that contains
// another is hidden whole.
func NewRedactor(secrets ...string) *Redactor {
	vals := make([]string, 0, len(secrets))
	seen := map[string]bool{}
	for _, s := range secrets {
		if s == "" || seen[s] {
			continue
		}
		seen[s] = true
		vals = append(vals, s)
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
	return &Redactor{r: strings.NewReplacer(pairs...)}
}

// Redact returns s with every secret replaced by Redacted.
func (r *Redactor) Redact(s string) string {
	if r == nil || r.r == nil {
		return s
	}
	return r.r.Replace(s)
}

// RedactAll redacts each string of ss into a new slice.
func (r *Redactor) RedactAll(ss []string) []string {
	out := make([]string, len(ss))
	for i, s := range ss {
		out[i] = r.Redact(s)
	}
	return out
}
