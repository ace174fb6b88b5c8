package blockdev

import (
	"errors"
	"fmt"
	"io/fs"
	"path"
)

// PresetElement returns the element that provides a preset's
// configuration: "block-device-" + preset.
func PresetElement(preset string) string { return "block-device-" + preset }

// PresetConfig reads the block-device configuration of a preset (mbr, gpt,
// efi, efi-4k, efi-lvm) from elements, an fs.FS whose top-level
// directories are elements, as DIB picks it for an element:
// block-device-<arch>.yaml when the element has one, else
// block-device-default.yaml. It returns the file's path inside elements.
func PresetConfig(elements fs.FS, preset, arch string) (string, []byte, error) {
	dir := PresetElement(preset)
	var names []string
	if arch != "" {
		names = append(names, path.Join(dir, "block-device-"+arch+".yaml"))
	}
	names = append(names, path.Join(dir, "block-device-default.yaml"))
	for _, n := range names {
		b, err := fs.ReadFile(elements, n)
		if err == nil {
			return n, b, nil
		}
		if !errors.Is(err, fs.ErrNotExist) {
			return "", nil, err
		}
	}
	return "", nil, fmt.Errorf("element %s has no block-device-default.yaml", dir)
}
