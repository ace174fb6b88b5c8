// Package ledger records what a build creates, before it creates it, so
// that what a killed build (SIGKILL, power loss of the process) leaves
// behind can be found and reclaimed later: by `dib clean` and at the start
// of the next `dib apply` in the same output directory.
//
// A ledger is a file of JSON lines, one per resource, in the output
// directory's state directory (.dib/ledger/BUILD.jsonl). A build that ends
// (well or badly, its cleanup stack having run) deletes its ledger; a
// ledger that is still there belongs to a build that was killed. Reclaim
// is only called with the output directory's lock held, so no ledger it
// reads belongs to a running build.
package ledger

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/dibuild/dib/runtime/cgroup"
	"github.com/dibuild/dib/runtime/mount"
	"github.com/dibuild/dib/runtime/shell"
)

// Kinds of resources.
const (
	// Dir is a directory the build made (work directories, dib_build.*,
	// dib_image.*): anything mounted below it is unmounted, loop devices
	// over files in it are detached, then it is removed.
	Dir = "dir"
	// File is a file or directory among the outputs (NAME.qcow2, NAME.d).
	File = "file"
	// Glob is a pattern of temporary names in a directory (the outputs'
	// .NAME.*.dibtmp-* files).
	Glob = "glob"
	// Processes are the processes whose environment holds Marker.
	Processes = "processes"
	// Cgroup is the build's cgroup (runtime/cgroup): whatever is still
	// in it is killed, then it is removed.
	Cgroup = "cgroup"
)

// Entry is one resource.
type Entry struct {
	Kind    string    `json:"kind"`
	Path    string    `json:"path,omitempty"`
	Pattern string    `json:"pattern,omitempty"`
	Marker  string    `json:"marker,omitempty"`
	Time    time.Time `json:"time"`
}

func (e Entry) String() string {
	switch e.Kind {
	case Glob:
		return filepath.Join(e.Path, e.Pattern)
	case Processes:
		return "processes with " + e.Marker
	}
	return e.Path
}

// dirOf returns the ledger directory of a state directory.
func dirOf(stateDir string) string { return filepath.Join(stateDir, "ledger") }

// Ledger is the open ledger of one running build.
type Ledger struct {
	f    *os.File
	path string
}

// Open creates the ledger of build id in stateDir.
func Open(stateDir, id string) (*Ledger, error) {
	dir := dirOf(stateDir)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("ledger: %w", err)
	}
	path := filepath.Join(dir, id+".jsonl")
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("ledger: %w", err)
	}
	return &Ledger{f: f, path: path}, nil
}

// Record appends e; call it before creating the resource. Paths are made
// absolute. A nil Ledger records nothing.
func (l *Ledger) Record(e Entry) error {
	if l == nil {
		return nil
	}
	if e.Path != "" {
		if abs, err := filepath.Abs(e.Path); err == nil {
			e.Path = abs
		}
	}
	e.Time = time.Now().UTC()
	b, err := json.Marshal(e)
	if err != nil {
		return err
	}
	// One write(2) per entry: a kill leaves whole lines (the page cache
	// keeps them; only a machine crash could lose the last ones).
	if _, err := l.f.Write(append(b, '\n')); err != nil {
		return fmt.Errorf("ledger: %w", err)
	}
	return nil
}

// Close deletes the ledger: the build is over and its cleanup ran.
func (l *Ledger) Close() error {
	if l == nil || l.f == nil {
		return nil
	}
	l.f.Close()
	l.f = nil
	err := os.Remove(l.path)
	_ = os.Remove(filepath.Dir(l.path))               // only when empty
	_ = os.Remove(filepath.Dir(filepath.Dir(l.path))) // the state dir, likewise
	return err
}

// Left is what one killed build left, as Reclaim reports it.
type Left struct {
	Build     string   // the build ID
	Reclaimed []string // what was removed, detached or killed
	Errors    []error
}

// Reclaim undoes what every killed build recorded in stateDir left, newest
// resource first, and deletes their ledgers. The caller holds the output
// directory's lock. It returns one Left per ledger found.
func Reclaim(stateDir string) ([]Left, error) {
	dir := dirOf(stateDir)
	ents, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out []Left
	for _, e := range ents {
		id, ok := strings.CutSuffix(e.Name(), ".jsonl")
		if !ok {
			continue
		}
		path := filepath.Join(dir, e.Name())
		entries, err := read(path)
		left := Left{Build: id}
		if err != nil {
			left.Errors = append(left.Errors, err)
		}
		// Processes first (they may hold files open), then the rest,
		// newest first.
		for i := len(entries) - 1; i >= 0; i-- {
			if entries[i].Kind != Processes {
				continue
			}
			what, err := undo(entries[i])
			if err != nil {
				left.Errors = append(left.Errors, fmt.Errorf("%s: %w", entries[i], err))
			}
			left.Reclaimed = append(left.Reclaimed, what...)
		}
		for i := len(entries) - 1; i >= 0; i-- {
			if entries[i].Kind == Processes {
				continue
			}
			what, err := undo(entries[i])
			if err != nil {
				left.Errors = append(left.Errors, fmt.Errorf("%s: %w", entries[i], err))
			}
			left.Reclaimed = append(left.Reclaimed, what...)
		}
		// A loop device detached while its filesystem was still mounted
		// goes when the last user lets go (autoclear): wait for that.
		for _, e := range entries {
			if e.Kind != Dir {
				continue
			}
			if err := waitLoopsGone(e.Path); err != nil {
				left.Errors = append(left.Errors, err)
			}
		}
		if len(left.Errors) == 0 {
			_ = os.Remove(path)
		}
		out = append(out, left)
	}
	_ = os.Remove(dir)
	_ = os.Remove(stateDir) // only when empty
	return out, nil
}

