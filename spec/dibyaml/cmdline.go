package dibyaml

import (
	"fmt"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/dibuild/dib/spec/diag"
)

// The two programs of diskimage-builder's command line. They are one
// script that looks at its own name (DIB's lib/disk-image-create).
const (
	DiskImageCreate    = "disk-image-create"
	RamdiskImageCreate = "ramdisk-image-create"
)

// CommandLine is one disk-image-create or ramdisk-image-create invocation:
// its flags and positional elements, and the environment it ran in. It
// becomes a Dibfile through the same key mapping as a DIB YAML file (DIB's
// YAML front end is itself a table of these flags), so the two front ends
// cannot drift apart.
type CommandLine struct {
	// Program is DiskImageCreate or RamdiskImageCreate.
	Program string
	// Args are the arguments as given, without dib's own options: what
	// diskimage-builder would have been given (DIB_ARGS).
	Args []string
	// Help and Version are -h/--help and --version.
	Help, Version bool
	// PrintDibfile and PrintPlan are dib's own additions: print the
	// equivalent Dibfile, or the plan, and build nothing.
	PrintDibfile, PrintPlan bool
	// AllowUnknownRelease builds a release dib does not list for its
	// distribution (dib's addition; DIB does not check releases).
	AllowUnknownRelease bool

	// OutputDir is the directory part of -o (IMAGE_NAME may be a path):
	// "" for the current directory.
	OutputDir string
	// Break is DIB's break= variable, split at commas.
	Break []string
	// NoTmpfs, MinTmpfs, ImageCache and Logfile are how the build runs
	// (DIB_NO_TMPFS, DIB_MIN_TMPFS, DIB_IMAGE_CACHE, --logfile), from the
	// flags or else the environment, with DIB's defaults.
	NoTmpfs    bool
	MinTmpfs   int
	ImageCache string
	Logfile    string

	// values are the keys of the image in DIB YAML form (imagename,
	// types, elements, environment, ...), plus elements-path and fs-type,
	// which DIB takes only from the environment.
	values map[string]any
	// order is the flag of each key, for messages.
	flagOf map[string]string
	ds     diag.Diagnostics
}

// option is one getopt option of disk-image-create.
type option struct {
	name   string // "a", "checksum"
	hasArg bool
	dib    bool // one of dib's own additions, not DIB's
}

// DIB's getopt lists (`getopt -o a:ho:t:xucnp: -l …`), plus the two
// options DIB documents and handles but forgot in the getopt list
// (--image-extra-size, --mkfs-journal-size), plus dib's own.
var (
	shortOptions = map[byte]bool{ // letter -> takes an argument
		'a': true, 'h': false, 'o': true, 't': true, 'x': false,
		'u': false, 'c': false, 'n': false, 'p': true,
	}
	longOptions = []option{
		{"checksum", false, false}, {"no-tmpfs", false, false}, {"offline", false, false},
		{"help", false, false}, {"version", false, false},
		{"min-tmpfs", true, false}, {"image-size", true, false}, {"image-extra-size", true, false},
		{"image-cache", true, false}, {"max-online-resize", true, false},
		{"mkfs-journal-size", true, false}, {"mkfs-options", true, false},
		{"qemu-img-options", true, false}, {"ramdisk-element", true, false},
		{"root-label", true, false}, {"install-type", true, false},
		{"docker-target", true, false}, {"logfile", true, false},
		{"print-dibfile", false, true}, {"print-plan", false, true}, {"allow-unknown-release", false, true},
	}
)

// UsageError is a command line getopt refuses; DIB prints it and exits 1.
type UsageError struct{ Program, Message string }

func (e *UsageError) Error() string { return e.Program + ": " + e.Message }

