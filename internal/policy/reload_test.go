package policy

import (
	"archive/tar"
	"compress/gzip"
	"context"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func setRevision(t testing.TB, bundleDir, revision string) {
	t.Helper()
	m := fmt.Sprintf(`{"revision": %q, "roots": ["sas"], "rego_version": 1}`, revision)
	if err := os.WriteFile(filepath.Join(bundleDir, ".manifest"), []byte(m), 0o644); err != nil {
		t.Fatal(err)
	}
}

func evalSbx(t testing.TB, e *Evaluator) (allow bool, revision string) {
	t.Helper()
	d, err := e.Evaluate(context.Background(), "fedramp_sbx_default", ipInput("fedramp_sbx_default", "sbx", sbxIPRequest()))
	if err != nil {
		t.Fatal(err)
	}
	return d.Allow, d.Revision
}

func TestReloadPicksUpNewRevision(t *testing.T) {
	dir := t.TempDir()
	sbx := copyBundle(t, "fedramp_sbx_default", dir)
	copyBundle(t, "fedramp_dev_default", dir)
	e := load(t, Options{Dir: dir})
	if allow, rev := evalSbx(t, e); !allow || !isRevision(rev, exampleRevision) {
		t.Fatalf("before: allow=%v revision=%q", allow, rev)
	}
	devBefore := e.current.Load().bundles["fedramp_dev_default"]

	setRevision(t, sbx, "2025.06.2")
	if err := e.Reload(context.Background()); err != nil {
		t.Fatal(err)
	}
	for range 10 {
		if allow, rev := evalSbx(t, e); !allow || !isRevision(rev, "2025.06.2") {
			t.Fatalf("after: allow=%v revision=%q", allow, rev)
		}
	}
	if info, _ := e.Bundle("fedramp_sbx_default"); !isRevision(info.Revision, "2025.06.2") {
		t.Errorf("BundleInfo.Revision = %q", info.Revision)
	}
	if e.current.Load().bundles["fedramp_dev_default"] != devBefore {
		t.Error("an unchanged bundle was recompiled")
	}
}

func TestWatchReloadsOnChange(t *testing.T) {
	dir := t.TempDir()
	sbx := copyBundle(t, "fedramp_sbx_default", dir)
	e := load(t, Options{Dir: dir})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { e.Watch(ctx, 10*time.Millisecond); close(done) }()
	defer func() { cancel(); <-done }()

	setRevision(t, sbx, "2025.07.0") // same size as before: content hashing, not mtimes
	deadline := time.Now().Add(10 * time.Second)
	for {
		if _, rev := evalSbx(t, e); isRevision(rev, "2025.07.0") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("Watch did not pick up the new revision")
		}
		time.Sleep(10 * time.Millisecond)
	}
	// A new bundle appears, then disappears.
	copyBundle(t, "fedramp_prod_restricted", dir)
	waitFor(t, func() bool { _, ok := e.Bundle("fedramp_prod_restricted"); return ok })
	if err := os.RemoveAll(filepath.Join(dir, "fedramp_prod_restricted")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool { _, ok := e.Bundle("fedramp_prod_restricted"); return !ok })
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met in time")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// A bundle that breaks on reload denies everything (fail closed) rather
// than keeping its last good revision; fixing it restores service.
func TestReloadOfBrokenBundleDeniesUntilFixed(t *testing.T) {
	dir := t.TempDir()
	sbx := copyBundle(t, "fedramp_sbx_default", dir)
	e := load(t, Options{Dir: dir})
	policyFile := filepath.Join(sbx, "policy.rego")
	good, err := os.ReadFile(policyFile)
	if err != nil {
		t.Fatal(err)
	}

	if err := os.WriteFile(policyFile, append(good, []byte("\nallow if {\n")...), 0o644); err != nil {
		t.Fatal(err)
	}
	setRevision(t, sbx, "2025.06.2-broken")
	if err := e.Reload(context.Background()); err != nil {
		t.Fatalf("Reload: %v (a broken bundle is not a reload error)", err)
	}
	d, _ := e.Evaluate(context.Background(), "fedramp_sbx_default", ipInput("fedramp_sbx_default", "sbx", sbxIPRequest()))
	v := mustDeny(t, d, RulePolicyError)
	if !strings.Contains(v.Message, "fedramp_sbx_default") || !strings.Contains(v.Message, "policy.rego") {
		t.Errorf("message = %q", v.Message)
	}
	if info, _ := e.Bundle("fedramp_sbx_default"); info.Error == "" {
		t.Error("BundleInfo.Error is empty for a broken bundle")
	}

	if err := os.WriteFile(policyFile, good, 0o644); err != nil {
		t.Fatal(err)
	}
	setRevision(t, sbx, "2025.06.3")
	if err := e.Reload(context.Background()); err != nil {
		t.Fatal(err)
	}
	if allow, rev := evalSbx(t, e); !allow || !isRevision(rev, "2025.06.3") {
		t.Fatalf("after fix: allow=%v revision=%q", allow, rev)
	}
}

func TestReloadKeepsCurrentSetWhenDirectoryIsGone(t *testing.T) {
	dir := t.TempDir()
	bundles := filepath.Join(dir, "bundles")
	copyBundle(t, "fedramp_sbx_default", bundles)
	e := load(t, Options{Dir: bundles})
	if err := os.Rename(bundles, bundles+".old"); err != nil {
		t.Fatal(err)
	}
	if err := e.Reload(context.Background()); err == nil {
		t.Fatal("want an error for a missing directory")
	}
	if allow, _ := evalSbx(t, e); !allow {
		t.Fatal("the current set was dropped")
	}
}

// Run with -race: decisions in flight during reloads each see one whole
// generation.
func TestConcurrentEvaluateDuringReload(t *testing.T) {
	dir := t.TempDir()
	sbx := copyBundle(t, "fedramp_sbx_default", dir)
	e := load(t, Options{Dir: dir})
	revisions := map[string]bool{exampleRevision: true}

	var stop atomic.Bool
	var decisions atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for range 8 {
		wg.Go(func() {
			for !stop.Load() {
				d, err := e.Evaluate(context.Background(), "fedramp_sbx_default", ipInput("fedramp_sbx_default", "sbx", sbxIPRequest()))
				if err != nil || !d.Allow || d.Revision == "" {
					errs <- fmt.Errorf("decision %+v, err %v", d, err)
					return
				}
				decisions.Add(1)
				_ = e.Bundles()
			}
		})
	}
	for i := range 20 {
		rev := fmt.Sprintf("2025.06.1-r%02d", i)
		setRevision(t, sbx, rev)
		if err := e.Reload(context.Background()); err != nil {
			t.Fatal(err)
		}
		if _, got := evalSbx(t, e); !isRevision(got, rev) {
			t.Fatalf("after reload %d: revision %q, want %q", i, got, rev)
		}
		revisions[rev] = true
	}
	stop.Store(true)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if decisions.Load() == 0 {
		t.Error("no concurrent decisions were made")
	}
}

// tarBundle writes dir's files into dst as a .tar.gz bundle.
func tarBundle(t testing.TB, dir, dst string) {
	t.Helper()
	f, err := os.Create(dst)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	gz := gzip.NewWriter(f)
	tw := tar.NewWriter(gz)
	err = filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, path)
		if err := tw.WriteHeader(&tar.Header{Name: "/" + filepath.ToSlash(rel), Mode: 0o644, Size: int64(len(b)), Typeflag: tar.TypeReg}); err != nil {
			return err
		}
		_, err = tw.Write(b)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := gz.Close(); err != nil {
		t.Fatal(err)
	}
}

