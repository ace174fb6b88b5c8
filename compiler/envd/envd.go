// Package envd evaluates the environment.d files of a build as DIB's
// dib-run-parts does before every phase: bash sources them one after the
// other, in the given order, under `set -eu -o pipefail`, starting from the
// build's exported variables. The result is the set of exported variables
// each file leaves, with the file that last set each one.
//
// The files run in a clean environment: only the given variables, a fixed
// PATH and LC_ALL=C, a new network namespace when the kernel allows one,
// a working directory of its own and a time limit. Paths of the scratch
// tree that show up in values are replaced by the names of the variables
// that hold them ($TMP_HOOKS_PATH, $TMP_MOUNT_PATH, $TMP_BUILD_DIR), so the
// same inputs always give the same result.
package envd

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
)

// DefaultTimeout bounds the sourcing of all files of one build.
const DefaultTimeout = 30 * time.Second

// Path is the PATH the files see (DIB's PATH tail of every hook).
const Path = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// Var is one exported variable.
type Var struct {
	Name  string
	Value string
	// File is the index in Input.Files of the file that last set or
	// changed the variable; -1 when the value is the one given in
	// Input.Env.
	File int
}

// File is one environment.d file in sourcing order.
type File struct {
	// Path is the file's path in the hook tree: "environment.d/NN-name".
	Path string
	// Element provided it (for the caller's messages).
	Element string
}

// TreeEntry is one entry of the hook tree written for the files to see:
// the environment.d files themselves, and whatever they reach relative to
// their own location (an element's bin/ helpers).
type TreeEntry struct {
	Path    string // slash-separated, relative to the hook tree
	Mode    fs.FileMode
	Link    string // symlink target when Mode has fs.ModeSymlink
	Content []byte
}

// Input is what Evaluate sources.
type Input struct {
	// Env are the variables exported before the first file, in any order.
	Env []Var
	// Files are sourced in this order.
	Files []File
	// Tree is written into the scratch hook tree; it must hold every
	// file of Files.
	Tree []TreeEntry
	// Timeout bounds the whole evaluation; 0 means DefaultTimeout.
	Timeout time.Duration
	// Bash is the shell to run; "" means "bash" from PATH.
	Bash string
}

// Failure is a file that did not source: bash stopped in it.
type Failure struct {
	// File is the index in Input.Files; -1 when bash failed before the
	// first file.
	File int
	// Line is the failing line of the file, 0 when bash did not say.
	Line int
	// Message is bash's own message (the last line it printed about the
	// file), or what stopped it (exit status, time limit).
	Message string
	// Stderr are the last lines the evaluation printed.
	Stderr []string
}

func (f *Failure) Error() string {
	if f.Line > 0 {
		return fmt.Sprintf("line %d: %s", f.Line, f.Message)
	}
	return f.Message
}

// internal names bash itself exports or the driver uses; never results.
var bashOwn = map[string]bool{"PWD": true, "OLDPWD": true, "SHLVL": true, "_": true}