// ParseCommandLine reads the arguments of disk-image-create or
// ramdisk-image-create (program) the way DIB's getopt does: options and
// elements in any order, "--" ends the options, bundled short options
// (-xx), attached values (-oNAME, --image-size=5) and unambiguous
// abbreviations of long options (--check). environ is the environment
// (os.Environ()); DIB takes ELEMENTS_PATH, every DIB_* variable and the
// defaults of several flags (ARCH, IMAGE_NAME, ROOT_LABEL, FS_TYPE, …)
// from it, and break= for its breakpoints.
func ParseCommandLine(program string, args, environ []string) (*CommandLine, error) {
	cl := &CommandLine{Program: program, values: map[string]any{}, flagOf: map[string]string{}}
	if program != DiskImageCreate && program != RamdiskImageCreate {
		return nil, fmt.Errorf("unknown program %q", program)
	}
	var elements []string
	var opts [][2]string // name, value, in order
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a != "--" && strings.HasPrefix(a, "--") && !strings.Contains(a, "=") {
			if o, err := lookupLong(program, a[2:]); err == nil && o.dib {
				opts = append(opts, [2]string{o.name, ""})
				continue
			}
		}
		start := i
		switch {
		case a == "--":
			elements = append(elements, args[i+1:]...)
			i = len(args)
		case strings.HasPrefix(a, "--"):
			name, value, hasValue := strings.Cut(a[2:], "=")
			o, err := lookupLong(program, name)
			if err != nil {
				return nil, err
			}
			switch {
			case o.hasArg && !hasValue:
				if i+1 >= len(args) {
					return nil, &UsageError{program, fmt.Sprintf("option '--%s' requires an argument", o.name)}
				}
				i++
				value = args[i]
			case !o.hasArg && hasValue:
				return nil, &UsageError{program, fmt.Sprintf("option '--%s' doesn't allow an argument", o.name)}
			}
			opts = append(opts, [2]string{o.name, value})
		case len(a) > 1 && a[0] == '-':
			for j := 1; j < len(a); j++ {
				c := a[j]
				takesArg, ok := shortOptions[c]
				if !ok {
					return nil, &UsageError{program, fmt.Sprintf("invalid option -- '%c'", c)}
				}
				if !takesArg {
					opts = append(opts, [2]string{string(c), ""})
					continue
				}
				value := a[j+1:]
				if value == "" {
					if i+1 >= len(args) {
						return nil, &UsageError{program, fmt.Sprintf("option requires an argument -- '%c'", c)}
					}
					i++
					value = args[i]
				}
				opts = append(opts, [2]string{string(c), value})
				break
			}
		default:
			elements = append(elements, a)
		}
		cl.Args = append(cl.Args, args[start:min(i+1, len(args))]...)
	}
	env := map[string]string{}
	clear := false
	for _, o := range opts {
		if o[0] == "c" {
			clear = true
		}
	}
	if !clear { // -c: DIB re-executes itself with an empty environment
		for _, kv := range environ {
			if k, v, ok := strings.Cut(kv, "="); ok {
				env[k] = v
			}
		}
	}
	cl.apply(opts, elements, env)
	return cl, nil
}

// lookupLong finds a long option by name or unambiguous prefix, as
// getopt_long does.
func lookupLong(program, name string) (option, error) {
	var matches []option
	for _, o := range longOptions {
		if o.name == name {
			return o, nil
		}
		if strings.HasPrefix(o.name, name) && name != "" {
			matches = append(matches, o)
		}
	}
	switch len(matches) {
	case 1:
		return matches[0], nil
	case 0:
		return option{}, &UsageError{program, fmt.Sprintf("unrecognized option '--%s'", name)}
	}
	names := make([]string, len(matches))
	for i, m := range matches {
		names[i] = "'--" + m.name + "'"
	}
	return option{}, &UsageError{program, fmt.Sprintf("option '--%s' is ambiguous; possibilities: %s", name, strings.Join(names, " "))}
}

// flagVariables are the variables DIB's flags set: a flag wins over the
// same variable in the environment, so the variable is not copied to env.
var flagVariables = map[string]string{
	"checksum": "DIB_CHECKSUM", "image-size": "DIB_IMAGE_SIZE", "image-extra-size": "DIB_IMAGE_EXTRA_SIZE",
	"image-cache": "DIB_IMAGE_CACHE", "mkfs-journal-size": "DIB_JOURNAL_SIZE", "min-tmpfs": "DIB_MIN_TMPFS",
	"no-tmpfs": "DIB_NO_TMPFS", "offline": "DIB_OFFLINE", "install-type": "DIB_DEFAULT_INSTALLTYPE",
	"x": "DIB_DEBUG_TRACE",
}

// notCopied are DIB_ variables that are no part of the caller's image
// configuration: those DIB sets itself, and dib's own (its mount-namespace
// marker, build cache, build ID and test switches).
var notCopied = map[string]bool{
	"DIB_ARGS": true, "DIB_ENV": true, "DIB_PYTHON_EXEC": true,
	"DIB_MOUNT_NS_PARENT": true, "DIB_CACHE_DIR": true, "DIB_BUILD_ID": true,
	"DIB_REQUIRE_INTEGRATION": true, "DIB_E2E": true,
}