func TestTarballBundles(t *testing.T) {
	src := copyBundle(t, "fedramp_sbx_default", t.TempDir())
	dir := t.TempDir()
	tarBundle(t, src, filepath.Join(dir, "fedramp_sbx_default.tar.gz"))
	e := load(t, Options{Dir: dir})
	if allow, rev := evalSbx(t, e); !allow || !isRevision(rev, exampleRevision) {
		t.Fatalf("tarball: allow=%v revision=%q", allow, rev)
	}
	results, err := RunRegoTests(context.Background(), filepath.Join(dir, "fedramp_sbx_default.tar.gz"))
	if err != nil || len(results) == 0 {
		t.Fatalf("rego tests from a tarball: %d results, %v", len(results), err)
	}

	// The same name as a directory and a tarball is ambiguous: deny.
	copyBundle(t, "fedramp_sbx_default", dir)
	if err := e.Reload(context.Background()); err != nil {
		t.Fatal(err)
	}
	d, _ := e.Evaluate(context.Background(), "fedramp_sbx_default", ipInput("fedramp_sbx_default", "sbx", sbxIPRequest()))
	v := mustDeny(t, d, RulePolicyError)
	if !strings.Contains(v.Message, "defined twice") {
		t.Errorf("message = %q", v.Message)
	}
}
