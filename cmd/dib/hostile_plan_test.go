package main

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
)

// A plan case of the hostile corpus (testdata/hostile/plan/NNN-kind-what.json,
// written by gen.py) edits the plan file dib makes of plan/base.yaml, or is
// raw bytes; dib must refuse the result.
type planCaseFile struct {
	Edits  []planEdit `json:"edits"`
	Raw    [][2]any   `json:"raw"` // [text, repeat] pairs
	Prefix string     `json:"prefix"`
	Suffix string     `json:"suffix"`
}

// planEdit is one change of the decoded plan: set, delete or append at a
// JSON pointer (a negative array index counts from the end); swap and
// append-copy take a second pointer as value; evil-file gives the first
// file with content a new content with a matching blob and digest;
// evil-blob changes the first blob's content, evil-blob-raw sets it to a
// string that is not base64.
type planEdit struct {
	Op    string `json:"op"`
	Path  string `json:"path"`
	Value any    `json:"value"`
}

var hostileBase struct {
	once sync.Once
	doc  []byte
	err  error
}

// hostileBasePlan is the plan file of plan/base.yaml, made once by the
// dib under test.
func hostileBasePlan(t *testing.T, bin, dir string) []byte {
	t.Helper()
	hostileBase.once.Do(func() {
		tmp, err := os.MkdirTemp("", "dib-hostile-plan-")
		if err != nil {
			hostileBase.err = err
			return
		}
		defer os.RemoveAll(tmp)
		out := filepath.Join(tmp, "base.json")
		cmd := exec.Command(bin, "plan", "-o", out, "base.yaml")
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), "NO_COLOR=1", "ELEMENTS_PATH=")
		if b, err := cmd.CombinedOutput(); err != nil {
			hostileBase.err = fmt.Errorf("dib plan -o of %s/base.yaml: %v\n%s", dir, err, b)
			return
		}
		hostileBase.doc, hostileBase.err = os.ReadFile(out)
	})
	if hostileBase.err != nil {
		t.Fatal(hostileBase.err)
	}
	return hostileBase.doc
}

// writePlanCase writes the plan file of case src into dir as plan.json.
func writePlanCase(t *testing.T, bin, src, dir string) {
	t.Helper()
	data, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	var c planCaseFile
	if err := json.Unmarshal(data, &c); err != nil {
		t.Fatalf("%s: %v", src, err)
	}
	var out []byte
	if c.Raw != nil {
		var b bytes.Buffer
		for _, r := range c.Raw {
			text, _ := r[0].(string)
			n, _ := r[1].(float64)
			b.WriteString(strings.Repeat(text, int(n)))
		}
		out = b.Bytes()
	} else {
		dec := json.NewDecoder(bytes.NewReader(hostileBasePlan(t, bin, filepath.Dir(src))))
		dec.UseNumber()
		var doc any
		if err := dec.Decode(&doc); err != nil {
			t.Fatal(err)
		}
		for _, e := range c.Edits {
			if doc, err = applyPlanEdit(doc, e); err != nil {
				t.Fatalf("%s: %s %s: %v", src, e.Op, e.Path, err)
			}
		}
		if out, err = json.MarshalIndent(doc, "", " "); err != nil {
			t.Fatal(err)
		}
	}
	out = append(append([]byte(c.Prefix), out...), c.Suffix...)
	if err := os.WriteFile(filepath.Join(dir, "plan.json"), out, 0o644); err != nil {
		t.Fatal(err)
	}
}

// pointerTokens splits a JSON pointer.
func pointerTokens(p string) []string {
	if p == "" {
		return nil
	}
	toks := strings.Split(strings.TrimPrefix(p, "/"), "/")
	for i, s := range toks {
		toks[i] = strings.ReplaceAll(strings.ReplaceAll(s, "~1", "/"), "~0", "~")
	}
	return toks
}

// arrayIndex resolves an index token of an array of n items.
func arrayIndex(tok string, n int) (int, error) {
	i, err := strconv.Atoi(tok)
	if err != nil {
		return 0, fmt.Errorf("%q is not an index", tok)
	}
	if i < 0 {
		i += n
	}
	if i < 0 || i >= n {
		return 0, fmt.Errorf("index %s out of range (%d items)", tok, n)
	}
	return i, nil
}

