// Package registrytest runs a real OCI registry for tests: Debian's
// docker-registry (the CNCF Distribution registry) on 127.0.0.1, on a free
// port, storing into a temporary directory; it is stopped when the test
// ends.
package registrytest

import (
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// Registry is a running registry.
type Registry struct {
	// Addr is its HOST:PORT.
	Addr string
	// Storage is the directory of its filesystem storage driver.
	Storage string
}

// Start runs a registry until t ends. Without the docker-registry program
// the test is skipped, or fails under DIB_REQUIRE_INTEGRATION=1.
func Start(t testing.TB) *Registry {
	t.Helper()
	bin, err := exec.LookPath("docker-registry")
	if err != nil {
		if os.Getenv("DIB_REQUIRE_INTEGRATION") == "1" {
			t.Fatal("docker-registry is not installed (Debian package docker-registry, in .ci/apt-packages.txt)")
		}
		t.Skip("needs docker-registry (apt-get install docker-registry)")
	}
	dir := t.TempDir()
	r := &Registry{Storage: filepath.Join(dir, "storage")}
	for attempt := 0; ; attempt++ {
		port, err := freePort()
		if err != nil {
			t.Fatal(err)
		}
		r.Addr = fmt.Sprintf("127.0.0.1:%d", port)
		cfg := filepath.Join(dir, "config.yml")
		if err := os.WriteFile(cfg, []byte(config(r.Storage, r.Addr)), 0o600); err != nil {
			t.Fatal(err)
		}
		logf, err := os.Create(filepath.Join(dir, "registry.log"))
		if err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command(bin, "serve", cfg)
		cmd.Stdout, cmd.Stderr = logf, logf
		if err := cmd.Start(); err != nil {
			logf.Close()
			t.Fatal(err)
		}
		exited := make(chan struct{})
		go func() { _ = cmd.Wait(); close(exited) }()
		stop := func() {
			_ = cmd.Process.Kill()
			<-exited
			logf.Close()
		}
		if ready(r.Addr, exited) {
			t.Cleanup(stop)
			return r
		}
		stop()
		if attempt == 4 {
			log, _ := os.ReadFile(logf.Name())
			t.Fatalf("docker-registry did not start on %s:\n%s", r.Addr, log)
		}
	}
}

// Ref is the plain-HTTP reference of a repository of the registry.
func (r *Registry) Ref(repo string) string { return "http://" + r.Addr + "/" + repo }

// BlobPath is where the registry stores the blob of a sha256 digest (hex).
func (r *Registry) BlobPath(hex string) string {
	return filepath.Join(r.Storage, "docker/registry/v2/blobs/sha256", hex[:2], hex, "data")
}

func config(storage, addr string) string {
	return strings.Join([]string{
		"version: 0.1",
		"log:",
		"  level: error",
		"  accesslog:",
		"    disabled: true",
		"storage:",
		"  filesystem:",
		"    rootdirectory: " + storage,
		"  delete:",
		"    enabled: true",
		"http:",
		"  addr: " + addr,
		"",
	}, "\n")
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// ready waits until the registry answers /v2/ (false: it exited or did not
// answer within 10 s).
func ready(addr string, exited <-chan struct{}) bool {
	c := &http.Client{Timeout: time.Second}
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-exited:
			return false
		default:
		}
		resp, err := c.Get("http://" + addr + "/v2/")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return true
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	return false
}
