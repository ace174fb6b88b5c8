package main

import (
	"bytes"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/dibuild/dib/internal/golden"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	k8sruntime "k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/serializer/json"
	"sigs.k8s.io/kustomize/api/krusty"
	kusttypes "sigs.k8s.io/kustomize/api/types"
	"sigs.k8s.io/kustomize/kyaml/filesys"
	"sigs.k8s.io/yaml"
)

const testRegistry = "registry.example:5000/dib-cache"

// exportK8s runs dib export k8s on a Dibfile into a new directory.
func exportK8s(t *testing.T, dibfile string, extra ...string) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "fleet")
	args := append([]string{"export", "k8s", "-o", dir, "--registry", testRegistry, "--dest", "pvc:images/nightly",
		"--builder-image", "registry.example:5000/dib:0.1", "--namespace", "image-builds"}, extra...)
	if code, _, errs := runDib(t, append(args, dibfile)...); code != 0 {
		t.Fatalf("export k8s: %d %s", code, errs)
	}
	return dir
}

// strictDecoder decodes Kubernetes YAML with the API types, failing on
// unknown and duplicate fields.
func strictDecoder(t *testing.T) *json.Serializer {
	s := k8sruntime.NewScheme()
	if err := batchv1.AddToScheme(s); err != nil {
		t.Fatal(err)
	}
	if err := corev1.AddToScheme(s); err != nil {
		t.Fatal(err)
	}
	return json.NewSerializerWithOptions(json.DefaultMetaFactory, s, s, json.SerializerOptions{Yaml: true, Strict: true})
}

// TestExportK8sGolden: the set of examples/multi-image.yaml is the golden
// one byte for byte (testdata/export-k8s; -update rewrites it), and its
// plan files are those dib plan -o writes.
func TestExportK8sGolden(t *testing.T) {
	ex := "../../examples/multi-image.yaml"
	dir := exportK8s(t, ex)
	plans := t.TempDir()
	if code, _, errs := runDib(t, "plan", "--no-host-check", "-o", plans, ex); code != 0 {
		t.Fatalf("plan -o: %d %s", code, errs)
	}
	entries, _ := os.ReadDir(dir)
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
		got, _ := os.ReadFile(filepath.Join(dir, e.Name()))
		if strings.HasSuffix(e.Name(), ".plan.json") {
			want, _ := os.ReadFile(filepath.Join(plans, e.Name()))
			if !bytes.Equal(got, want) {
				t.Errorf("%s is not the plan dib plan -o writes", e.Name())
			}
			continue
		}
		golden.Compare(t, filepath.Join("testdata/export-k8s", e.Name()), got)
	}
	want := []string{"debian-ops.job.yaml", "debian-ops.plan.json", "debian-rootfs.job.yaml", "debian-rootfs.plan.json", "kustomization.yaml"}
	if !slices.Equal(names, want) {
		t.Errorf("files %v, want %v", names, want)
	}
}

