package runtime

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestSecretNoOracle: two builds of one plan with different secret values
// give byte-identical manifests (beside the image and in it: the plan ID
// and the environment), and the log holds neither the value nor its
// digest: nothing a build leaves lets anyone test a guess of a secret.
func TestSecretNoOracle(t *testing.T) {
	requireGNUTar(t)
	var manifests [2]map[string]string
	values := []string{"hunter2-first", "correct-horse-second"}
	for i, v := range values {
		p := hostPlan(map[string]string{"root.d/10-make": rootD}, []string{"root.d/10-make"})
		outDir := t.TempDir()
		err := Apply(context.Background(), p, Options{OutputDir: outDir, WorkDir: t.TempDir(), NoTmpfs: true,
			Secrets: map[string]string{"DIB_PASSWORD": v}, Getenv: func(string) string { return "" }})
		if err != nil {
			t.Fatal(err)
		}
		m := map[string]string{}
		ents, _ := os.ReadDir(filepath.Join(outDir, "img.d"))
		for _, e := range ents {
			b, _ := os.ReadFile(filepath.Join(outDir, "img.d", e.Name()))
			m["beside/"+e.Name()] = string(b)
		}
		for name, content := range readTarFile(t, filepath.Join(outDir, "img.tar")) {
			if strings.HasPrefix(name, "./etc/dib-manifests/") {
				m["image/"+name] = content
			}
		}
		if len(m) < 6 {
			t.Fatalf("manifests: %v", m)
		}
		manifests[i] = m
		log, _ := os.ReadFile(filepath.Join(outDir, "img.log"))
		sum := sha256.Sum256([]byte(v))
		for _, leak := range []string{v, hex.EncodeToString(sum[:])} {
			if bytes.Contains(log, []byte(leak)) {
				t.Errorf("log holds %q", leak)
			}
		}
		for name, content := range m {
			if strings.Contains(content, v) {
				t.Errorf("%s holds the secret", name)
			}
		}
	}
	for name, a := range manifests[0] {
		if b := manifests[1][name]; a != b {
			t.Errorf("%s differs between two secret values:\n%s\n%s", name, a, b)
		}
	}
}
