package output

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/dibuild/dib/runtime/shell"
)

// DockerOptions describe the image a docker output carries.
type DockerOptions struct {
	// Target is the repository:tag (DIB's --docker-target); ":latest" when
	// no tag is given.
	Target string
	// Arch is DIB's ARCH (amd64, arm64, …), the config's architecture.
	Arch string
	// Created is recorded in the config and used as every header's time;
	// zero means the Unix epoch, so the archive is reproducible.
	Created time.Time
}

// Docker writes root as a `docker save` archive (manifest.json,
// repositories, one layer holding the whole tree, its config), which
// `docker load` and `podman load` accept. DIB pipes a tar into
// `docker import`; no engine runs here, so dib writes what an engine
// would read. Given the same tree, the bytes are the same.
func Docker(ctx context.Context, r *shell.Runner, root, dest string, o DockerOptions) error {
	repo, tag, err := splitTarget(o.Target)
	if err != nil {
		return err
	}
	return Atomic(dest, func(tmp string) error {
		dir := filepath.Dir(dest)
		raw, err := os.CreateTemp(dir, ".dib-docker-tree-")
		if err != nil {
			return err
		}
		raw.Close()
		defer os.Remove(raw.Name())
		if _, err := r.Run(ctx, shell.Command{Argv: TarArgv(root, raw.Name(), o.Created.Unix()), Prefix: "output/docker"}); err != nil {
			return err
		}
		layer, err := os.CreateTemp(dir, ".dib-docker-layer-")
		if err != nil {
			return err
		}
		defer os.Remove(layer.Name())
		defer layer.Close()
		diffID, size, err := writeLayer(ctx, raw.Name(), layer)
		if err != nil {
			return err
		}
		return writeDockerArchive(tmp, layer, size, diffID, repo, tag, o)
	})
}

// splitTarget splits repo[:tag]; a colon before the last slash belongs to
// a registry host:port.
func splitTarget(t string) (repo, tag string, err error) {
	if t == "" {
		return "", "", errors.New("docker output: no target (repository:tag) given")
	}
	repo, tag = t, "latest"
	if i := strings.LastIndex(t, ":"); i > strings.LastIndex(t, "/") {
		repo, tag = t[:i], t[i+1:]
	}
	if repo == "" || tag == "" || strings.ContainsAny(t, " \t\n") {
		return "", "", fmt.Errorf("docker output: bad target %q (want repository:tag)", t)
	}
	return repo, tag, nil
}

// writeLayer copies the GNU tar at src into w as the image layer: names
// without the "./" prefix, no entry for the root itself, access and change
// times dropped. It returns the layer's sha256 (the config's diff ID).
func writeLayer(ctx context.Context, src string, w io.Writer) (string, int64, error) {
	in, err := os.Open(src)
	if err != nil {
		return "", 0, err
	}
	defer in.Close()
	h := sha256.New()
	cw := &countWriter{w: io.MultiWriter(w, h)}
	tr := tar.NewReader(in)
	tw := tar.NewWriter(cw)
	for {
		if err := ctx.Err(); err != nil {
			return "", 0, err
		}
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return "", 0, fmt.Errorf("read tree tar: %w", err)
		}
		name := strings.TrimPrefix(hdr.Name, "./")
		if name == "" || name == "." {
			continue
		}
		hdr.Name = name
		if hdr.Typeflag == tar.TypeLink {
			hdr.Linkname = strings.TrimPrefix(hdr.Linkname, "./")
		}
		hdr.AccessTime, hdr.ChangeTime = time.Time{}, time.Time{}
		hdr.Format = tar.FormatUnknown
		for k := range hdr.PAXRecords {
			if k == "atime" || k == "ctime" || k == "mtime" || k == "path" || k == "linkpath" || k == "size" || k == "uid" || k == "gid" || k == "uname" || k == "gname" {
				delete(hdr.PAXRecords, k)
			}
		}
		if err := tw.WriteHeader(hdr); err != nil {
			return "", 0, fmt.Errorf("layer entry %s: %w", name, err)
		}
		if _, err := io.Copy(tw, tr); err != nil {
			return "", 0, err
		}
	}
	if err := tw.Close(); err != nil {
		return "", 0, err
	}
	return hex.EncodeToString(h.Sum(nil)), cw.n, nil
}

