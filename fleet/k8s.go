// Package fleet turns plans into work for an existing distributed engine:
// one plan is one job. K8s writes a Kubernetes Job per image, each running
// `dib apply` on its plan (delivered through a ConfigMap) in a privileged
// pod that pulls from and pushes to the shared registry cache, and a
// kustomization.yaml that applies the set.
//
// The manifests are plain Go structs, not the k8s.io/api types: the few
// fields dib writes do not justify linking Kubernetes' API machinery into
// dib, and the tests decode every manifest strictly with the real types
// (and build the set with kustomize), so a field that does not exist or is
// misplaced fails there.
package fleet

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"regexp"
	"strings"

	"github.com/goccy/go-yaml"

	"github.com/dibuild/dib/compiler/plan"
	"github.com/dibuild/dib/spec/diag"
)

// K8sOptions are what the Jobs need to know about the cluster.
type K8sOptions struct {
	// Registry is the OCI repository of the build cache (REGISTRY/REPO):
	// every Job pulls from it and pushes to it.
	Registry string
	// Output is where each Job writes its image's outputs (--dest):
	// pvc:CLAIM[/DIR] (a PersistentVolumeClaim, one subdirectory per
	// image) or host:/DIR (a directory of the node, for one-node clusters).
	Output string
	// BuilderImage is the container image with dib and its host tools.
	BuilderImage string
	// Namespace of the Jobs ("": the namespace kubectl uses).
	Namespace string
	// CPU and Memory are each pod's resource requests (Kubernetes
	// quantities), so the scheduler runs as many builds at once as the
	// nodes hold.
	CPU, Memory string
}

// File is one file of the exported set.
type File struct {
	Name string
	Data []byte
}

// CacheKeyName is the key of the Secret dib-secrets holding the key the
// Jobs share to digest secret values in cache keys.
const CacheKeyName = "dib-cache-secret-key"

// The paths inside the builder's container.
const (
	planMount   = "/etc/dib/plan"
	secretMount = "/etc/dib/secrets"
	outputMount = "/output"
	workMount   = "/var/tmp/dib"
	cacheMount  = "/var/cache"
	// maxPlan is what a ConfigMap holds (1 MiB), less room for its name.
	maxPlan = 1<<20 - 4096
)

// K8s returns the files of the Kubernetes set for plans: NAME.plan.json
// and NAME.job.yaml per image, in the plans' order, then kustomization.yaml.
// The same plans and options give the same bytes.
func K8s(plans []*plan.Plan, opt K8sOptions) ([]File, diag.Diagnostics) {
	out, ds := parseOutput(opt.Output)
	ds = append(ds, opt.check()...)
	names := map[string]string{}
	var files []File
	k := kustomization{APIVersion: "kustomize.config.k8s.io/v1beta1", Kind: "Kustomization", Namespace: opt.Namespace}
	for _, p := range plans {
		base := dnsLabel(p.Image.Name, 63-len("dib-plan-"))
		if other, dup := names[base]; dup {
			ds = append(ds, diag.Errorf("images %s and %s have the same Kubernetes name %s", other, p.Image.Name, base).
				WithHint("Kubernetes names are lower case: rename one image, or export one with --image NAME"))
			continue
		}
		names[base] = p.Image.Name
		var pj bytes.Buffer
		if err := p.WriteJSON(&pj); err != nil {
			ds = append(ds, diag.Errorf("image %s: %v", p.Image.Name, err))
			continue
		}
		if pj.Len() > maxPlan {
			ds = append(ds, diag.Errorf("image %s: its plan is %d bytes; a ConfigMap holds at most %d", p.Image.Name, pj.Len(), maxPlan).
				WithHint("a plan carries its elements' files: leave large files out of the elements, or fetch them in a step"))
			continue
		}
		planFile, jobFile := p.Image.Name+".plan.json", p.Image.Name+".job.yaml"
		job := opt.job(p, base, out)
		data, err := yaml.MarshalWithOptions(job, yaml.IndentSequence(true))
		if err != nil {
			ds = append(ds, diag.Errorf("image %s: %v", p.Image.Name, err))
			continue
		}
		head := fmt.Sprintf("# The build of image %s: dib apply of %s in a privileged pod.\n# Written by dib export k8s; apply the set with kubectl apply -k.\n", p.Image.Name, planFile)
		files = append(files, File{planFile, pj.Bytes()}, File{jobFile, append(append([]byte(head), data...), '\n')})
		k.Resources = append(k.Resources, jobFile)
		k.ConfigMapGenerator = append(k.ConfigMapGenerator, configMapArgs{Name: "dib-plan-" + base, Files: []string{"plan.json=" + planFile}})
	}
	if ds.HasErrors() {
		return nil, ds
	}
	data, err := yaml.MarshalWithOptions(k, yaml.IndentSequence(true))
	if err != nil {
		return nil, diag.Diagnostics{diag.Errorf("kustomization: %v", err)}
	}
	head := "# One Job per image of the Dibfile, each with its plan in a ConfigMap.\n# Written by dib export k8s. Run the builds: kubectl apply -k DIR\n"
	return append(files, File{"kustomization.yaml", append(append([]byte(head), data...), '\n')}), ds
}

