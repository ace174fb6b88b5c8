package runtime

import (
	"fmt"
	"sort"
	"strconv"
	"strings"

	"github.com/dibuild/dib/compiler/plan"
	"github.com/dibuild/dib/compiler/plan/dibenv"
	"github.com/dibuild/dib/spec/diag"
)

// SystemPath is the PATH tail of every script, host or chroot.
const SystemPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// passThrough are the caller's variables every script keeps: the rest of
// dib's environment reaches scripts only through the plan's env entries
// (the Dibfile's env, from-env values), so a build does not depend on
// what happened to be exported.
var passThrough = []string{"HOME", "TERM", "USER", "LOGNAME", "LANG",
	"http_proxy", "https_proxy", "no_proxy", "HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY"}

// envLayout carries the runtime facts composeEnv adds to the plan's values.
type envLayout struct {
	Workspace  []string // TARGET_ROOT=…, TMP_BUILD_DIR=…, …
	HooksPath  string
	LibDir     string // $_LIB
	BinDir     string // dib's helper bin (dib-run-parts, sudo shim)
	ImageCache string
	DebugTrace int // > 0 overrides the plan's DIB_DEBUG_TRACE
	// ImagePath is the output directory's NAME, absolute: IMAGE_NAME as
	// DIB gives it to scripts (the -o path), so what elements write next
	// to the image (NAME.initramfs, NAME.kernel, …) lands among the
	// outputs, not in the scripts' working directory.
	ImagePath string
	// ManifestDir is NAME.d in the output directory: DIB's manifests
	// element copies there (DIB_MANIFEST_SAVE_DIR) unless the plan says.
	ManifestDir string
	// NoTmpfs and MinTmpfsGB are DIB_NO_TMPFS and DIB_MIN_TMPFS (0: 2).
	NoTmpfs    bool
	MinTmpfsGB int
	// Home is the caller's HOME (DIB_LOCKFILES is below it).
	Home string
	// ElementDirs are the elements and their directories, in
	// IMAGE_ELEMENT order: IMAGE_ELEMENT_YAML, get_image_element_array.
	ElementDirs []plan.ElementDir
	// BuiltinElements is the directory holding the built-in elements'
	// directories: ELEMENTS_PATH's last entry, as DIB's own elements
	// directory is.
	BuiltinElements string
	// BlockDeviceParams is DIB_BLOCK_DEVICE_PARAMS_YAML.
	BlockDeviceParams string
	// PythonExec is DIB_PYTHON_EXEC: DIB's wrapper exports the Python
	// running it; here the host's python3, empty when there is none.
	PythonExec string
}

// composeEnv returns the host-side and in-chroot environments of the
// build's scripts and the secret values to redact. Precedence, lowest
// first: the caller's pass-through variables, DIB's defaults from the
// plan's image, the plan's env, then runtime facts (workspace paths,
// _LIB, PATH), which no Dibfile can override.
func composeEnv(p *plan.Plan, getenv func(string) string, secrets map[string]string, l envLayout) (host, chroot, secretValues []string, err error) {
	vars := baseEnv(p, getenv, l)
	secretValues, err = addPlanEnv(vars, p, getenv, secrets)
	if err != nil {
		return nil, nil, nil, err
	}
	if l.DebugTrace > 0 {
		vars["DIB_DEBUG_TRACE"] = fmt.Sprint(l.DebugTrace)
	}
	for _, kv := range l.Workspace {
		k, v, _ := strings.Cut(kv, "=")
		vars[k] = v
	}
	vars["_LIB"] = l.LibDir
	if l.ElementDirs != nil {
		vars["IMAGE_ELEMENT_YAML"] = plan.ElementYAML(l.ElementDirs)
	}
	if l.BuiltinElements != "" {
		if vars["ELEMENTS_PATH"] != "" {
			vars["ELEMENTS_PATH"] += ":" + l.BuiltinElements
		} else {
			vars["ELEMENTS_PATH"] = l.BuiltinElements
		}
	}
	if l.BlockDeviceParams != "" {
		vars["DIB_BLOCK_DEVICE_PARAMS_YAML"] = l.BlockDeviceParams
	}
	if l.ImagePath != "" {
		vars["IMAGE_NAME"] = l.ImagePath
	}
	if vars["DIB_MANIFEST_SAVE_DIR"] == "" && l.ManifestDir != "" {
		// Not the script's working directory: the output directory.
		vars["DIB_MANIFEST_SAVE_DIR"] = l.ManifestDir + "/"
	}

	hostVars, err := hostEnv(vars, l)
	if err != nil {
		return nil, nil, nil, err
	}

	// In the chroot: DIB runs `chroot … env -u TMPDIR -u VIRTUAL_ENV`;
	// HOME is root's. TARGET_ROOT, a host path, is given to root.d and
	// cleanup.d only, never inside the chroot.
	chrootVars := clone(vars)
	delete(chrootVars, "TMPDIR")
	delete(chrootVars, "VIRTUAL_ENV")
	delete(chrootVars, "TARGET_ROOT")
	chrootVars["HOME"] = "/root"
	chrootVars["PATH"] = "/tmp/in_target.d/bin:" + SystemPath
	sort.Strings(secretValues)
	return list(hostVars), list(chrootVars), secretValues, nil
}

