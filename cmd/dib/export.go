package main

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/dibuild/dib/fleet"
	"github.com/dibuild/dib/spec/diag"
)

// ExportCmd writes what runs the builds on another engine.
type ExportCmd struct {
	K8s ExportK8sCmd `cmd:"" name:"k8s" help:"Write a Kubernetes Job per image and a kustomization.yaml for the set."`
}

// ExportK8sCmd writes the Kubernetes set of a Dibfile.
type ExportK8sCmd struct {
	PlanInput
	File         string `arg:"" optional:"" default:"Dibfile" help:"The Dibfile or plan file (default: Dibfile)."`
	Out          string `short:"o" required:"" placeholder:"DIR" help:"The directory of the set (made if missing): NAME.plan.json and NAME.job.yaml per image, kustomization.yaml."`
	Registry     string `placeholder:"REGISTRY/REPO" env:"DIB_CACHE_REGISTRY" help:"The OCI repository of the shared build cache: each Job pulls from and pushes to it (dib apply --cache-from/--cache-to)."`
	Dest         string `placeholder:"DEST" required:"" help:"Where each Job writes its image's outputs: pvc:CLAIM[/DIR] (a PersistentVolumeClaim, a subdirectory per image) or host:/DIR (a node's directory)."`
	BuilderImage string `name:"builder-image" placeholder:"IMAGE" help:"The container image of the builds: dib and the host tools of the plans (docs/fleet.md)."`
	Namespace    string `short:"n" placeholder:"NS" help:"The Kubernetes namespace of the Jobs (default: kubectl's)."`
	CPU          string `name:"cpu" default:"2" help:"CPU requested by each build."`
	Memory       string `default:"8Gi" help:"Memory requested by each build (a tmpfs build counts here)."`
}

// Help is shown by `dib export k8s --help`.
func (ExportK8sCmd) Help() string {
	return `One plan is one Job. Each Job runs 'dib apply' on its image's plan, delivered
through a ConfigMap, in a privileged pod; steps built by any Job reach the
others through the registry cache. Apply the set with kubectl apply -k DIR.
Plans with secret variables read them from the Secret dib-secrets (one key per
variable). See docs/fleet.md.

Examples:
  dib export k8s -o fleet/ --registry registry.example:5000/dib-cache \
      --dest pvc:images --builder-image registry.example:5000/dib:0.1 Dibfile
  kubectl apply -k fleet/ && kubectl wait --for=condition=complete job -l app.kubernetes.io/name=dib`
}

// Run compiles and writes the set.
func (c ExportK8sCmd) Run(g *Globals) error {
	plans, err := loadPlans(g, c.File, c.PlanInput)
	if err != nil {
		return err
	}
	files, ds := fleet.K8s(plans, fleet.K8sOptions{Registry: c.Registry, Output: c.Dest, BuilderImage: c.BuilderImage, Namespace: c.Namespace, CPU: c.CPU, Memory: c.Memory})
	if err := ds.WriteText(g.Stderr); err != nil {
		return err
	}
	if ds.HasErrors() {
		return exitError{code: exitUsage}
	}
	if st, err := os.Stat(c.Out); err == nil && !st.IsDir() {
		_ = diag.Diagnostics{diag.Errorf("-o %s: a file; the set is several files, so -o names a directory", c.Out).
			WithHint("give a directory (made if missing)")}.WriteText(g.Stderr)
		return exitError{code: exitUsage}
	}
	if err := os.MkdirAll(c.Out, 0o755); err != nil {
		return err
	}
	var names []string
	for _, f := range files {
		if err := writeFileAtomic(filepath.Join(c.Out, f.Name), func(w io.Writer) error { _, err := w.Write(f.Data); return err }); err != nil {
			return err
		}
		names = append(names, f.Name)
	}
	fmt.Fprintf(g.Stderr, "wrote %d Jobs to %s (%s); run them with kubectl apply -k %s\n", len(plans), c.Out, strings.Join(names, ", "), c.Out)
	return nil
}