// read returns the entries of a ledger file; a torn last line is ignored.
func read(path string) ([]Entry, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []Entry
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		var e Entry
		if json.Unmarshal(sc.Bytes(), &e) == nil {
			out = append(out, e)
		}
	}
	return out, sc.Err()
}

// undo reclaims one resource and says what it found.
func undo(e Entry) ([]string, error) {
	switch e.Kind {
	case Processes:
		pids := shell.Marked(e.Marker)
		if len(pids) == 0 {
			return nil, nil
		}
		if err := shell.KillMarked(e.Marker); err != nil {
			return nil, err
		}
		return []string{fmt.Sprintf("killed %d processes of the build", len(pids))}, nil
	case Cgroup:
		n, err := cgroup.Kill(e.Path)
		if err != nil || n == 0 {
			return nil, err
		}
		return []string{fmt.Sprintf("killed %d processes in the build's cgroup", n)}, nil
	case Dir:
		if _, err := os.Lstat(e.Path); errors.Is(err, fs.ErrNotExist) {
			return nil, nil
		}
		var did []string
		for _, dev := range LoopsUnder(e.Path) {
			if err := detach(dev); err != nil {
				return did, err
			}
			did = append(did, "detached "+dev)
		}
		if err := mount.UnmountAll(e.Path); err != nil {
			return did, fmt.Errorf("not removing %s: %w", e.Path, err)
		}
		if err := os.RemoveAll(e.Path); err != nil {
			return did, err
		}
		return append(did, "removed "+e.Path), nil
	case File:
		if _, err := os.Lstat(e.Path); errors.Is(err, fs.ErrNotExist) {
			return nil, nil
		}
		if err := os.RemoveAll(e.Path); err != nil {
			return nil, err
		}
		return []string{"removed " + e.Path}, nil
	case Glob:
		m, err := filepath.Glob(filepath.Join(e.Path, e.Pattern))
		if err != nil {
			return nil, err
		}
		sort.Strings(m)
		var did []string
		for _, p := range m {
			if err := os.RemoveAll(p); err != nil {
				return did, err
			}
			did = append(did, "removed "+p)
		}
		return did, nil
	}
	return nil, fmt.Errorf("unknown ledger entry kind %q", e.Kind)
}

// LoopsUnder lists the loop devices (/dev/loopN) whose backing file is
// path or lies under it, sorted; a backing file deleted since still counts.
func LoopsUnder(path string) []string {
	devs, _ := filepath.Glob("/sys/block/loop*/loop/backing_file")
	var out []string
	for _, p := range devs {
		b, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		f := strings.TrimSuffix(strings.TrimSpace(string(b)), " (deleted)")
		if f == path || strings.HasPrefix(f, path+"/") {
			out = append(out, "/dev/"+filepath.Base(filepath.Dir(filepath.Dir(p))))
		}
	}
	sort.Strings(out)
	return out
}

// loopWait bounds how long Reclaim waits for the loop devices over a
// directory's files to be released once it detached them.
const loopWait = 30 * time.Second

// waitLoopsGone waits until no loop device is backed by a file in dir,
// detaching again what is left (a device detached while in use is only
// marked for autoclear).
func waitLoopsGone(dir string) error {
	deadline := time.Now().Add(loopWait)
	for {
		devs := LoopsUnder(dir)
		if len(devs) == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("loop devices over %s still attached: %s", dir, strings.Join(devs, ", "))
		}
		for _, dev := range devs {
			_ = detach(dev)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// loopClrFD is LOOP_CLR_FD from linux/loop.h.
const loopClrFD = 0x4C01

// detach detaches a loop device (losetup -d).
func detach(dev string) error {
	f, err := os.Open(dev)
	if err != nil {
		return err
	}
	defer f.Close()
	if _, _, e := syscall.Syscall(syscall.SYS_IOCTL, f.Fd(), loopClrFD, 0); e != 0 {
		return fmt.Errorf("detach %s: %w", dev, e)
	}
	return nil
}