// Evaluate sources the files and returns the exported variables they
// leave, sorted by name: every variable of in.Env still exported (changed
// or not) and every variable a file exported. The scratch variables
// (PATH, LC_ALL, TMP_HOOKS_PATH, …) are returned only when a file changed
// them. A file that fails to source is returned as *Failure; other errors
// (no bash) as plain errors.
func Evaluate(ctx context.Context, in Input) ([]Var, error) {
	dir, err := os.MkdirTemp("", "dib-envd-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	hooks := filepath.Join(dir, "hooks")
	mnt := filepath.Join(dir, "mnt")
	for _, d := range []string{hooks, filepath.Join(mnt, "etc"), filepath.Join(dir, "work")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, err
		}
	}
	if err := writeTree(hooks, in.Tree); err != nil {
		return nil, err
	}
	for _, f := range in.Files {
		if !validRel(f.Path) {
			return nil, fmt.Errorf("environment file %q is not a path inside the hook tree", f.Path)
		}
	}
	scratch := map[string]string{
		"PATH":           Path,
		"LC_ALL":         "C",
		"TMP_HOOKS_PATH": hooks,
		"TMP_MOUNT_PATH": mnt,
		"TARGET_ROOT":    mnt,
		"TMP_BUILD_DIR":  dir,
	}
	env := map[string]string{}
	for k, v := range scratch {
		env[k] = v
	}
	given := map[string]string{}
	for _, v := range in.Env {
		if !validName(v.Name) {
			return nil, fmt.Errorf("invalid variable name %q", v.Name)
		}
		env[v.Name] = v.Value
		given[v.Name] = v.Value
	}
	outPath := filepath.Join(dir, "out")
	script := driver(outPath, hooks, in.Files)
	if err := os.WriteFile(filepath.Join(dir, "driver.bash"), []byte(script), 0o644); err != nil {
		return nil, err
	}
	if err := os.WriteFile(outPath, nil, 0o600); err != nil {
		return nil, err
	}
	asNobody := os.Geteuid() == 0 && traversable(filepath.Dir(dir))
	if asNobody {
		// The files run as nobody: they read the tree, write only the
		// snapshots and their working directory.
		for _, p := range []string{outPath, filepath.Join(dir, "work")} {
			if err := os.Chown(p, Nobody, Nobody); err != nil {
				return nil, err
			}
		}
		if err := os.Chmod(dir, 0o755); err != nil {
			return nil, err
		}
	}

	timeout := in.Timeout
	if timeout == 0 {
		timeout = DefaultTimeout
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	bash, err := findBash(in.Bash)
	if err != nil {
		return nil, err
	}
	var stderr bytes.Buffer
	// The files run in a directory of their own, as DIB's run in the
	// caller's working directory.
	runErr := run(ctx, bash, filepath.Join(dir, "driver.bash"), filepath.Join(dir, "work"), envList(env), &stderr, asNobody)
	out, _ := os.ReadFile(outPath)
	snaps, begun, errLine := parse(out)

	repl := strings.NewReplacer(hooks, "$TMP_HOOKS_PATH", mnt, "$TMP_MOUNT_PATH", dir, "$TMP_BUILD_DIR")
	if runErr != nil || len(snaps) != len(in.Files)+1 {
		return nil, failure(ctx, in.Files, runErr, begun, errLine, repl.Replace(stderr.String()), timeout)
	}

	return origins(snaps, len(in.Files), given, scratch, repl), nil
}

// findBash is the bash that sources the files: in.Bash, by default bash
// on the caller's PATH, else on Path.
func findBash(bash string) (string, error) {
	if bash == "" {
		bash = "bash"
	}
	if strings.Contains(bash, "/") {
		return bash, nil
	}
	p, err := exec.LookPath(bash)
	if err == nil {
		return p, nil
	}
	if p := lookIn(bash, Path); p != "" {
		return p, nil
	}
	return "", fmt.Errorf("environment.d files are sourced by bash, which is not installed: %w", err)
}

// failure says why sourcing stopped: the file begun last, the line that
// failed when bash names it, and the last lines of stderr (its scratch
// paths already written as the variables).
func failure(ctx context.Context, files []File, runErr error, begun, errLine int, stderr string, timeout time.Duration) *Failure {
	f := &Failure{File: begun, Stderr: tail(stderr, 20)}
	if ctx.Err() != nil {
		f.Message = fmt.Sprintf("not done after %s (environment.d files must not wait for anything)", timeout)
	} else if begun >= 0 && begun < len(files) {
		f.Line, f.Message = failingLine(f.Stderr, files[begun].Path)
		if f.Line == 0 && errLine > 0 {
			f.Line = errLine
		}
	}
	if f.Message == "" {
		f.Message = "sourcing stopped"
		var ee *exec.ExitError
		if errors.As(runErr, &ee) && f.Line > 0 {
			f.Message = fmt.Sprintf("a command failed (exit status %d)", ee.ExitCode())
		} else if errors.As(runErr, &ee) {
			f.Message = fmt.Sprintf("sourcing stopped with exit status %d", ee.ExitCode())
		} else if runErr != nil {
			f.Message = runErr.Error()
		}
	}
	return f
}

// origins are the variables of the last snapshot (snaps[0] is before the
// first of n files), each with the last file whose snapshot changed its
// value; the scratch variables and bash's own are left out unless a file
// or the caller set them.
func origins(snaps []map[string]string, n int, given, scratch map[string]string, repl *strings.Replacer) []Var {
	// Origins: the last file whose snapshot changed the value.
	final := snaps[len(snaps)-1]
	var vars []Var
	for name, val := range final {
		if bashOwn[name] {
			continue
		}
		origin := -1
		for i := n; i >= 1; i-- {
			prev, had := snaps[i-1][name]
			if !had || prev != val {
				origin = i - 1
				break
			}
		}
		if origin == -1 {
			if g, ok := given[name]; !ok || g != val {
				// Unchanged by any file and not given: a scratch
				// variable, or one bash made itself.
				if _, isScratch := scratch[name]; isScratch || snaps[0][name] == val {
					continue
				}
			}
		}
		vars = append(vars, Var{Name: name, Value: repl.Replace(val), File: origin})
	}
	slices.SortFunc(vars, func(a, b Var) int { return strings.Compare(a.Name, b.Name) })
	return vars
}

// driver is the bash program: DIB's dib-run-parts options, then each file
// sourced by its full path in the hook tree, as dib-run-parts does, with a
// snapshot of the exported variables after it. Snapshots go to fd 9 as
// NUL-separated records.
func driver(out, hooks string, files []File) string {
	var b strings.Builder
	fmt.Fprintf(&b, "exec 9>>%s || exit 1\n", quote(out))
	b.WriteString(`__dib_envd_snap() {
  local __dib_envd_n
  printf 'SNAP\0%s\0' "$1"
  for __dib_envd_n in $(compgen -e); do
    if [[ -v $__dib_envd_n ]]; then
      printf 'V\0%s\0%s\0' "$__dib_envd_n" "${!__dib_envd_n}"
    fi
  done
} >&9
trap 'printf "ERR\0%s\0" "$LINENO" >&9' ERR
set -ue
set -o pipefail
__dib_envd_snap 0
`)
	for i, f := range files {
		fmt.Fprintf(&b, "printf 'BEGIN\\0%%s\\0' %d >&9\nsource %s\n__dib_envd_snap %d\n", i, quote(hooks+"/"+f.Path), i+1)
	}
	return b.String()
}

// parse reads the driver's records: the snapshots, the index of the last
// file begun and the line of the last ERR trap.
func parse(out []byte) (snaps []map[string]string, begun, errLine int) {
	begun = -1
	fields := strings.Split(string(out), "\x00")
	for i := 0; i < len(fields); i++ {
		switch fields[i] {
		case "SNAP":
			if i+1 < len(fields) {
				snaps = append(snaps, map[string]string{})
				i++
			}
		case "V":
			if i+2 < len(fields) && len(snaps) > 0 {
				snaps[len(snaps)-1][fields[i+1]] = fields[i+2]
				i += 2
			}
		case "BEGIN":
			if i+1 < len(fields) {
				begun, _ = strconv.Atoi(fields[i+1])
				errLine = 0
				i++
			}
		case "ERR":
			if i+1 < len(fields) {
				errLine, _ = strconv.Atoi(fields[i+1])
				i++
			}
		}
	}
	return snaps, begun, errLine
}

var bashMsg = regexp.MustCompile(`^(.*?): line ([0-9]+): (.*)$`)

// failingLine finds bash's message about file in its stderr: "FILE: line
// N: MESSAGE". The last one wins.
func failingLine(stderr []string, file string) (int, string) {
	for i := len(stderr) - 1; i >= 0; i-- {
		m := bashMsg.FindStringSubmatch(stderr[i])
		if m == nil || (m[1] != file && !strings.HasSuffix(m[1], "/"+file)) {
			continue
		}
		n, _ := strconv.Atoi(m[2])
		return n, m[3]
	}
	if len(stderr) > 0 {
		return 0, stderr[len(stderr)-1]
	}
	return 0, ""
}

func tail(s string, n int) []string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) == 1 && lines[0] == "" {
		return nil
	}
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return lines
}