type countWriter struct {
	w io.Writer
	n int64
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// The config and manifest types list their fields in a fixed order, so the
// JSON (and its digest, the image ID) is reproducible.
type dockerConfig struct {
	Architecture string          `json:"architecture"`
	OS           string          `json:"os"`
	Created      string          `json:"created"`
	Config       dockerRunConfig `json:"config"`
	RootFS       dockerRootFS    `json:"rootfs"`
	History      []dockerHistory `json:"history"`
}

type dockerRunConfig struct {
	Env []string `json:"Env"`
	Cmd []string `json:"Cmd"`
}

type dockerRootFS struct {
	Type    string   `json:"type"`
	DiffIDs []string `json:"diff_ids"`
}

type dockerHistory struct {
	Created   string `json:"created"`
	CreatedBy string `json:"created_by"`
}

type dockerManifest struct {
	Config   string   `json:"Config"`
	RepoTags []string `json:"RepoTags"`
	Layers   []string `json:"Layers"`
}

// legacyLayerJSON is the per-layer json of the docker save v1.2 layout.
type legacyLayerJSON struct {
	ID      string          `json:"id"`
	Created string          `json:"created"`
	Config  dockerRunConfig `json:"config"`
	OS      string          `json:"os"`
}

func writeDockerArchive(path string, layer *os.File, size int64, diffID, repo, tag string, o DockerOptions) error {
	created := o.Created
	if created.IsZero() {
		created = time.Unix(0, 0)
	}
	created = created.UTC()
	stamp := created.Format(time.RFC3339)
	arch := o.Arch
	if arch == "" {
		arch = "amd64"
	}
	run := dockerRunConfig{Env: []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}, Cmd: []string{"/bin/bash"}}
	cfg, err := json.Marshal(dockerConfig{
		Architecture: arch, OS: "linux", Created: stamp, Config: run,
		RootFS:  dockerRootFS{Type: "layers", DiffIDs: []string{"sha256:" + diffID}},
		History: []dockerHistory{{Created: stamp, CreatedBy: "dib"}},
	})
	if err != nil {
		return err
	}
	cfgSum := sha256.Sum256(cfg)
	cfgName := hex.EncodeToString(cfgSum[:]) + ".json"
	layerID := diffID
	manifest, err := json.Marshal([]dockerManifest{{Config: cfgName, RepoTags: []string{repo + ":" + tag}, Layers: []string{layerID + "/layer.tar"}}})
	if err != nil {
		return err
	}
	repos, err := json.Marshal(map[string]map[string]string{repo: {tag: layerID}})
	if err != nil {
		return err
	}
	ljson, err := json.Marshal(legacyLayerJSON{ID: layerID, Created: stamp, Config: run, OS: "linux"})
	if err != nil {
		return err
	}

	f, err := os.OpenFile(path, os.O_WRONLY|os.O_TRUNC|os.O_CREATE, 0o644)
	if err != nil {
		return err
	}
	tw := tar.NewWriter(f)
	hdr := func(name string, mode int64, typ byte, size int64) *tar.Header {
		return &tar.Header{Name: name, Mode: mode, Typeflag: typ, Size: size, ModTime: created, Format: tar.FormatUSTAR}
	}
	add := func(name string, data []byte) error {
		if err := tw.WriteHeader(hdr(name, 0o644, tar.TypeReg, int64(len(data)))); err != nil {
			return err
		}
		_, err := tw.Write(data)
		return err
	}
	err = func() error {
		if err := tw.WriteHeader(hdr(layerID+"/", 0o755, tar.TypeDir, 0)); err != nil {
			return err
		}
		if err := add(layerID+"/VERSION", []byte("1.0")); err != nil {
			return err
		}
		if err := add(layerID+"/json", ljson); err != nil {
			return err
		}
		if err := tw.WriteHeader(hdr(layerID+"/layer.tar", 0o644, tar.TypeReg, size)); err != nil {
			return err
		}
		if _, err := layer.Seek(0, io.SeekStart); err != nil {
			return err
		}
		if n, err := io.Copy(tw, layer); err != nil || n != size {
			return fmt.Errorf("copy layer: %d of %d bytes: %v", n, size, err)
		}
		if err := add(cfgName, cfg); err != nil {
			return err
		}
		if err := add("manifest.json", manifest); err != nil {
			return err
		}
		if err := add("repositories", append(bytes.TrimSpace(repos), '\n')); err != nil {
			return err
		}
		return tw.Close()
	}()
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}