// apply turns the options, elements and environment into DIB YAML keys,
// with DIB's precedence: a flag, else the variable DIB reads as its
// default, else DIB's default.
func (cl *CommandLine) apply(opts [][2]string, elements []string, env map[string]string) {
	v := cl.values
	set := func(key, flag string, val any) { v[key] = val; cl.flagOf[key] = flag }
	given := map[string]bool{}
	trace := 0
	var name string
	nameGiven := false
	for _, o := range opts {
		flag, val := o[0], o[1]
		given[flag] = true
		dash := "--" + flag
		if len(flag) == 1 {
			dash = "-" + flag
		}
		switch flag {
		case "h", "help":
			cl.Help = true
		case "version":
			cl.Version = true
		case "print-dibfile":
			cl.PrintDibfile = true
		case "print-plan":
			cl.PrintPlan = true
		case "allow-unknown-release":
			cl.AllowUnknownRelease = true
		case "a":
			set("arch", dash, val)
		case "o":
			name, nameGiven = val, true
		case "t":
			var types []any
			for _, t := range strings.Split(val, ",") {
				if t != "" {
					types = append(types, t)
				}
			}
			set("types", dash, types)
		case "x":
			trace++
		case "u":
			set("uncompressed", dash, true)
		case "c":
			// handled by the caller: the environment is not read
		case "n":
			set("skip-base", dash, true)
		case "p":
			old, _ := v["packages"].([]any)
			for _, p := range strings.Split(val, ",") {
				if p != "" {
					old = append(old, p)
				}
			}
			set("packages", dash, old)
		case "checksum", "no-tmpfs", "offline":
			set(flag, dash, true)
		case "image-size", "image-extra-size", "max-online-resize", "min-tmpfs", "mkfs-journal-size":
			set(flag, dash, number(val))
		case "image-cache", "mkfs-options", "root-label", "ramdisk-element", "install-type", "docker-target", "logfile":
			set(flag, dash, val)
		case "qemu-img-options":
			set(flag, dash, keyValues(val))
		}
	}
	if cl.Program == RamdiskImageCreate {
		v["ramdisk"] = true
	}

	// Variables DIB reads as the defaults of its flags.
	if _, ok := v["arch"]; !ok && env["ARCH"] != "" {
		set("arch", "ARCH", env["ARCH"])
	}
	if !nameGiven && env["IMAGE_NAME"] != "" {
		name, nameGiven = env["IMAGE_NAME"], true
	}
	if _, ok := v["root-label"]; !ok && env["ROOT_LABEL"] != "" {
		set("root-label", "ROOT_LABEL", env["ROOT_LABEL"])
	}
	if env["FS_TYPE"] != "" {
		set("fs-type", "FS_TYPE", env["FS_TYPE"])
	}
	if _, ok := v["skip-base"]; !ok && env["SKIP_BASE"] == "1" {
		set("skip-base", "SKIP_BASE", true)
	}
	if _, ok := v["ramdisk-element"]; !ok && cl.Program == RamdiskImageCreate && env["RAMDISK_ELEMENT"] != "" {
		set("ramdisk-element", "RAMDISK_ELEMENT", env["RAMDISK_ELEMENT"])
	}
	if _, ok := v["max-online-resize"]; !ok && env["MAX_ONLINE_RESIZE"] != "" {
		set("max-online-resize", "MAX_ONLINE_RESIZE", number(env["MAX_ONLINE_RESIZE"]))
	}
	if _, ok := v["qemu-img-options"]; !ok && env["QEMU_IMG_OPTIONS"] != "" {
		set("qemu-img-options", "QEMU_IMG_OPTIONS", keyValues(env["QEMU_IMG_OPTIONS"]))
	}
	if p := env["ELEMENTS_PATH"]; p != "" {
		var dirs []any
		for _, d := range strings.Split(p, ":") {
			if d != "" {
				dirs = append(dirs, d)
			}
		}
		set("elements-path", "ELEMENTS_PATH", dirs)
	}
	if b := env["break"]; b != "" {
		cl.Break = strings.Split(b, ",")
	}

	// -x adds to DIB_DEBUG_TRACE.
	if trace > 0 {
		base, _ := strconv.Atoi(env["DIB_DEBUG_TRACE"])
		level := base + trace
		if level > 2 {
			cl.ds = append(cl.ds, diag.Warningf("trace level %d (-x given %d times, DIB_DEBUG_TRACE=%q) is more than elements use; using 2", level, trace, env["DIB_DEBUG_TRACE"]))
			level = 2
		}
		set("debug-trace", "-x", int64(level))
	}

	// The output name: -o may be a path; a single type's extension is
	// dropped (-o image.qcow2 -t qcow2 writes image.qcow2).
	if nameGiven {
		types, _ := v["types"].([]any)
		if len(types) == 0 {
			types = []any{"qcow2"}
		}
		if len(types) == 1 {
			name = strings.TrimSuffix(name, "."+fmt.Sprint(types[0]))
		}
		dir, base := filepath.Split(name)
		cl.OutputDir = filepath.Clean(dir)
		if dir == "" {
			cl.OutputDir = ""
		}
		v["imagename"] = base
		cl.flagOf["imagename"] = "-o"
	}
	if len(elements) > 0 {
		els := make([]any, len(elements))
		for i, e := range elements {
			els[i] = e
		}
		set("elements", "ELEMENT", els)
	}

	// Every other DIB_ variable is the build's environment, as DIB
	// exports it to the hooks; what a flag set is not copied.
	skip := map[string]bool{}
	for f, variable := range flagVariables {
		if given[f] {
			skip[variable] = true
		}
	}
	environment := map[string]any{}
	for k, val := range env {
		if strings.HasPrefix(k, "DIB_") && !notCopied[k] && !skip[k] {
			environment[k] = val
		}
	}
	if len(environment) > 0 {
		v["environment"] = environment
	}

	// How the build runs, with DIB's defaults (ramdisk-image-create does
	// not use a tmpfs unless told to).
	noTmpfs := env["DIB_NO_TMPFS"]
	minTmpfs := env["DIB_MIN_TMPFS"]
	if minTmpfs == "" {
		minTmpfs = "2"
	}
	if cl.Program == RamdiskImageCreate {
		if noTmpfs == "" {
			noTmpfs = "1"
			set("no-tmpfs", "ramdisk-image-create", true)
		}
		if env["DIB_MIN_TMPFS"] == "" {
			minTmpfs = "1"
		}
	}
	cl.NoTmpfs = given["no-tmpfs"] || noTmpfs == "1"
	if n, ok := v["min-tmpfs"].(int64); ok {
		cl.MinTmpfs = int(n)
	} else if n, err := strconv.Atoi(minTmpfs); err == nil {
		cl.MinTmpfs = n
	}
	if s, ok := v["image-cache"].(string); ok {
		cl.ImageCache = s
	} else {
		cl.ImageCache = env["DIB_IMAGE_CACHE"]
	}
	cl.Logfile, _ = v["logfile"].(string)
}

