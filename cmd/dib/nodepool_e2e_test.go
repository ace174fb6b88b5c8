package main

import (
	"archive/zip"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/dibuild/dib/runtime/boot"
)

const nodepoolExample = "../../examples/nodepool-debian.yaml"

// TestNodepoolDebianEndToEnd builds the nodepool-style example
// (debian-minimal vm simple-init growroot devuser openssh-server, glean
// from git as nodepool installs it) and boots it as nodepool's clouds
// do: a disk larger than the image, a network card and a config drive.
//
// PyPI and opendev are not reachable, so the build is given what a DIB
// user gives it to build their own glean: DIB_REPOLOCATION_glean names a
// local git repository holding a small glean (gleanStandIn: it reads the
// config drive at boot and writes the hostname, root's SSH keys and the
// ifupdown configuration of the card network_data.json names), and
// PIP_INDEX_URL a local index serving the pbr the repo install type
// installs first. The build's bootstrap comes from the VM example's
// build cache (the same debootstrap), so it costs the rest of the build.
//
// In the guest: glean's unit ran, the hostname is the config drive's, the
// card has the static address network_data.json gives (not one from
// QEMU's DHCP), root has the config drive's key, and growroot grew the
// root partition to the end of the larger disk.
//
// Cost (2 shared cores, TCG): about 290 s of build after the cached
// bootstrap and one boot of about 230 s (login prompt after ~190 s).
func TestNodepoolDebianEndToEnd(t *testing.T) {
	requireE2E(t)
	vmDir, _ := sharedVMBuild(t) // sets DEV_PASSWORD
	dir := t.TempDir()
	glean := gleanStandIn(t, filepath.Join(dir, "glean"))
	index := httptest.NewServer(pbrIndex(t))
	defer index.Close()

	src, err := os.ReadFile(nodepoolExample)
	if err != nil {
		t.Fatal(err)
	}
	overrides := "\nenv:\n  DIB_REPOLOCATION_glean: " + glean + "\n  DIB_REPOREF_glean: standin\n  PIP_INDEX_URL: " + index.URL + "/simple/\n"
	dibfile := filepath.Join(dir, "nodepool-debian.yaml")
	if err := os.WriteFile(dibfile, []byte(strings.Replace(string(src), "\nenv:\n", overrides, 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "out")
	code, stdout, stderr := runDib(t, "apply", "--install-host-tools", "--json", "--no-color",
		"--cache-dir", filepath.Join(vmDir, "step-cache"), "-O", out, dibfile)
	if code != 0 {
		t.Fatalf("apply: exit %d\n%s", code, stderr)
	}
	var built float64
	bootstrapCached := false
	for _, line := range strings.Split(strings.TrimSpace(stdout), "\n") {
		var e struct {
			Type, Kind string
			Seconds    float64
		}
		if json.Unmarshal([]byte(line), &e) != nil {
			continue
		}
		if e.Type == "step-cached" && e.Kind == "bootstrap" {
			bootstrapCached = true
		}
		if e.Type == "step-finished" {
			built += e.Seconds
		}
	}
	t.Logf("build: %.0f s in steps", built)
	if !bootstrapCached {
		t.Error("the bootstrap did not come from the VM example's build cache")
	}
	qcow := filepath.Join(out, "nodepool-debian.qcow2")
	for _, f := range []string{qcow, qcow + ".md5", qcow + ".sha256"} {
		if _, err := os.Stat(f); err != nil {
			t.Errorf("output missing (DIB_CHECKSUM=1 is md5 and sha256): %v", err)
		}
	}
	// The qemu-img options nodepool passes reach the file: a version 2
	// qcow2 (compat 0.10), converted by qemu-img, the step's host tool.
	var img struct {
		Specific struct {
			Data struct{ Compat string } `json:"data"`
		} `json:"format-specific"`
	}
	if err := json.Unmarshal([]byte(sh(t, "qemu-img", "info", "--output=json", qcow)), &img); err != nil || img.Specific.Data.Compat != "0.10" {
		t.Errorf("qcow2 compat %q (%v), want 0.10 from qemu-img-options", img.Specific.Data.Compat, err)
	}
	// The image records the glean it was built with (source-repositories).
	rev := strings.TrimSpace(sh(t, "git", "-C", glean, "rev-parse", "standin"))
	if b, err := os.ReadFile(filepath.Join(out, "nodepool-debian.d", "dib-manifests", "dib-manifest-git-nodepool-debian")); err != nil || !strings.Contains(string(b), "glean git /tmp/glean.git "+glean+" "+rev) {
		t.Errorf("git manifest %q %v, want glean at %s", b, err, rev)
	}

	// The instance's disk: the image grown by 2 GiB, as a flavor's disk is
	// larger than the image.
	disk := filepath.Join(dir, "instance.qcow2")
	sh(t, "cp", qcow, disk)
	sh(t, "qemu-img", "resize", disk, "+2G")
	var info struct {
		VirtualSize int64 `json:"virtual-size"`
	}
	if err := json.Unmarshal([]byte(sh(t, "qemu-img", "info", "--output=json", disk)), &info); err != nil {
		t.Fatal(err)
	}
	drive := configDrive(t, filepath.Join(dir, "config-2"))

	// One line per fact, "np-NAME=VALUE" (printf's format keeps the echoed
	// command from matching).
	check := `f() { printf 'np-%s=%s\n' "$1" "$2"; }; ` +
		`f glean "$(systemctl is-active glean.service)"; ` +
		`f host "$(hostname)"; ` +
		`f addr "$(ip -4 -o addr show scope global | awk '{print $4}' | sort | tr '\n' ' ')"; ` +
		`f route "$(ip -4 route show default | awk '{print $3}')"; ` +
		`f key "$(sudo -n cat /root/.ssh/authorized_keys)"; ` +
		`f growroot "$(systemctl show -P Result growroot.service)"; ` +
		`f disk "$(lsblk -bdno SIZE /dev/vda)"; ` +
		`f rootend "$(( $(cat /sys/class/block/$(basename $(findmnt -no SOURCE /))/start) + $(cat /sys/class/block/$(basename $(findmnt -no SOURCE /))/size) ))"; ` +
		`f rootfs "$(df -B1 --output=size / | tail -1)"`
	code, stdout, stderr = bootDib(t, "boot", "--no-kvm", "--timeout", "900s", "--nic", "--config-drive", drive,
		"--login", "devuser:e2e-pass", "--command", check, disk)
	t.Logf("boot: %s%s", stdout, stderr)
	if code != 0 {
		t.Fatalf("boot: exit %d", code)
	}
	got := map[string]string{}
	for _, m := range regexp.MustCompile(`(?m)^np-(\w+)=(.*)$`).FindAllStringSubmatch(stdout, -1) {
		got[m[1]] = strings.TrimSpace(m[2])
	}
	for k, want := range map[string]string{
		"glean":    "active",
		"host":     "np-node-1",
		"addr":     "10.0.2.42/24",
		"route":    "10.0.2.2",
		"key":      configDriveKey,
		"growroot": "success",
	} {
		if got[k] != want {
			t.Errorf("%s in the guest: %q, want %q", k, got[k], want)
		}
	}
	num := func(k string) int64 {
		n, err := strconv.ParseInt(got[k], 10, 64)
		if err != nil {
			t.Errorf("%s in the guest: %q", k, got[k])
		}
		return n
	}
	// growroot: the root partition ends at the end of the grown disk (the
	// last 33 sectors hold the backup GPT, if any), and the filesystem
	// is larger than the image was.
	diskBytes, rootEnd, rootfs := num("disk"), num("rootend")*512, num("rootfs")
	if diskBytes != info.VirtualSize || diskBytes-rootEnd > 1<<20 {
		t.Errorf("the root partition ends at %d bytes of a %d-byte disk (qemu-img: %d): not grown", rootEnd, diskBytes, info.VirtualSize)
	}
	if rootfs <= info.VirtualSize-2<<30 {
		t.Errorf("the root filesystem is %d bytes, no larger than the image (%d)", rootfs, info.VirtualSize-2<<30)
	}
}

const configDriveKey = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIEwp6e2v1aGNfVd8cV1fWY8fxbH2Ck3tyvV5tZGx0GKy np@test"

// configDrive writes an OpenStack config drive (an ISO labelled config-2
// with openstack/latest/{meta_data,network_data}.json) naming the card
// `dib boot --nic` attaches, with a static address on QEMU's user network.
func configDrive(t *testing.T, dir string) string {
	t.Helper()
	latest := filepath.Join(dir, "openstack", "latest")
	if err := os.MkdirAll(latest, 0o755); err != nil {
		t.Fatal(err)
	}
	meta := map[string]any{
		"uuid":        "4f6b2e4a-5a2b-4d1c-9a8e-2f6f2b0c1d3e",
		"name":        "np-node-1",
		"hostname":    "np-node-1.example.org",
		"public_keys": map[string]string{"np": configDriveKey},
	}
	network := map[string]any{
		"links": []map[string]any{{"id": "tap0", "type": "phy", "ethernet_mac_address": boot.NICMAC, "mtu": 1500}},
		"networks": []map[string]any{{
			"id": "network0", "type": "ipv4", "link": "tap0",
			"ip_address": "10.0.2.42", "netmask": "255.255.255.0",
			"routes": []map[string]any{{"network": "0.0.0.0", "netmask": "0.0.0.0", "gateway": "10.0.2.2"}},
		}},
		"services": []map[string]any{{"type": "dns", "address": "10.0.2.3"}},
	}
	for name, v := range map[string]any{"meta_data.json": meta, "network_data.json": network} {
		b, _ := json.Marshal(v)
		if err := os.WriteFile(filepath.Join(latest, name), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	iso := dir + ".iso"
	sh(t, "xorriso", "-as", "mkisofs", "-quiet", "-V", "config-2", "-J", "-r", "-o", iso, dir)
	return iso
}

// gleanStandIn makes a git repository at dir holding a small glean with
// glean's commands: glean-install (at build time) installs and enables
// glean.service; at boot glean.sh mounts the config drive and glean
// writes the hostname, root's authorized_keys and, for each network of
// network_data.json whose link's MAC is a card here, its ifupdown file
// (then networking.service brings it up). The commit is on branch
// "standin".
func gleanStandIn(t *testing.T, dir string) string {
	t.Helper()
	files := map[string]string{
		"setup.py": "from setuptools import setup\n" +
			"setup(name='glean', version='0.0.1', scripts=['glean', 'glean.sh', 'glean-install'])\n",
		"glean-install": `#!/bin/sh
# glean-install [--use-nm] [--no-dhcp-fallback]: run glean at every boot,
# before the network comes up.
set -eu
cat > /etc/systemd/system/glean.service <<'EOF'
[Unit]
Description=glean: configure the instance from its config drive
DefaultDependencies=no
Wants=systemd-udev-settle.service network-pre.target
After=systemd-udev-settle.service local-fs.target
Before=network-pre.target networking.service shutdown.target

[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=/usr/local/bin/glean.sh

[Install]
WantedBy=multi-user.target
EOF
systemctl enable glean.service
`,
		"glean.sh": `#!/bin/sh
# Mount the config drive (label config-2) and configure from it.
set -eu
dev=$(blkid -t LABEL=config-2 -o device | head -n 1)
if [ -z "$dev" ]; then
    echo "glean: no config drive"
    exit 0
fi
mkdir -p /mnt/config
mount -o ro "$dev" /mnt/config
rc=0
/usr/local/bin/glean --config /mnt/config || rc=$?
umount /mnt/config
exit $rc
`,
		"glean": `#!/usr/bin/env python3
"""Configure the hostname, root's SSH keys and the network from an
OpenStack config drive (openstack/latest)."""
import argparse
import ipaddress
import json
import os
import subprocess

p = argparse.ArgumentParser()
p.add_argument("--config", default="/mnt/config")
p.add_argument("--root", default="/")
a = p.parse_args()
latest = os.path.join(a.config, "openstack", "latest")


def path(name):
    return os.path.join(a.root, name.lstrip("/"))


with open(os.path.join(latest, "meta_data.json")) as f:
    meta = json.load(f)
try:
    with open(os.path.join(latest, "network_data.json")) as f:
        net = json.load(f)
except FileNotFoundError:
    net = {}

name = meta.get("hostname") or meta.get("name")
if name:
    short = name.split(".")[0]
    with open(path("/etc/hostname"), "w") as f:
        f.write(short + "\n")
    with open(path("/etc/hosts"), "a") as f:
        f.write("127.0.1.1 %s %s\n" % (name, short))
    if a.root == "/":
        subprocess.run(["hostname", short], check=True)
    print("glean: hostname", short)

keys = meta.get("public_keys") or {}
if keys:
    ssh = path("/root/.ssh")
    os.makedirs(ssh, mode=0o700, exist_ok=True)
    with open(os.path.join(ssh, "authorized_keys"), "w") as f:
        for k in sorted(keys):
            f.write(keys[k].strip() + "\n")
    os.chmod(os.path.join(ssh, "authorized_keys"), 0o600)

cards = {}
sysnet = path("/sys/class/net")
for card in os.listdir(sysnet):
    try:
        with open(os.path.join(sysnet, card, "address")) as f:
            cards[f.read().strip().lower()] = card
    except OSError:
        pass
links = {l["id"]: l for l in net.get("links", [])}
for n in net.get("networks", []):
    link = links.get(n.get("link"), {})
    card = cards.get(link.get("ethernet_mac_address", "").lower())
    if not card:
        continue
    lines = ["auto " + card]
    if n["type"] == "ipv4":
        prefix = ipaddress.ip_network("0.0.0.0/" + n["netmask"]).prefixlen
        lines += ["iface %s inet static" % card, "    address %s/%d" % (n["ip_address"], prefix)]
        for r in n.get("routes", []):
            if r["network"] == "0.0.0.0":
                lines.append("    gateway " + r["gateway"])
    else:
        lines.append("iface %s inet dhcp" % card)
    os.makedirs(path("/etc/network/interfaces.d"), exist_ok=True)
    with open(path("/etc/network/interfaces.d/%s.cfg" % card), "w") as f:
        f.write("\n".join(lines) + "\n")
    print("glean: configured", card)
`,
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for name, body := range files {
		mode := os.FileMode(0o755)
		if name == "setup.py" {
			mode = 0o644
		}
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), mode); err != nil {
			t.Fatal(err)
		}
	}
	git := func(args ...string) {
		t.Helper()
		cmd := exec.Command("git", append([]string{"-C", dir}, args...)...)
		cmd.Env = append(os.Environ(), "GIT_AUTHOR_NAME=dib", "GIT_AUTHOR_EMAIL=dib@example.org", "GIT_COMMITTER_NAME=dib",
			"GIT_COMMITTER_EMAIL=dib@example.org", "GIT_AUTHOR_DATE=2026-01-01T00:00:00Z", "GIT_COMMITTER_DATE=2026-01-01T00:00:00Z")
		if b, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("git %s: %v\n%s", strings.Join(args, " "), err, b)
		}
	}
	git("init", "-q", "-b", "standin")
	git("add", ".")
	git("commit", "-q", "-m", "glean stand-in")
	return dir
}

// pbrIndex serves a package index (PEP 503) with one package, pbr: an
// empty wheel, which is all the stand-in glean's build needs of it.
func pbrIndex(t *testing.T) http.Handler {
	t.Helper()
	const wheel = "pbr-6.0.0-py3-none-any.whl"
	var buf strings.Builder
	zw := zip.NewWriter(&buf)
	for _, f := range []struct{ name, body string }{
		{"pbr/__init__.py", ""},
		{"pbr-6.0.0.dist-info/METADATA", "Metadata-Version: 2.1\nName: pbr\nVersion: 6.0.0\n"},
		{"pbr-6.0.0.dist-info/WHEEL", "Wheel-Version: 1.0\nGenerator: dib-test\nRoot-Is-Purelib: true\nTag: py3-none-any\n"},
		{"pbr-6.0.0.dist-info/RECORD", "pbr/__init__.py,,\npbr-6.0.0.dist-info/METADATA,,\npbr-6.0.0.dist-info/WHEEL,,\npbr-6.0.0.dist-info/RECORD,,\n"},
	} {
		w, err := zw.Create(f.name)
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprint(w, f.body)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	body := buf.String()
	mux := http.NewServeMux()
	mux.HandleFunc("/simple/pbr/", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "<html><body><a href=\"/files/%s\">%s</a></body></html>\n", wheel, wheel)
	})
	mux.HandleFunc("/files/"+wheel, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/zip")
		fmt.Fprint(w, body)
	})
	return mux
}