// getPointer returns the value at pointer p.
func getPointer(doc any, p string) (any, error) {
	cur := doc
	for _, tok := range pointerTokens(p) {
		switch x := cur.(type) {
		case map[string]any:
			v, ok := x[tok]
			if !ok {
				return nil, fmt.Errorf("no member %q", tok)
			}
			cur = v
		case []any:
			i, err := arrayIndex(tok, len(x))
			if err != nil {
				return nil, err
			}
			cur = x[i]
		default:
			return nil, fmt.Errorf("%q: not a container", tok)
		}
	}
	return cur, nil
}

// setPointer returns doc with the value at p replaced by v (or removed
// when del), the parent container given a new value where needed.
func setPointer(doc any, p string, v any, del bool) (any, error) {
	toks := pointerTokens(p)
	if len(toks) == 0 {
		return v, nil
	}
	parent, err := getPointer(doc, "/"+strings.Join(toks[:len(toks)-1], "/"))
	if len(toks) == 1 {
		parent, err = doc, nil
	}
	if err != nil {
		return nil, err
	}
	last := toks[len(toks)-1]
	switch x := parent.(type) {
	case map[string]any:
		if del {
			delete(x, last)
		} else {
			x[last] = v
		}
		return doc, nil
	case []any:
		i, err := arrayIndex(last, len(x))
		if err != nil {
			return nil, err
		}
		if !del {
			x[i] = v
			return doc, nil
		}
		return setPointer(doc, "/"+strings.Join(toks[:len(toks)-1], "/"), slices.Delete(slices.Clone(x), i, i+1), false)
	}
	return nil, fmt.Errorf("%q: parent is not a container", last)
}

// applyPlanEdit applies one edit to the decoded plan.
func applyPlanEdit(doc any, e planEdit) (any, error) {
	switch e.Op {
	case "set":
		return setPointer(doc, e.Path, e.Value, false)
	case "delete":
		return setPointer(doc, e.Path, nil, true)
	case "append", "append-copy":
		v := e.Value
		if e.Op == "append-copy" {
			src, err := getPointer(doc, e.Value.(string))
			if err != nil {
				return nil, err
			}
			b, _ := json.Marshal(src)
			if err := json.Unmarshal(b, &v); err != nil {
				return nil, err
			}
		}
		arr, err := getPointer(doc, e.Path)
		if err != nil {
			return nil, err
		}
		if arr == nil {
			arr = []any{}
		}
		a, ok := arr.([]any)
		if !ok {
			return nil, fmt.Errorf("not an array")
		}
		return setPointer(doc, e.Path, append(slices.Clone(a), v), false)
	case "swap":
		a, err := getPointer(doc, e.Path)
		if err != nil {
			return nil, err
		}
		b, err := getPointer(doc, e.Value.(string))
		if err != nil {
			return nil, err
		}
		if doc, err = setPointer(doc, e.Path, b, false); err != nil {
			return nil, err
		}
		return setPointer(doc, e.Value.(string), a, false)
	case "evil-file", "evil-blob", "evil-blob-raw":
		m, _ := doc.(map[string]any)
		blobs, _ := m["blobs"].(map[string]any)
		text, _ := e.Value.(string)
		if e.Op != "evil-file" {
			keys := make([]string, 0, len(blobs))
			for k := range blobs {
				keys = append(keys, k)
			}
			if len(keys) == 0 {
				return nil, fmt.Errorf("the plan has no blobs")
			}
			slices.Sort(keys)
			if e.Op == "evil-blob" {
				blobs[keys[0]] = base64.StdEncoding.EncodeToString([]byte(text))
			} else {
				blobs[keys[0]] = text
			}
			return doc, nil
		}
		files, _ := m["files"].([]any)
		for _, f := range files {
			fm, _ := f.(map[string]any)
			if _, ok := fm["sha256"]; ok {
				sum := sha256.Sum256([]byte(text))
				digest := hex.EncodeToString(sum[:])
				fm["sha256"], fm["size"] = digest, len(text)
				blobs[digest] = base64.StdEncoding.EncodeToString([]byte(text))
				return doc, nil
			}
		}
		return nil, fmt.Errorf("no file with content")
	}
	return nil, fmt.Errorf("unknown op %q", e.Op)
}

// hexIDs are the step and plan IDs and digests in dib's messages: they
// follow the compiler, so the goldens hold a placeholder.
var hexIDs = regexp.MustCompile(`\b[0-9a-f]{64}\b|\b[0-9a-f]{12}\b`)

// normalizePlanErrors replaces the IDs of a plan case's output.
func normalizePlanErrors(s string) string {
	return hexIDs.ReplaceAllString(s, "<id>")
}
