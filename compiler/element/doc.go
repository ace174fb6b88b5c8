// Package element resolves diskimage-builder elements the way upstream DIB
// does, and turns them into data the plan compiler and the runtime can use
// without ever walking an element directory again.
//
// Resolve reproduces, rule by rule, what `disk-image-create` does before the
// first hook runs (checked against ../shared/oracle/elements by
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
// DIB iterates the expanded elements in bash associative-array order (hash
// order, different from run to run) when it merges hooks and looks for a
// block-device config, and in Python set order when it queues element-deps.
// dib fixes these orders:
//
//   - hooks are merged, and block-device configs searched, in the expanded
//     elements' bytewise name order; where the result depends on that order
//     (a nested file such as static/etc/foo.conf that two elements provide
//     with different content, two elements that both ship a block-device
//     config, two install-type directories linking the same name) a Warning
//     diagnostic says so. Top-level element files (element-deps, README.rst,
//     package-installs.yaml, …) are also copied to the root of the hook tree
//     by DIB, where nothing reads them; there the last element in name order
//     wins silently;
//   - each element's element-deps are queued in file order (first occurrence
//     of a name), and the element-provides of one element are checked in
//     file order;
//   - when several requested elements are also provided, they are logged in
//     request order.
//
// The Result carries the whole merged tree (Files) with content and hash,
// every expanded element's own directory (Elements, as an fs.FS), and the
// per-phase lists the runtime executes (Phase.Run).
package element
