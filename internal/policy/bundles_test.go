package policy

import (
	"bytes"
	"context"
	"flag"
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
	if allow, rev := evalSbx(t, e); !allow || !isRevision(rev, exampleRevision) {
		info, _ := e.Bundle("fedramp_sbx_default")
		t.Fatalf("symlinked bundle: allow=%v revision=%q error=%q", allow, rev, info.Error)
	}
}

// policySource is the one Rego source every example bundle ships; only the
// bundles' data (and their Rego tests, which test that data) differ.
const policySource = "../../examples/policy/policy.rego"

var updatePolicies = flag.Bool("update-policies", false, "copy "+policySource+" into every example bundle (make docs)")

// TestBundlesShareOnePolicySource fails when a bundle's policy.rego is not
// byte for byte the shared source: a fix made in one copy must reach all.
func TestBundlesShareOnePolicySource(t *testing.T) {
	src, err := os.ReadFile(policySource)
	if err != nil {
		t.Fatal(err)
	}
	entries, err := os.ReadDir(examplesDir)
	if err != nil {
		t.Fatal(err)
	}
	bundles := 0
	for _, ent := range entries {
		if !ent.IsDir() {
			continue
		}
		bundles++
		path := filepath.Join(examplesDir, ent.Name(), "policy.rego")
		if *updatePolicies {
			if err := os.WriteFile(path, src, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		got, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, src) {
			t.Errorf("%s differs from %s; edit the source and run `make docs`", path, policySource)
		}
	}
	if bundles == 0 {
		t.Fatal("no example bundles")
	}
}
