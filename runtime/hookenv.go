package runtime

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/dibuild/dib/compiler/plan"
	"github.com/dibuild/dib/compiler/plan/layout"
)

// hostPython is DIB_PYTHON_EXEC: the python3 the hooks' PATH finds on
// the host (its system directories, not the caller's PATH), or "".
func hostPython() string {
	for _, dir := range strings.Split(SystemPath, ":") {
		p := filepath.Join(dir, "python3")
		if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() && fi.Mode().Perm()&0o111 != 0 {
			return p
		}
	}
	return ""
}

// writeElementDirs gives every element of the build a directory, for
// IMAGE_ELEMENT_YAML and get_image_element_array: an elements-path element
// keeps its own directory when it is there; a built-in one (or one whose
// directory is gone) is written to $TMP_BUILD_DIR/elements/NAME from the
// files it contributed to the plan's hook tree. They are returned in
// IMAGE_ELEMENT order.
func (b *Build) writeElementDirs(order []string) ([]plan.ElementDir, error) {
	buildDir := b.Workspace.BuildDir
	dirs := plan.ElementDirs(b.Plan, order, buildDir)
	byElement := map[string][]plan.File{}
	for _, f := range b.Plan.Files {
		byElement[f.Element] = append(byElement[f.Element], f)
	}
	for i, d := range dirs {
		own := filepath.Join(buildDir, plan.ElementsDir, d.Name)
		if d.Dir != own {
			if abs, err := filepath.Abs(d.Dir); err == nil {
				if fi, err := os.Stat(abs); err == nil && fi.IsDir() {
					dirs[i].Dir = abs
					continue
				}
			}
			dirs[i].Dir = own
		}
		if err := os.MkdirAll(own, 0o755); err != nil {
			return nil, err
		}
		for _, f := range byElement[d.Name] {
			if err := b.writePlanFile(own, f); err != nil {
				return nil, fmt.Errorf("element %s's directory: %w", d.Name, err)
			}
		}
	}
	return dirs, nil
}

// blockDeviceParams writes what disk-image-create gives its block-device
// layer before root.d: $TMP_BUILD_DIR/block-device/config.yaml (the
// plan's block-device config, or DIB's fallback when the build has no
// disk) and params.yaml, whose path hooks get as
// DIB_BLOCK_DEVICE_PARAMS_YAML.
func (b *Build) blockDeviceParams(fsType string) (string, error) {
	dir := filepath.Join(b.Workspace.BuildDir, "block-device")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	config := []byte(layout.FallbackConfig)
	rootLabel := ""
	if p := b.partition(); p != nil {
		if p.Config != "" {
			config = []byte(p.Config)
		}
		rootLabel = p.Params.RootLabel
	}
	configPath := filepath.Join(dir, "config.yaml")
	if err := os.WriteFile(configPath, config, 0o644); err != nil {
		return "", err
	}
	params := filepath.Join(dir, "params.yaml")
	text := fmt.Sprintf("config: %s\nimage-dir: %s\nroot-fs-type: %s\nroot-label: %s\nmount-base: %s\nbuild-dir: %s\n",
		configPath, b.Workspace.ImageDir, fsType, rootLabel, b.Workspace.MountPath, b.Workspace.BuildDir)
	return params, os.WriteFile(params, []byte(text), 0o644)
}

// partition is the plan's partition step, if the build makes a disk.
func (b *Build) partition() *plan.Partition {
	for _, s := range b.Plan.Steps {
		if s.Partition != nil {
			return s.Partition
		}
	}
	return nil
}

// AddBlockDeviceParams appends what disk-image-create adds to the
// block-device parameters once the image size is known and before the
// disk is created: image-size (KiB) and, when there are any, the root
// filesystem's mkfs options.
func (b *Build) AddBlockDeviceParams(sizeKiB int64, rootFSOpts string) error {
	path := filepath.Join(b.Workspace.BuildDir, "block-device", "params.yaml")
	f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	if errors.Is(err, fs.ErrNotExist) {
		return nil // a build not set up by Apply (the disk steps alone)
	}
	if err != nil {
		return err
	}
	text := fmt.Sprintf("image-size: %dKiB\n", sizeKiB)
	if rootFSOpts != "" {
		text += "root-fs-opts: '" + strings.ReplaceAll(rootFSOpts, "'", "''") + "'\n"
	}
	if _, err := f.WriteString(text); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