// output is a parsed K8sOptions.Output.
type output struct {
	claim, dir string // pvc:CLAIM/DIR
	host       string // host:/DIR
}

// parseOutput reads pvc:CLAIM[/DIR] or host:/DIR.
func parseOutput(s string) (output, diag.Diagnostics) {
	hint := "give pvc:CLAIM[/DIR] (a PersistentVolumeClaim, one subdirectory per image) or host:/DIR (a directory on the node)"
	kind, rest, _ := strings.Cut(s, ":")
	switch kind {
	case "pvc":
		claim, dir, _ := strings.Cut(rest, "/")
		if !dnsSubdomain.MatchString(claim) {
			return output{}, diag.Diagnostics{diag.Errorf("--dest %s: %q is not a PersistentVolumeClaim name", s, claim).WithHint("%s", hint)}
		}
		return output{claim: claim, dir: strings.Trim(dir, "/")}, nil
	case "host":
		if !strings.HasPrefix(rest, "/") {
			return output{}, diag.Diagnostics{diag.Errorf("--dest %s: the node's directory must be an absolute path", s).WithHint("%s", hint)}
		}
		return output{host: strings.TrimRight(rest, "/")}, nil
	}
	return output{}, diag.Diagnostics{diag.Errorf("--dest %q: not an output destination", s).WithHint("%s", hint)}
}

