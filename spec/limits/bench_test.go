package limits_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/dibuild/dib/spec"
	"github.com/dibuild/dib/spec/limits"
)

// worstCases are Dibfiles right at the limits of limits.Default(), each
// the worst shape for one cost of the YAML reader.
func worstCases() map[string]string {
	head := "name: w\ndistro: debian-minimal\n"
	var keys strings.Builder
	for i := range 1000 {
		fmt.Fprintf(&keys, "  K%d: v\n", i)
	}
	deep := ""
	for i := range 62 {
		deep += strings.Repeat(" ", i+2) + "a:\n"
	}
	return map[string]string{
		"keys-1000":      head + "env:\n" + keys.String(),
		"values-9990":    head + "packages:\n" + strings.Repeat("- a\n", 9990),
		"flow-depth-62":  head + "packages: " + strings.Repeat("[", 62) + strings.Repeat("]", 62) + "\n",
		"block-depth-62": head + "env:\n" + deep,
		"string-256KiB":  head + "mkfs-options: " + strings.Repeat("x", 256<<10) + "\n",
		"comments-49990": head + strings.Repeat("#\n", 49990),
		"tokens-words":   head + "mkfs-options: " + strings.Repeat("x ", 24990) + "\n",
	}
}

// BenchmarkWorstCase loads each worst case with spec.Load (limits,
// parse, schema, decode); -benchmem shows the memory per load.
//
//	go test -run '^$' -bench WorstCase -benchmem ./spec/limits/
func BenchmarkWorstCase(b *testing.B) {
	for name, src := range worstCases() {
		if ds := limits.Default().Check("w", []byte(src)); ds.HasErrors() {
			b.Fatalf("%s is over the limits: %v", name, ds)
		}
		b.Run(name, func(b *testing.B) {
			b.SetBytes(int64(len(src)))
			for b.Loop() {
				spec.Load("w", []byte(src), nil)
			}
		})
	}
}

// BenchmarkCheck is the pre-scan alone, on a 1 MiB input.
func BenchmarkCheck(b *testing.B) {
	src := []byte(strings.Repeat("key: [value, 'quoted', {a: b}] # comment\n", (1<<20)/42))
	l := limits.Default()
	l.Tokens, l.Values, l.Keys = 0, 0, 0
	b.SetBytes(int64(len(src)))
	for b.Loop() {
		l.Check("w", src)
	}
}
