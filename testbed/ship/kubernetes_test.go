package ship

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"sigs.k8s.io/yaml"
)

// TestKubernetesExample decodes every document of examples/kubernetes/sluice.yaml strictly into
// the k8s.io/api type of its kind (an unknown or misspelt field fails: what kubectl's server-side
// validation would refuse, checked offline), then checks that the pieces fit: probes on the admin
// API's /healthz and /readyz at the port the configuration's admin block listens on, a non-root
// read-only pod, selectors of the Service and PodDisruptionBudget that match the pods, a grace
// period longer than shutdown_timeout plus preStop, and a ConfigMap whose gateway.hcl passes
// `sluice validate`.
func TestKubernetesExample(t *testing.T) {
	raw, err := os.ReadFile("../../examples/kubernetes/sluice.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var (
		cm  corev1.ConfigMap
		dep appsv1.Deployment
		svc corev1.Service
		pdb policyv1.PodDisruptionBudget
	)
	kinds := map[string]any{"v1/ConfigMap": &cm, "apps/v1/Deployment": &dep, "v1/Service": &svc, "policy/v1/PodDisruptionBudget": &pdb}
	seen := map[string]bool{}
	for i, doc := range regexp.MustCompile(`(?m)^---\s*$`).Split(string(raw), -1) {
		if strings.TrimSpace(doc) == "" {
			continue
		}
		var tm metav1.TypeMeta
		if err := yaml.Unmarshal([]byte(doc), &tm); err != nil {
			t.Fatalf("document %d: %v", i, err)
		}
		key := tm.APIVersion + "/" + tm.Kind
		obj, ok := kinds[key]
		if !ok || seen[key] {
			t.Fatalf("document %d: unexpected or repeated %s", i, key)
		}
		seen[key] = true
		if err := yaml.UnmarshalStrict([]byte(doc), obj); err != nil {
			t.Fatalf("document %d (%s) does not decode strictly: %v", i, key, err)
		}
	}
	if len(seen) != len(kinds) {
		t.Fatalf("documents %v, want all of %v", seen, kinds)
	}

	// A misspelt field is caught: the strict decoding is not a no-op.
	if err := yaml.UnmarshalStrict([]byte("apiVersion: v1\nkind: Service\nspec:\n  selectr: {}\n"), &corev1.Service{}); err == nil {
		t.Fatal("UnmarshalStrict accepted an unknown field")
	}

	pod := dep.Spec.Template
	if sel, err := metav1.LabelSelectorAsSelector(dep.Spec.Selector); err != nil || !sel.Matches(labels.Set(pod.Labels)) {
		t.Errorf("the Deployment's selector does not match its pods: %v", err)
	}
	if !labels.SelectorFromSet(svc.Spec.Selector).Matches(labels.Set(pod.Labels)) {
		t.Error("the Service's selector does not match the pods")
	}
	if sel, err := metav1.LabelSelectorAsSelector(pdb.Spec.Selector); err != nil || !sel.Matches(labels.Set(pod.Labels)) {
		t.Errorf("the PodDisruptionBudget's selector does not match the pods: %v", err)
	}
	if len(pod.Spec.Containers) != 1 {
		t.Fatalf("%d containers, want 1", len(pod.Spec.Containers))
	}
	c := pod.Spec.Containers[0]
	ports := map[string]int32{}
	for _, p := range c.Ports {
		ports[p.Name] = p.ContainerPort
	}
	for name, pr := range map[string]*corev1.Probe{"liveness": c.LivenessProbe, "readiness": c.ReadinessProbe, "startup": c.StartupProbe} {
		want := "/healthz"
		if name == "readiness" {
			want = "/readyz"
		}
		if pr == nil || pr.HTTPGet == nil || pr.HTTPGet.Path != want || ports[pr.HTTPGet.Port.StrVal] != 9901 {
			t.Errorf("%s probe %+v, want GET %s on the admin port 9901", name, pr, want)
		}
	}
	ps, cs := pod.Spec.SecurityContext, c.SecurityContext
	if ps == nil || ps.RunAsNonRoot == nil || !*ps.RunAsNonRoot || ps.RunAsUser == nil || *ps.RunAsUser != 65532 ||
		cs == nil || cs.ReadOnlyRootFilesystem == nil || !*cs.ReadOnlyRootFilesystem ||
		cs.AllowPrivilegeEscalation == nil || *cs.AllowPrivilegeEscalation || cs.Capabilities == nil || len(cs.Capabilities.Drop) != 1 {
		t.Errorf("security contexts: pod %+v container %+v", ps, cs)
	}
	if s := svc.Spec.Ports; len(s) != 1 || ports[s[0].TargetPort.StrVal] != 8080 {
		t.Errorf("Service ports %+v, want the http port 8080", s)
	}
	if pdb.Spec.MaxUnavailable == nil || pdb.Spec.MaxUnavailable.IntVal != 1 {
		t.Errorf("PodDisruptionBudget maxUnavailable %v, want 1", pdb.Spec.MaxUnavailable)
	}

	// The configuration: valid, listening where the ports and probes say, draining in time.
	hcl := cm.Data["gateway.hcl"]
	for _, want := range []string{`listen = "0.0.0.0:8080"`, `listen               = "0.0.0.0:9901"`, "probes_without_token = true"} {
		if !strings.Contains(hcl, want) {
			t.Errorf("gateway.hcl lacks %q", want)
		}
	}
	m := regexp.MustCompile(`shutdown_timeout = "(\w+)"`).FindStringSubmatch(hcl)
	if m == nil {
		t.Fatal("gateway.hcl sets no shutdown_timeout")
	}
	st, _ := time.ParseDuration(m[1])
	grace := time.Duration(*pod.Spec.TerminationGracePeriodSeconds) * time.Second
	prestop := time.Duration(c.Lifecycle.PreStop.Sleep.Seconds) * time.Second
	if st+prestop >= grace {
		t.Errorf("shutdown_timeout %v + preStop %v >= terminationGracePeriodSeconds %v: the drain is cut short", st, prestop, grace)
	}
	dir := t.TempDir()
	cfg := filepath.Join(dir, "gateway.hcl")
	if err := os.WriteFile(cfg, []byte(hcl), 0o644); err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "sluice")
	distBuild(t, bin)
	v := exec.Command(bin, "validate", "-c", cfg)
	v.Env = append(os.Environ(), "SLUICE_ADMIN_TOKEN=an-admin-token-of-32-characters-x")
	var out bytes.Buffer
	v.Stdout, v.Stderr = &out, &out
	if err := v.Run(); err != nil {
		t.Errorf("sluice validate of the ConfigMap's gateway.hcl: %v\n%s", err, out.String())
	}
}

