package mount

import (
	"testing"

	"github.com/dibuild/dib/runtime/ns/nstest"
)

// Root tests run in a private mount namespace: a failure cannot leave a
// mount on the machine running them.
func TestMain(m *testing.M) { nstest.Main(m) }
