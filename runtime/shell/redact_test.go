package shell

import (
	"strings"
	"testing"
)

// TestSplitLineLeak: a secret in an output line longer than the 64 KiB
// chunk, straddling the cut, is never printed, however the stream is
// chunked by reads.
func TestSplitLineLeak(t *testing.T) {
	const secret = "S3cr3t-Pa55w0rd-straddling-the-cut"
	red := NewRedactor(secret, "-----BEGIN KEY-----\nline-two-of-the-key\n-----END KEY-----")
	for _, at := range []int{64<<10 - 10, 64<<10 - 1, 64 << 10, 64<<10 + 1, 2*(64<<10) - 5} {
		line := strings.Repeat("a", at) + secret + strings.Repeat("b", 70<<10) + secret + "\n"
		line += "key: line-two-of-the-key\n"
		for _, chunk := range []int{1, 7, 4096, 65536, len(line)} {
			if chunk == 1 && at > 64<<10 {
				continue // slow, and covered by 7
			}
			var out strings.Builder
			s := newLineSink(&out, nil, "", red, 5)
			for i := 0; i < len(line); i += chunk {
				s.Write([]byte(line[i:min(i+chunk, len(line))]))
			}
			s.flush()
			got := out.String()
			joined := strings.ReplaceAll(got, "\n", "")
			if strings.Contains(joined, "S3cr3t") || strings.Contains(joined, "straddling") || strings.Contains(joined, "the-cut") {
				t.Fatalf("at %d, chunks of %d: a piece of the secret was printed", at, chunk)
			}
			if strings.Contains(got, "line-two") {
				t.Fatalf("a line of a multi-line secret was printed")
			}
			if n := strings.Count(got, Redacted); n != 3 {
				t.Fatalf("at %d, chunks of %d: %d redactions, want 3", at, chunk, n)
			}
			bare := strings.ReplaceAll(joined, Redacted, "")
			if strings.Count(bare, "a") != at || strings.Count(bare, "b") != 70<<10 {
				t.Fatalf("at %d, chunks of %d: text other than the secret lost", at, chunk)
			}
		}
	}
}
