// Package element resolves diskimage-builder elements the way upstream DIB
// does, and turns them into data the plan compiler and the runtime can use
// without ever walking an element directory again.
//
// Resolve reproduces, rule by rule, what `disk-image-create` does before the
// first hook runs (checked against testdata/oracle/elements by
// TestOracleElements):
//
//   - the element list (lib/common-functions:arg_to_elements): the requested
//     elements, the `vm` defaults rule (block-device-efi on arm64/aarch64,
//     else block-device-mbr, unless a block-device-* element is named),
//     `base` prepended unless SkipBase, the ramdisk element prepended for
//     ramdisk builds;
//   - the search path (element_dependencies.py:_find_all_elements): the
//     first Source holding an element wins, the whole directory replaces
//     later ones, a Source that is not a directory is InvalidElementDir;
//   - the expansion (_expand_element_dependencies): DIB's FIFO queue over
//     element-deps and element-provides with its exact exceptions and
//     messages; cycles are accepted; provided names are removed;
//   - the merged hook tree (generate_hooks / copy_hooks_not_overwrite): a
//     top-level entry present twice in any element subdirectory is DIB's
//     "duplicated hook" error, nested directories merge, top-level element
//     files overwrite;
//   - dib-run-parts: which files of each phase directory run and in which
//     order (`LC_ALL=C sort -n`, see lessRunParts), which are skipped and why;
//   - environment.d order (bytewise), with the 11-dib-install-type.bash file
//     disk-image-create writes after root.d;
//   - the block-device config DIB would pick;
//   - install types, as the install-types element links them into install.d.
//
// # Deterministic order where DIB is random
//
// DIB's element_dependencies.py keeps elements in Python sets, whose
// iteration order depends on the per-process string hash seed, and
// generate_hooks walks a bash associative array filled in that order. So
// the order in which DIB queues element-deps, checks an element's
// provides, lists the expanded elements (IMAGE_ELEMENT), merges hooks and
// searches block-device configs changes from run to run. dib fixes it to
// the order DIB itself produces with PYTHONHASHSEED=0, the setting the
// oracle was recorded with: pyset.go reproduces CPython 3.11's str hash
// (SipHash-1-3, zero key) and set table layout, and bash 5's FNV-1
// associative-array order (Result.ElementOrder, Result.CopyOrder). The
// emulation is checked against the oracle's image_element_order and
// hook_copy_order and, when python3.11 is installed, against CPython.
//
// Where the outcome of a real DIB run depends on that random order, dib
// still reports it as a Warning diagnostic: a nested file such as
// static/etc/foo.conf that two elements provide with different content
// (the element copied last wins), two elements that both ship a
// block-device config (the first searched wins), two install-type
// directories linking the same name. Top-level element files
// (element-deps, README.rst, package-installs.yaml, …) are also copied to
// the root of the hook tree, where nothing reads them; there the last
// element copied wins silently.
//
// The Result carries the whole merged tree (Files) with content and hash,
// every expanded element's own directory (Elements, as an fs.FS), and the
// per-phase lists the runtime executes (Phase.Run).
package element
