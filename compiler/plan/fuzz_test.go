package plan

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
)

// FuzzPlanRead feeds arbitrary bytes to Read, the gate every plan file
// passes before `dib apply` trusts it: it must never panic, must return a
// plan exactly when there is no error, and a plan it accepts must verify
// and survive a write/read round trip with the same ID.
//
//	go test -run '^$' -fuzz FuzzPlanRead -fuzztime 10m ./compiler/plan/
func FuzzPlanRead(f *testing.F) {
	p := samplePlan()
	p.Secrets = map[string]string{"DIB_DEV_USER_PASSWORD": "pw"}
	if err := p.Seal(); err != nil {
		f.Fatal(err)
	}
	var buf bytes.Buffer
	if err := p.WriteJSON(&buf); err != nil {
		f.Fatal(err)
	}
	f.Add(buf.Bytes())
	f.Add(bytes.Replace(buf.Bytes(), []byte(`"format_version": `), []byte(`"format_version": 9`), 1))
	f.Add([]byte(`{"format_version": 1}`))
	f.Add([]byte(`{"format_version": 1e400}`))
	f.Add([]byte(`[]`))
	files, _ := filepath.Glob(filepath.Join("..", "testdata", "plans", "*.json"))
	for _, name := range files {
		if b, err := os.ReadFile(name); err == nil {
			f.Add(b)
		}
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		p, err := Read(bytes.NewReader(data))
		if (p == nil) == (err == nil) {
			t.Fatalf("Read returned plan %v and error %v", p != nil, err)
		}
		if p == nil {
			return
		}
		if err := p.Verify(); err != nil {
			t.Fatalf("an accepted plan does not verify: %v", err)
		}
		var out bytes.Buffer
		if err := p.WriteJSON(&out); err != nil {
			t.Fatalf("an accepted plan does not write: %v", err)
		}
		q, err := Read(&out)
		if err != nil {
			t.Fatalf("an accepted plan, written again, is refused: %v", err)
		}
		if q.ID != p.ID {
			t.Fatalf("round trip changed the plan ID: %s → %s", p.ID, q.ID)
		}
	})
}