// TestSystemdUnit checks the unit's essentials and, where systemd-analyze is installed, that
// systemd accepts it (the binary path replaced by one that exists here).
func TestSystemdUnit(t *testing.T) {
	raw, err := os.ReadFile("../../examples/systemd/sluice.service")
	if err != nil {
		t.Fatal(err)
	}
	unit := string(raw)
	for _, want := range []string{"Type=notify", "ExecReload=/bin/kill -HUP $MAINPID", "NoNewPrivileges=yes", "ProtectSystem=strict",
		"ProtectHome=yes", "PrivateTmp=yes", "CapabilityBoundingSet=CAP_NET_BIND_SERVICE", "AmbientCapabilities=CAP_NET_BIND_SERVICE",
		"RuntimeDirectory=sluice", "ExecStart=/usr/local/bin/sluice run -c /etc/sluice/gateway.hcl"} {
		if !strings.Contains(unit, "\n"+want+"\n") && !strings.Contains(unit, "\n"+want+" ") {
			t.Errorf("the unit lacks %q", want)
		}
	}
	analyze, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Skip("systemd-analyze not installed")
	}
	p := filepath.Join(t.TempDir(), "sluice.service")
	if err := os.WriteFile(p, []byte(strings.ReplaceAll(unit, "/usr/local/bin/sluice", "/bin/true")), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(analyze, "verify", p).CombinedOutput()
	if err != nil || len(bytes.TrimSpace(out)) > 0 {
		t.Errorf("systemd-analyze verify: %v\n%s", err, out)
	}
}
