package envd

import (
	"context"
	"testing"
)

// BenchmarkEvaluate: one environment.d file sourced, the cost every plan
// pays once (twice when a file decides the release).
func BenchmarkEvaluate(b *testing.B) {
	in := Input{Files: []File{{Path: "environment.d/a"}}, Tree: tree(map[string]string{"environment.d/a": "export A=1\n"})}
	for i := 0; i < b.N; i++ {
		if _, err := Evaluate(context.Background(), in); err != nil {
			b.Fatal(err)
		}
	}
}
