package element

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/fstest"
)

// BenchmarkResolveOracleLargest resolves the oracle case with the most
// expanded elements on the DIB skeleton.
func BenchmarkResolveOracleLargest(b *testing.B) {
	oracle, skeleton := oracleDirs(b)
	files, _ := filepath.Glob(filepath.Join(oracle, "elements", "*.json"))
	var best oracleCase
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			b.Fatal(err)
		}
		var c oracleCase
		if err := json.Unmarshal(data, &c); err != nil {
			b.Fatal(err)
		}
		if c.Error == nil && len(c.Expanded) > len(best.Expanded) && slicesAll(c.ElementsPath, "bundled") {
			best = c
		}
	}
	if best.Case == "" {
		b.Skip("no oracle case")
	}
	opts := Options{Path: []Source{{"bundled", os.DirFS(skeleton)}}, Elements: best.ElementsRequested, Arch: best.Arch, SkipBase: best.SkipBase}
	b.Logf("%s: %d elements", best.Case, len(best.Expanded))
	b.ReportAllocs()
	for b.Loop() {
		if _, ds := Resolve(opts); ds.HasErrors() {
			b.Fatal(ds)
		}
	}
}

func slicesAll(s []string, v string) bool {
	for _, x := range s {
		if x != v {
			return false
		}
	}
	return true
}

// syntheticFS builds, as an fstest.MapFS, n elements e0000…: each depends on the next one (a
// chain n deep), on its two children in a binary tree (wide), and on one
// pseudo-random element (cross edges and cycles); each has an install.d
// script, an environment.d file, a nested static file in a directory all of
// them share, and a pkg-map.
func syntheticFS(n int) fstest.MapFS {
	m := fstest.MapFS{"e0000/element-provides": file("operating-system\n")}
	name := func(i int) string { return fmt.Sprintf("e%04d", i) }
	for i := range n {
		var deps []string
		for _, j := range []int{i + 1, 2*i + 1, 2*i + 2, (i * 7919) % n} {
			if j < n && j != i {
				deps = append(deps, name(j))
			}
		}
		e := name(i)
		m[e+"/element-deps"] = file(strings.Join(deps, "\n") + "\n")
		m[e+"/install.d/"+fmt.Sprintf("%02d-%s", i%100, e)] = exe("#!/bin/sh\n")
		m[e+"/environment.d/"+fmt.Sprintf("%02d-%s.bash", i%100, e)] = file("export X=1\n")
		m[e+"/static/etc/shared/"+e+".conf"] = file(e)
		m[e+"/pkg-map"] = file("{}\n")
	}
	return m
}

func BenchmarkResolveSynthetic(b *testing.B) {
	for _, n := range []int{500, 2000, 8000} {
		b.Run(fmt.Sprintf("n=%d", n), func(b *testing.B) {
			m := newIndexFS(syntheticFS(n))
			opts := Options{Path: []Source{{"synthetic", m}}, Elements: []string{"e0000"}, SkipBase: true}
			res, ds := Resolve(opts)
			if ds.HasErrors() || len(res.Expanded) != n {
				b.Fatalf("%d expanded, %v", len(res.Expanded), ds)
			}
			b.ReportAllocs()
			for b.Loop() {
				Resolve(opts)
			}
		})
	}
}
