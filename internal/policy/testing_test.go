package policy

import (
	"context"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"testing"

	"github.com/sas-platform/terraform-provider-sas/internal/api"
)

// Fixtures shared by the evaluator tests.

// exampleRevision is the manifest revision of every example bundle
// (examples/bundles/*/.manifest).
const exampleRevision = "2025.07.1"

var reContentRevision = regexp.MustCompile(`^(.+)\+[0-9a-f]{16}$`)

// isRevision reports whether rev is a content revision (see
// BundleInfo.Revision) of the manifest revision manifest.
func isRevision(rev, manifest string) bool {
	m := reContentRevision.FindStringSubmatch(rev)
	return m != nil && m[1] == manifest
}

const minimalManifest = `{"revision": "r1", "roots": ["sas"]}`

// minimalData is a valid data.sas.bundle for synthetic bundles.
const minimalData = `{"sas": {"bundle": {
  "description": "test bundle",
  "environments": ["sbx"],
  "actions": {"sbx": {"ip_reservation": ["create", "read"]}},
  "networks": {"sbx-app": {"cidr": "10.10.0.0/24", "environments": ["sbx"]}},
  "dns_zones": {"sbx.example.internal": {"environments": ["sbx"]}},
  "dns_views": ["default"],
  "blueprint_levels": ["sandbox"],
  "blueprints": {},
  "modules": {},
  "limits": {"max_vcpus": 2, "max_memory_gib": 4, "max_disk_gib": 50, "max_aliases": 2},
  "requires_change_ticket": false
}}}`

// writeBundle writes a bundle directory dir/name; .manifest and data.json
// default to minimalManifest and minimalData.
func writeBundle(t testing.TB, dir, name string, files map[string]string) string {
	t.Helper()
	root := filepath.Join(dir, name)
	all := map[string]string{".manifest": minimalManifest, "data.json": minimalData}
	for k, v := range files {
		all[k] = v
	}
	for rel, content := range all {
		p := filepath.Join(root, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

// copyBundle copies an example bundle into dir.
func copyBundle(t testing.TB, name, dir string) string {
	t.Helper()
	src := filepath.Join(examplesDir, name)
	dst := filepath.Join(dir, name)
	err := filepath.WalkDir(src, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, path)
		target := filepath.Join(dst, rel)
		if d.IsDir() {
			return os.MkdirAll(target, 0o755)
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		return os.WriteFile(target, b, 0o644)
	})
	if err != nil {
		t.Fatal(err)
	}
	return dst
}

func load(t testing.TB, opts Options) *Evaluator {
	t.Helper()
	e, err := Load(context.Background(), opts)
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	return e
}

func sbxCaller(bundles ...string) Caller {
	return Caller{Owner: "alice", EntityID: "e-alice", Bundles: bundles, Policies: []string{"default"}}
}

func ipInput(bundle, env string, req map[string]any) Input {
	return Input{Environment: env, Kind: api.KindIPReservation, Action: api.ActionCreate, Caller: sbxCaller(bundle), Request: req}
}

func sbxIPRequest() map[string]any {
	return map[string]any{"network": "sbx-app", "hostname": "web-01", "dns_zone": "sbx.example.internal"}
}

func findViolation(d api.Decision, rule string) (api.Violation, bool) {
	for _, v := range d.Violations {
		if v.Rule == rule {
			return v, true
		}
	}
	return api.Violation{}, false
}

// mustDeny fails unless d denies with a violation of rule; it returns it.
func mustDeny(t testing.TB, d api.Decision, rule string) api.Violation {
	t.Helper()
	if d.Allow {
		t.Fatalf("decision allowed; want a %s denial: %+v", rule, d)
	}
	v, ok := findViolation(d, rule)
	if !ok {
		t.Fatalf("no %s violation in %+v", rule, d.Violations)
	}
	return v
}