var (
	dnsSubdomain = regexp.MustCompile(`^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$`)
	dnsLabelRE   = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$`)
	quantity     = regexp.MustCompile(`^[0-9]+(\.[0-9]+)?(m|k|M|G|T|P|E|Ki|Mi|Gi|Ti|Pi|Ei)?$`)
)

// check reports the options a cluster would refuse.
func (o K8sOptions) check() diag.Diagnostics {
	var ds diag.Diagnostics
	if o.Registry == "" {
		ds = append(ds, diag.Errorf("no registry cache: the Jobs share built steps only through one").
			WithHint("give --registry REGISTRY/REPO (or DIB_CACHE_REGISTRY), where every Job pulls and pushes step results"))
	}
	if o.BuilderImage == "" {
		ds = append(ds, diag.Errorf("no builder image: the Jobs run dib in a container").
			WithHint("give --builder-image IMAGE, an image with dib and the host tools its plans list (docs/fleet.md)"))
	}
	if o.Namespace != "" && !dnsLabelRE.MatchString(o.Namespace) {
		ds = append(ds, diag.Errorf("--namespace %q is not a Kubernetes namespace name", o.Namespace).
			WithHint("lower-case letters, digits and '-', at most 63"))
	}
	for _, q := range []struct{ flag, v string }{{"--cpu", o.CPU}, {"--memory", o.Memory}} {
		if !quantity.MatchString(q.v) {
			ds = append(ds, diag.Errorf("%s %q is not a Kubernetes quantity", q.flag, q.v).WithHint("e.g. --cpu 2 --memory 8Gi"))
		}
	}
	return ds
}

// dnsLabel makes an image name a DNS label of at most max characters:
// lower case, '.' and '_' as '-'; a longer name is cut and ends with a
// digest of the whole name, so two long names stay apart.
func dnsLabel(name string, max int) string {
	s := strings.Map(func(r rune) rune {
		switch {
		case r >= 'A' && r <= 'Z':
			return r + 'a' - 'A'
		case r == '.' || r == '_':
			return '-'
		}
		return r
	}, name)
	if len(s) > max {
		sum := sha256.Sum256([]byte(name))
		s = s[:max-9] + "-" + hex.EncodeToString(sum[:4])
	}
	return strings.Trim(s, "-")
}

// job is the Job of plan p, named dib-BASE.
func (o K8sOptions) job(p *plan.Plan, base string, out output) job {
	labels := map[string]string{
		"app.kubernetes.io/name":       "dib",
		"app.kubernetes.io/component":  "image-build",
		"app.kubernetes.io/managed-by": "dib",
		"dib.dev/image":                base,
	}
	args := []string{"apply", planMount + "/plan.json",
		"--output-dir", outputMount,
		"--work-dir", workMount,
		"--cache-dir", cacheMount + "/dib",
		"--image-cache", cacheMount + "/image-create",
		"--cache-from", o.Registry,
		"--cache-to", o.Registry,
	}
	mounts := []volumeMount{
		{Name: "plan", MountPath: planMount, ReadOnly: true},
		{Name: "output", MountPath: outputMount},
		{Name: "work", MountPath: workMount},
		{Name: "cache", MountPath: cacheMount},
		{Name: "dev", MountPath: "/dev"},
	}
	outDir := p.Image.Name
	if out.dir != "" {
		outDir = out.dir + "/" + p.Image.Name
	}
	outVol := volume{Name: "output"}
	if out.claim != "" {
		outVol.PersistentVolumeClaim = &pvcSource{ClaimName: out.claim}
		mounts[1].SubPath = outDir
	} else {
		outVol.HostPath = &hostPathSource{Path: out.host + "/" + p.Image.Name, Type: "DirectoryOrCreate"}
	}
	volumes := []volume{
		{Name: "plan", ConfigMap: &configMapSource{Name: "dib-plan-" + base}},
		outVol,
		{Name: "work", EmptyDir: &struct{}{}},
		{Name: "cache", EmptyDir: &struct{}{}},
		// A privileged container's /dev is a copy made at its start: loop
		// devices made later (the disk images' partitions) appear only
		// in the node's.
		{Name: "dev", HostPath: &hostPathSource{Path: "/dev", Type: "Directory"}},
	}
	var secrets []string
	for _, e := range p.Env {
		if e.Secret {
			secrets = append(secrets, e.Name)
			args = append(args, "--secret-file", e.Name+"="+secretMount+"/"+e.Name)
		}
	}
	if len(secrets) > 0 {
		// Steps that see a secret reach the registry only when every Job
		// digests secrets with the same key (dib apply --cache-secret-key).
		args = append(args, "--cache-secret-key", secretMount+"/"+CacheKeyName)
		mounts = append(mounts, volumeMount{Name: "secrets", MountPath: secretMount, ReadOnly: true})
		volumes = append(volumes, volume{Name: "secrets", Secret: &secretSource{SecretName: "dib-secrets"}})
	}
	zero, yes := int32(0), true
	return job{
		APIVersion: "batch/v1",
		Kind:       "Job",
		Metadata:   objectMeta{Name: "dib-" + base, Namespace: o.Namespace, Labels: labels},
		Spec: jobSpec{
			// A failed build fails the same way again; rerun it by hand.
			BackoffLimit: &zero,
			Template: podTemplate{
				Metadata: objectMeta{Labels: labels},
				Spec: podSpec{
					RestartPolicy: "Never",
					Containers: []container{{
						Name:            "dib",
						Image:           o.BuilderImage,
						Command:         []string{"dib"},
						Args:            args,
						SecurityContext: &securityContext{Privileged: &yes},
						Resources:       resources{Requests: map[string]string{"cpu": o.CPU, "memory": o.Memory}},
						VolumeMounts:    mounts,
					}},
					Volumes: volumes,
				},
			},
		},
	}
}

// The fields of Kubernetes objects dib writes, named as in the API.
type (
	kustomization struct {
		APIVersion         string          `yaml:"apiVersion"`
		Kind               string          `yaml:"kind"`
		Namespace          string          `yaml:"namespace,omitempty"`
		Resources          []string        `yaml:"resources"`
		ConfigMapGenerator []configMapArgs `yaml:"configMapGenerator"`
	}
	configMapArgs struct {
		Name  string   `yaml:"name"`
		Files []string `yaml:"files"`
	}
	objectMeta struct {
		Name      string            `yaml:"name,omitempty"`
		Namespace string            `yaml:"namespace,omitempty"`
		Labels    map[string]string `yaml:"labels,omitempty"`
	}
	job struct {
		APIVersion string     `yaml:"apiVersion"`
		Kind       string     `yaml:"kind"`
		Metadata   objectMeta `yaml:"metadata"`
		Spec       jobSpec    `yaml:"spec"`
	}
	jobSpec struct {
		BackoffLimit *int32      `yaml:"backoffLimit"`
		Template     podTemplate `yaml:"template"`
	}
	podTemplate struct {
		Metadata objectMeta `yaml:"metadata"`
		Spec     podSpec    `yaml:"spec"`
	}
	podSpec struct {
		RestartPolicy string      `yaml:"restartPolicy"`
		Containers    []container `yaml:"containers"`
		Volumes       []volume    `yaml:"volumes"`
	}
	container struct {
		Name            string           `yaml:"name"`
		Image           string           `yaml:"image"`
		Command         []string         `yaml:"command"`
		Args            []string         `yaml:"args"`
		SecurityContext *securityContext `yaml:"securityContext"`
		Resources       resources        `yaml:"resources"`
		VolumeMounts    []volumeMount    `yaml:"volumeMounts"`
	}
	securityContext struct {
		Privileged *bool `yaml:"privileged"`
	}
	resources struct {
		Requests map[string]string `yaml:"requests"`
	}
	volumeMount struct {
		Name      string `yaml:"name"`
		MountPath string `yaml:"mountPath"`
		SubPath   string `yaml:"subPath,omitempty"`
		ReadOnly  bool   `yaml:"readOnly,omitempty"`
	}
	volume struct {
		Name                  string           `yaml:"name"`
		ConfigMap             *configMapSource `yaml:"configMap,omitempty"`
		Secret                *secretSource    `yaml:"secret,omitempty"`
		PersistentVolumeClaim *pvcSource       `yaml:"persistentVolumeClaim,omitempty"`
		HostPath              *hostPathSource  `yaml:"hostPath,omitempty"`
		EmptyDir              *struct{}        `yaml:"emptyDir,omitempty"`
	}
	configMapSource struct {
		Name string `yaml:"name"`
	}
	secretSource struct {
		SecretName string `yaml:"secretName"`
	}
	pvcSource struct {
		ClaimName string `yaml:"claimName"`
	}
	hostPathSource struct {
		Path string `yaml:"path"`
		Type string `yaml:"type"`
	}
)
