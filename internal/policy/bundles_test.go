package policy

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/open-policy-agent/opa/v1/format"
)

const examplesDir = "../../examples/bundles"

// TestExampleBundlesRegoTests runs every example bundle's Rego tests through
// the gateway's engine; a failed or errored test, or a bundle without tests,
// fails.
func TestExampleBundlesRegoTests(t *testing.T) {
	entries, err := os.ReadDir(examplesDir)
	if err != nil {
		t.Fatal(err)
	}
	for _, ent := range entries {
		if !ent.IsDir() {
			continue
		}
		t.Run(ent.Name(), func(t *testing.T) {
			results, err := RunRegoTests(context.Background(), filepath.Join(examplesDir, ent.Name()))
			if err != nil {
				t.Fatal(err)
			}
			if len(results) == 0 {
				t.Fatal("bundle has no Rego tests")
			}
			for _, r := range results {
				switch {
				case r.Error != nil:
					t.Errorf("%s.%s: error: %v", r.Package, r.Name, r.Error)
				case r.Fail:
					t.Errorf("%s.%s: FAIL", r.Package, r.Name)
				case r.Skip:
					t.Logf("%s.%s: skipped", r.Package, r.Name)
				}
			}
			t.Logf("%d Rego tests", len(results))
		})
	}
}

// TestExampleBundlesAreFormatted is `opa fmt --fail` for the examples.
func TestExampleBundlesAreFormatted(t *testing.T) {
	files, err := filepath.Glob(filepath.Join(examplesDir, "*", "*.rego"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no Rego files found: %v", err)
	}
	for _, f := range files {
		src, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		out, err := format.Source(f, src)
		if err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		if string(out) != string(src) {
			t.Errorf("%s is not formatted (run opa fmt -w)", f)
		}
	}
}

// A bundle directory reached through a symlink (a mounted volume, a
// ConfigMap) loads like any other.
func TestSymlinkedBundleDirectory(t *testing.T) {
	real := copyBundle(t, "fedramp_sbx_default", t.TempDir())
	dir := t.TempDir()
	if err := os.Symlink(real, filepath.Join(dir, "fedramp_sbx_default")); err != nil {
		t.Skip(err)
	}
	e := load(t, Options{Dir: dir})
	if allow, rev := evalSbx(t, e); !allow || rev != "2025.06.1" {
		info, _ := e.Bundle("fedramp_sbx_default")
		t.Fatalf("symlinked bundle: allow=%v revision=%q error=%q", allow, rev, info.Error)
	}
}