// TestExportK8sDecodesStrictly decodes every manifest with the Kubernetes
// API types and kustomize's, strictly, then builds the set as kubectl
// apply -k does (kustomize in process) and checks what the cluster would
// get: a ConfigMap per image holding its plan, and a Job per image running
// dib apply on that ConfigMap's plan in a privileged pod, with the
// registry cache and the output claim.
func TestExportK8sDecodesStrictly(t *testing.T) {
	dir := exportK8s(t, "../../examples/multi-image.yaml")
	dec := strictDecoder(t)
	images := []string{"debian-rootfs", "debian-ops"}
	for _, img := range images {
		data, _ := os.ReadFile(filepath.Join(dir, img+".job.yaml"))
		obj, _, err := dec.Decode(data, nil, nil)
		if err != nil {
			t.Fatalf("%s.job.yaml: %v", img, err)
		}
		if _, ok := obj.(*batchv1.Job); !ok {
			t.Fatalf("%s.job.yaml is a %T", img, obj)
		}
	}
	kdata, _ := os.ReadFile(filepath.Join(dir, "kustomization.yaml"))
	var k kusttypes.Kustomization
	if err := yaml.UnmarshalStrict(kdata, &k); err != nil {
		t.Fatalf("kustomization.yaml: %v", err)
	}

	m, err := krusty.MakeKustomizer(krusty.MakeDefaultOptions()).Run(filesys.MakeFsOnDisk(), dir)
	if err != nil {
		t.Fatalf("kustomize build: %v", err)
	}
	configMaps := map[string]*corev1.ConfigMap{}
	jobs := map[string]*batchv1.Job{}
	for _, r := range m.Resources() {
		y, err := r.AsYAML()
		if err != nil {
			t.Fatal(err)
		}
		obj, _, err := dec.Decode(y, nil, nil)
		if err != nil {
			t.Fatalf("kustomize's %s: %v\n%s", r.CurId(), err, y)
		}
		switch o := obj.(type) {
		case *corev1.ConfigMap:
			configMaps[o.Name] = o
		case *batchv1.Job:
			jobs[o.Labels["dib.dev/image"]] = o
		default:
			t.Errorf("unexpected %T", obj)
		}
	}
	if len(configMaps) != len(images) || len(jobs) != len(images) {
		t.Fatalf("%d ConfigMaps and %d Jobs, want %d of each", len(configMaps), len(jobs), len(images))
	}
	for _, img := range images {
		j := jobs[img]
		if j == nil {
			t.Fatalf("no Job for %s", img)
		}
		if j.Namespace != "image-builds" || j.Name != "dib-"+img {
			t.Errorf("Job %s/%s", j.Namespace, j.Name)
		}
		pod := j.Spec.Template.Spec
		c := pod.Containers[0]
		args := strings.Join(append(slices.Clone(c.Command), c.Args...), " ")
		for _, want := range []string{"dib apply /etc/dib/plan/plan.json ", "--cache-from " + testRegistry, "--cache-to " + testRegistry, "--output-dir /output"} {
			if !strings.Contains(args, want) {
				t.Errorf("%s runs %q, without %q", img, args, want)
			}
		}
		if c.SecurityContext == nil || c.SecurityContext.Privileged == nil || !*c.SecurityContext.Privileged {
			t.Errorf("%s: the pod is not privileged", img)
		}
		if pod.RestartPolicy != corev1.RestartPolicyNever {
			t.Errorf("%s: restartPolicy %s", img, pod.RestartPolicy)
		}
		var cm *corev1.ConfigMap
		for _, v := range pod.Volumes {
			switch {
			case v.ConfigMap != nil:
				cm = configMaps[v.ConfigMap.Name]
			case v.PersistentVolumeClaim != nil && v.PersistentVolumeClaim.ClaimName != "images":
				t.Errorf("%s: output claim %s", img, v.PersistentVolumeClaim.ClaimName)
			}
		}
		for _, vm := range c.VolumeMounts {
			if vm.Name == "output" && vm.SubPath != "nightly/"+img {
				t.Errorf("%s: output subPath %q", img, vm.SubPath)
			}
		}
		if cm == nil {
			t.Fatalf("%s: the Job's ConfigMap is not in the set (names %v)", img, mapsKeys(configMaps))
		}
		plan, _ := os.ReadFile(filepath.Join(dir, img+".plan.json"))
		if cm.Data["plan.json"] != string(plan) {
			t.Errorf("%s: ConfigMap %s does not hold the plan", img, cm.Name)
		}
	}
}

func mapsKeys[V any](m map[string]V) []string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	slices.Sort(ks)
	return ks
}

// TestExportK8sSecrets: a plan's secret variables come from the Secret
// dib-secrets, one file per variable, given to dib apply --secret-file,
// with the fleet's shared cache key (--cache-secret-key) from the same
// Secret; no value is in the set.
func TestExportK8sSecrets(t *testing.T) {
	df := filepath.Join(t.TempDir(), "Dibfile")
	os.WriteFile(df, []byte("name: Dev.Box\ndistro: debian-minimal\nelements: [devuser]\nenv:\n  DIB_DEV_USER_PASSWORD: {from-env: DEV_PW}\noutputs: [tar]\n"), 0o644)
	t.Setenv("DEV_PW", "hunter2-value")
	dir := exportK8s(t, df)
	data, err := os.ReadFile(filepath.Join(dir, "Dev.Box.job.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	obj, _, err := strictDecoder(t).Decode(data, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	j := obj.(*batchv1.Job)
	if j.Name != "dib-dev-box" {
		t.Errorf("Job name %q", j.Name)
	}
	if args := strings.Join(j.Spec.Template.Spec.Containers[0].Args, " "); !strings.Contains(args, "--secret-file DIB_DEV_USER_PASSWORD=/etc/dib/secrets/DIB_DEV_USER_PASSWORD") ||
		!strings.Contains(args, "--cache-secret-key /etc/dib/secrets/dib-cache-secret-key") {
		t.Errorf("args %s", args)
	}
	found := false
	for _, v := range j.Spec.Template.Spec.Volumes {
		found = found || v.Secret != nil && v.Secret.SecretName == "dib-secrets"
	}
	if !found {
		t.Error("no volume of the Secret dib-secrets")
	}
	filepath.Walk(dir, func(p string, _ os.FileInfo, _ error) error {
		if b, _ := os.ReadFile(p); bytes.Contains(b, []byte("hunter2")) {
			t.Errorf("%s holds the secret's value", p)
		}
		return nil
	})
}
