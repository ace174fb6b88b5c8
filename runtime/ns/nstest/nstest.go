// Package nstest runs a package's tests inside a private mount namespace
// when they run as root, so a test that fails half-way through cannot leave
// a mount on the developer's machine. Use it from TestMain:
//
//	func TestMain(m *testing.M) { nstest.Main(m) }
package nstest

import (
	"context"
	"fmt"
	"os"
	"testing"

	"github.com/dibuild/dib/runtime/ns"
)

// Main re-executes the test binary in a private mount namespace when root
// and not already inside one, then runs m.
func Main(m *testing.M) { MainThen(m, nil) }

// MainThen is Main, calling after (when not nil) once the tests ran, in
// the namespace: the place to remove what tests shared.
func MainThen(m *testing.M, after func()) {
	if os.Geteuid() == 0 || ns.InPrivateMountNamespace() {
		parent, code, err := ns.Enter(context.Background(), ns.Options{})
		if err != nil {
			fmt.Fprintln(os.Stderr, "nstest:", err)
			os.Exit(1)
		}
		if parent {
			os.Exit(code)
		}
	}
	code := m.Run()
	if after != nil {
		after()
	}
	os.Exit(code)
}

// RequireRoot skips t unless root; under DIB_REQUIRE_INTEGRATION=1 it fails.
func RequireRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() == 0 {
		return
	}
	if os.Getenv("DIB_REQUIRE_INTEGRATION") == "1" {
		t.Fatal("needs root (DIB_REQUIRE_INTEGRATION=1)")
	}
	t.Skip("needs root")
}