func writeTree(root string, tree []TreeEntry) error {
	for _, e := range tree {
		if !validRel(e.Path) {
			return fmt.Errorf("hook tree entry %q is not a relative path", e.Path)
		}
		p := filepath.Join(root, filepath.FromSlash(e.Path))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return err
		}
		switch {
		case e.Mode.IsDir():
			if err := os.MkdirAll(p, 0o755); err != nil {
				return err
			}
		case e.Mode&fs.ModeSymlink != 0:
			if err := os.Symlink(e.Link, p); err != nil {
				return err
			}
		default:
			if err := os.WriteFile(p, e.Content, e.Mode.Perm()|0o444); err != nil {
				return err
			}
		}
	}
	return nil
}

// traversable reports whether every directory from dir up to / lets any
// user through (nobody must reach the scratch tree).
func traversable(dir string) bool {
	for d := dir; ; d = filepath.Dir(d) {
		st, err := os.Stat(d)
		if err != nil || st.Mode().Perm()&0o001 == 0 {
			return false
		}
		if d == filepath.Dir(d) {
			return true
		}
	}
}

func validRel(p string) bool {
	return p != "" && !path.IsAbs(p) && path.Clean(p) == p && p != ".." && !strings.HasPrefix(p, "../")
}

var nameRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

func validName(n string) bool { return nameRE.MatchString(n) }

func envList(m map[string]string) []string {
	out := make([]string, 0, len(m))
	for k, v := range m {
		out = append(out, k+"="+v)
	}
	slices.Sort(out)
	return out
}

func quote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }

func lookIn(name, pathList string) string {
	for _, d := range filepath.SplitList(pathList) {
		p := filepath.Join(d, name)
		if st, err := os.Stat(p); err == nil && !st.IsDir() && st.Mode()&0o111 != 0 {
			return p
		}
	}
	return ""
}