// number reads a flag value as DIB's shell arithmetic would: an integer,
// else a decimal number; anything else is kept as text for the Dibfile's
// validation to report.
func number(s string) any {
	if n, err := strconv.ParseInt(s, 10, 64); err == nil {
		return n
	}
	if f, err := strconv.ParseFloat(s, 64); err == nil {
		return f
	}
	return s
}

// keyValues reads --qemu-img-options "compat=0.10,lazy_refcounts=on".
func keyValues(s string) map[string]any {
	m := map[string]any{}
	for _, kv := range strings.Split(s, ",") {
		if kv == "" {
			continue
		}
		k, val, _ := strings.Cut(kv, "=")
		m[k] = val
	}
	return m
}

// Dibfile returns the Dibfile equivalent to the command line, with
// warnings (values converted with a change of meaning). The Dibfile is
// validated with the Dibfile loader; on errors the output is nil. path
// names the command line in diagnostics.
func (cl *CommandLine) Dibfile(path string) ([]byte, diag.Diagnostics) {
	ds := append(diag.Diagnostics(nil), cl.ds...)
	for i := range ds {
		ds[i].File = path
	}
	name, _ := cl.values["imagename"].(string)
	if name == "" {
		name = "image"
	}
	e := &entry{name: name, values: cl.values, where: map[string]string{}}
	for k, f := range cl.flagOf {
		e.where[k] = f
	}
	c := &converter{path: path, flagOf: cl.flagOf}
	header := fmt.Sprintf("# The Dibfile of: %s\n", shellQuote(append([]string{cl.Program}, cl.Args...)))
	if cl.OutputDir != "" {
		header += fmt.Sprintf("# Outputs go to %s: dib apply -O %s\n", cl.OutputDir, shellQuote([]string{cl.OutputDir}))
	}
	out := c.renderWith(header, []*entry{e})
	ds = append(ds, c.ds...)
	return c.check(out, ds)
}

// shellQuote renders arguments so a shell reads them back unchanged.
func shellQuote(args []string) string {
	out := make([]string, len(args))
	for i, a := range args {
		if a != "" && strings.IndexFunc(a, func(r rune) bool {
			return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("-_./=:,+@%", r))
		}) < 0 {
			out[i] = a
			continue
		}
		out[i] = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
	}
	return strings.Join(out, " ")
}

// HasElements reports whether the command line names any element.
func (cl *CommandLine) HasElements() bool {
	els, _ := cl.values["elements"].([]any)
	return len(els) > 0
}