// baseEnv is what every build starts with: the caller's pass-through
// variables, DIB's defaults, then the image's own values.
func baseEnv(p *plan.Plan, getenv func(string) string, l envLayout) map[string]string {
	vars := map[string]string{}
	for _, k := range passThrough {
		if v := getenv(k); v != "" {
			vars[k] = v
		}
	}
	names := make([]string, 0, len(p.Elements))
	for _, e := range p.Elements {
		names = append(names, e.Name)
	}
	defaults := map[string]string{
		"ARCH":                    p.Image.Arch,
		"DIB_RELEASE":             p.Image.Release,
		"DISTRO_NAME":             p.Image.Family,
		"IMAGE_NAME":              p.Image.Name,
		"IMAGE_ELEMENT":           strings.Join(names, " "),
		"DIB_DEBUG_TRACE":         strconv.Itoa(dibenv.DebugTrace),
		"DIB_DEFAULT_INSTALLTYPE": dibenv.InstallType,
		"DIB_OFFLINE":             "",
		"DIB_PYTHON_EXEC":         l.PythonExec,
		"DIB_IMAGE_CACHE":         l.ImageCache,
	}
	for k, v := range dibDefaults(p, l) {
		vars[k] = v
	}
	for k, v := range defaults {
		vars[k] = v
	}
	return vars
}

// addPlanEnv adds the plan's variables to vars, a secret's from secrets or
// the caller's environment, and returns the secrets' values; a secret
// without a value is an error.
func addPlanEnv(vars map[string]string, p *plan.Plan, getenv func(string) string, secrets map[string]string) ([]string, error) {
	var secretValues []string
	var ds diag.Diagnostics
	for _, e := range p.Env {
		// What environment.d files derive is derived again before every
		// phase from the value the build starts with, as DIB does.
		e, ok := e.Input()
		if !ok {
			continue
		}
		v := e.Value
		if e.Secret {
			val, ok := secrets[e.Name]
			if !ok && e.FromEnv != "" {
				val = getenv(e.FromEnv)
				ok = val != ""
			}
			if !ok {
				ds = append(ds, diag.Errorf("secret %s has no value", e.Name).WithSubject(e.Name).
					WithHint("supply it when applying (its source: %s)", sourceOf(e)))
				continue
			}
			v = val
			if v != "" {
				secretValues = append(secretValues, v)
			}
		}
		vars[e.Name] = v
	}
	if ds.HasErrors() {
		return nil, ds.Err()
	}
	return secretValues, nil
}

// hostEnv is vars as host hooks see them: with DIB's exported functions,
// element-info's, and the hook tree's bin first on PATH.
func hostEnv(vars map[string]string, l envLayout) (map[string]string, error) {
	hostVars := clone(vars)
	fns, err := hostFunctions()
	if err != nil {
		return nil, err
	}
	for k, v := range fns {
		hostVars[k] = v
	}
	if l.ElementDirs != nil {
		// element-info's exported function; like die, sudo drops it on
		// the way into DIB's chroot.
		hostVars["BASH_FUNC_get_image_element_array%%"] = plan.ElementArrayFunction(l.ElementDirs)
	}
	hostPath := []string{l.HooksPath + "/bin"}
	if l.BinDir != "" {
		hostPath = append(hostPath, l.BinDir)
	}
	hostVars["PATH"] = strings.Join(append(hostPath, SystemPath), ":")
	return hostVars, nil
}

func sourceOf(e plan.EnvVar) string {
	if e.FromEnv != "" {
		return "environment variable " + e.FromEnv
	}
	return e.Origin.String()
}

func clone(m map[string]string) map[string]string {
	out := make(map[string]string, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

func list(m map[string]string) []string {
	out := make([]string, 0, len(m))
	for k, v := range m {
		out = append(out, k+"="+v)
	}
	sort.Strings(out)
	return out
}
