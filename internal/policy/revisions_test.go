package policy

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/sas-platform/terraform-provider-sas/internal/api"
)

const (
	allowAllPolicy = "package sas.policy\n\nallow := true\n\nviolations := set()\n"
	// denyAllPolicy takes a marker so that each use is different content.
	denyAllPolicy = "package sas.policy\n\n# %s\nallow := false\n\nviolations := {{\"rule\": \"revoked\", \"message\": \"revoked by the operator\"}}\n"
)

func writeFile(t testing.TB, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func reload(t testing.TB, e *Evaluator) {
	t.Helper()
	if err := e.Reload(context.Background()); err != nil {
		t.Fatal(err)
	}
}

// editBundleData rewrites an example bundle's data.sas.bundle through edit.
func editBundleData(t testing.TB, bundleDir string, edit func(b map[string]any)) {
	t.Helper()
	path := filepath.Join(bundleDir, "data.json")
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var data map[string]any
	if err := json.Unmarshal(raw, &data); err != nil {
		t.Fatal(err)
	}
	edit(data["sas"].(map[string]any)["bundle"].(map[string]any))
	out, err := json.MarshalIndent(data, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, path, string(out))
}

func moduleRunInput() Input {
	return Input{Environment: "sbx", Kind: api.KindModuleRun, Action: api.ActionCreate, Caller: sbxCaller("fedramp_sbx_default"),
		Request: api.ModuleRunRequest{Name: "reg", Module: "platform/service-registration", Version: "2.0.0"},
		Plan:    &Plan{ResourceChanges: []PlanChange{{Address: "terraform_data.entry", Type: "terraform_data", Actions: []string{"create"}}}}}
}

// A module run admitted under one revision has its plan judged, and its
// network resolved, by that revision even when the bundle was edited in
// between — here without bumping the .manifest revision.
func TestEvaluateAtJudgesByTheApprovingRevision(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	sbx := copyBundle(t, "fedramp_sbx_default", dir)
	e := load(t, Options{Dir: dir})

	admitted, err := e.Evaluate(ctx, "fedramp_sbx_default", moduleRunInput())
	if err != nil || !admitted.Allow {
		t.Fatalf("admission: %+v, %v", admitted, err)
	}

	editBundleData(t, sbx, func(b map[string]any) {
		b["modules"].(map[string]any)["platform/service-registration"].(map[string]any)["resource_types"] = []any{"time_static"}
		b["networks"].(map[string]any)["sbx-app"].(map[string]any)["cidr"] = "10.10.9.0/24"
	})
	reload(t, e)

	now, err := e.Evaluate(ctx, "fedramp_sbx_default", moduleRunInput())
	if err != nil || now.Allow {
		t.Fatalf("the edited bundle should deny the plan: %+v, %v", now, err)
	}
	if now.Revision == admitted.Revision {
		t.Fatalf("different content, same revision %q", now.Revision)
	}
	if !isRevision(now.Revision, exampleRevision) {
		t.Errorf("revision %q does not keep the manifest's %q", now.Revision, exampleRevision)
	}

	for range 3 {
		at, err := e.EvaluateAt(ctx, "fedramp_sbx_default", admitted.Revision, moduleRunInput())
		if err != nil || !at.Allow || len(at.Violations) != 0 {
			t.Fatalf("EvaluateAt the approving revision: %+v, %v", at, err)
		}
		if at.Revision != admitted.Revision || at.Bundle != "fedramp_sbx_default" || at.DecisionID == admitted.DecisionID || !reUUID.MatchString(at.DecisionID) {
			t.Fatalf("envelope: %+v", at)
		}
	}
	// ... and under the current revision, the current verdict.
	if at, _ := e.EvaluateAt(ctx, "fedramp_sbx_default", now.Revision, moduleRunInput()); at.Allow || at.Revision != now.Revision {
		t.Fatalf("EvaluateAt the current revision: %+v", at)
	}

	then, ok := e.BundleAt("fedramp_sbx_default", admitted.Revision)
	if !ok || then.Spec.Networks["sbx-app"].CIDR != "10.10.0.0/24" || then.Revision != admitted.Revision {
		t.Fatalf("BundleAt the approving revision: ok=%v %+v", ok, then.Spec.Networks)
	}
	if cur, _ := e.Bundle("fedramp_sbx_default"); cur.Spec.Networks["sbx-app"].CIDR != "10.10.9.0/24" {
		t.Fatalf("current network: %+v", cur.Spec.Networks)
	}
	if got := e.HeldRevisions("fedramp_sbx_default"); !slices.Equal(got, []string{now.Revision, admitted.Revision}) {
		t.Errorf("HeldRevisions = %v", got)
	}
}

// The revision names the content: the same files loaded again are the same
// revision (a revert, or a restart); a directory and a tarball of the same
// files too.
func TestRevisionIdentifiesContent(t *testing.T) {
	dir := t.TempDir()
	b := writeBundle(t, dir, "b", map[string]string{"policy.rego": allowAllPolicy})
	e := load(t, Options{Dir: dir})
	first, _ := e.Bundle("b")
	if !isRevision(first.Revision, "r1") || first.ManifestRevision != "r1" || !strings.HasPrefix(first.Digest, strings.TrimPrefix(first.Revision, "r1+")) {
		t.Fatalf("info: %+v", first)
	}

	writeFile(t, filepath.Join(b, "policy.rego"), fmt.Sprintf(denyAllPolicy, "edit"))
	reload(t, e)
	edited, _ := e.Bundle("b")
	if edited.Revision == first.Revision || edited.ManifestRevision != "r1" {
		t.Fatalf("edited: %+v", edited)
	}

	writeFile(t, filepath.Join(b, "policy.rego"), allowAllPolicy)
	reload(t, e)
	if reverted, _ := e.Bundle("b"); reverted.Revision != first.Revision {
		t.Fatalf("revert: revision %q, want %q", reverted.Revision, first.Revision)
	}
	if got := e.HeldRevisions("b"); !slices.Equal(got, []string{first.Revision, edited.Revision}) {
		t.Errorf("HeldRevisions after a revert = %v", got)
	}

	restarted := load(t, Options{Dir: dir})
	d, err := restarted.EvaluateAt(context.Background(), "b", first.Revision, ipInput("b", "sbx", nil))
	if err != nil || !d.Allow {
		t.Fatalf("after a restart with the same files: %+v, %v", d, err)
	}

	tarDir := t.TempDir()
	tarBundle(t, b, filepath.Join(tarDir, "b.tar.gz"))
	if tb, _ := load(t, Options{Dir: tarDir}).Bundle("b"); tb.Revision != first.Revision {
		t.Errorf("tarball revision %q, directory %q", tb.Revision, first.Revision)
	}

	if got := contentRevision("1.2.3+build.7", first.Digest); got != "1.2.3+build.7."+first.Digest[:16] {
		t.Errorf("contentRevision with build metadata = %q", got)
	}
}

func mustBeGone(t *testing.T, d api.Decision, err error, bundle, revision string) {
	t.Helper()
	if !errors.Is(err, ErrRevisionGone) || !errors.Is(err, ErrPolicyFailure) {
		t.Fatalf("err = %v, want ErrRevisionGone and ErrPolicyFailure", err)
	}
	v := mustDeny(t, d, RuleRevisionGone)
	if len(d.Violations) != 1 || d.Bundle != bundle || d.Revision != revision || !reUUID.MatchString(d.DecisionID) {
		t.Fatalf("decision: %+v", d)
	}
	if revision != "" && (!strings.Contains(v.Message, bundle) || !strings.Contains(v.Message, revision) || !strings.Contains(v.Message, "no longer loaded")) {
		t.Errorf("message = %q", v.Message)
	}
}

// A revision that is not held is never replaced by another: evicted, from
// before a restart, unknown, empty — each is a deny with an error.
func TestEvaluateAtFailsClosedWhenTheRevisionIsGone(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	b := writeBundle(t, dir, "b", map[string]string{"policy.rego": allowAllPolicy})
	e := load(t, Options{Dir: dir, MaxHeldRevisions: 3})
	first, _ := e.Bundle("b")
	var revs []string
	for i := range 3 {
		writeFile(t, filepath.Join(b, "policy.rego"), fmt.Sprintf(denyAllPolicy, fmt.Sprint(i)))
		reload(t, e)
		info, _ := e.Bundle("b")
		revs = append(revs, info.Revision)
	}
	if got := e.HeldRevisions("b"); !slices.Equal(got, []string{revs[2], revs[1], revs[0]}) {
		t.Fatalf("HeldRevisions = %v", got)
	}

	d, err := e.EvaluateAt(ctx, "b", first.Revision, ipInput("b", "sbx", nil))
	mustBeGone(t, d, err, "b", first.Revision)
	if _, ok := e.BundleAt("b", first.Revision); ok {
		t.Error("BundleAt found an evicted revision")
	}
	if d, err := e.EvaluateAt(ctx, "b", revs[0], ipInput("b", "sbx", nil)); err != nil || d.Allow || d.Revision != revs[0] {
		t.Fatalf("oldest held revision: %+v, %v", d, err)
	}

	for _, c := range []struct{ bundle, revision string }{
		{"b", "r1+0000000000000000"}, // never loaded
		{"b", "r1"},                  // the manifest's revision alone names no content
		{"b", ""},
		{"nope", first.Revision},
	} {
		d, err := e.EvaluateAt(ctx, c.bundle, c.revision, ipInput(c.bundle, "sbx", nil))
		mustBeGone(t, d, err, c.bundle, c.revision)
	}

	// A restart with other files on disk holds only what is on disk.
	writeFile(t, filepath.Join(b, "policy.rego"), fmt.Sprintf(denyAllPolicy, "after restart"))
	restarted := load(t, Options{Dir: dir})
	d, err = restarted.EvaluateAt(ctx, "b", revs[2], ipInput("b", "sbx", nil))
	mustBeGone(t, d, err, "b", revs[2])
}

// What a revision approved stays judged by it when its bundle later breaks
// or is removed; new requests are denied.
func TestHeldRevisionOutlivesABrokenOrRemovedBundle(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	b := writeBundle(t, dir, "b", map[string]string{"policy.rego": allowAllPolicy})
	e := load(t, Options{Dir: dir})
	admitted, err := e.Evaluate(ctx, "b", ipInput("b", "sbx", nil))
	if err != nil || !admitted.Allow {
		t.Fatal(admitted, err)
	}

	writeFile(t, filepath.Join(b, "policy.rego"), "package sas.policy\n\nallow if {\n")
	reload(t, e)
	if d, _ := e.Evaluate(ctx, "b", ipInput("b", "sbx", nil)); d.Allow {
		t.Fatal("a broken bundle allowed a new request")
	}
	if d, err := e.EvaluateAt(ctx, "b", admitted.Revision, ipInput("b", "sbx", nil)); err != nil || !d.Allow {
		t.Fatalf("approving revision after the bundle broke: %+v, %v", d, err)
	}
	broken, _ := e.Bundle("b")
	if d, err := e.EvaluateAt(ctx, "b", broken.Revision, ipInput("b", "sbx", nil)); !errors.Is(err, ErrPolicyFailure) || d.Allow {
		t.Fatalf("the broken revision: %+v, %v", d, err)
	}

	if err := os.RemoveAll(b); err != nil {
		t.Fatal(err)
	}
	writeBundle(t, dir, "other", map[string]string{"policy.rego": allowAllPolicy})
	reload(t, e)
	if _, ok := e.Bundle("b"); ok {
		t.Fatal("a removed bundle is still current")
	}
	if d, err := e.EvaluateAt(ctx, "b", admitted.Revision, ipInput("b", "sbx", nil)); err != nil || !d.Allow {
		t.Fatalf("approving revision after the bundle was removed: %+v, %v", d, err)
	}
}

// A content whose revision is held for other content (a digest-prefix
// collision) is refused rather than allowed to stand for it.
func TestRevisionHeldForOtherContentIsRefused(t *testing.T) {
	dir := t.TempDir()
	writeBundle(t, dir, "b", map[string]string{"policy.rego": allowAllPolicy})
	e := load(t, Options{Dir: dir})
	cur, _ := e.Bundle("b")
	impostor := &compiledBundle{info: BundleInfo{Name: "b", Revision: cur.Revision, Digest: strings.Repeat("0", 64)}}
	prev := &bundleSet{bundles: map[string]*compiledBundle{}, held: map[string][]*compiledBundle{"b": {impostor}}}
	set, err := e.loadSet(context.Background(), prev)
	if err != nil {
		t.Fatal(err)
	}
	got := set.bundles["b"]
	if got.query != nil || !strings.Contains(got.info.Error, "already held for other content") || got.info.Revision == cur.Revision {
		t.Fatalf("colliding content loaded: %+v", got.info)
	}
	if h := set.held["b"]; len(h) != 1 || h[0] != impostor {
		t.Fatalf("held = %v", h)
	}
}

// Run with -race: admission decisions under the current revision,
// EvaluateAt under the first, and reloads from two goroutines at once. The
// first revision allows and every later one denies, so a decision made by
// the wrong revision shows.
func TestConcurrentEvaluateAtDuringReloads(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	b := writeBundle(t, dir, "b", map[string]string{"policy.rego": allowAllPolicy})
	e := load(t, Options{Dir: dir, MaxHeldRevisions: 64})
	first, _ := e.Bundle("b")

	var stop atomic.Bool
	var atCount, nowCount atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for range 4 {
		wg.Go(func() {
			for !stop.Load() {
				d, err := e.EvaluateAt(ctx, "b", first.Revision, ipInput("b", "sbx", nil))
				if err != nil || !d.Allow || d.Revision != first.Revision {
					errs <- fmt.Errorf("EvaluateAt: %+v, %v", d, err)
					return
				}
				if info, ok := e.BundleAt("b", first.Revision); !ok || info.Digest != first.Digest {
					errs <- fmt.Errorf("BundleAt: %v %+v", ok, info)
					return
				}
				atCount.Add(1)
			}
		})
		wg.Go(func() {
			for !stop.Load() {
				d, _ := e.Evaluate(ctx, "b", ipInput("b", "sbx", nil))
				if d.Allow != (d.Revision == first.Revision) {
					errs <- fmt.Errorf("Evaluate: allow=%v under revision %q (first %q)", d.Allow, d.Revision, first.Revision)
					return
				}
				_ = e.HeldRevisions("b")
				nowCount.Add(1)
			}
		})
	}
	wg.Go(func() { // a second reloader, as Watch and SIGHUP can be
		for !stop.Load() {
			_ = e.Reload(ctx)
		}
	})
	for i := range 20 {
		writeFile(t, filepath.Join(b, "policy.rego"), fmt.Sprintf(denyAllPolicy, fmt.Sprint("r", i)))
		reload(t, e)
	}
	stop.Store(true)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if atCount.Load() == 0 || nowCount.Load() == 0 {
		t.Errorf("decisions: %d EvaluateAt, %d Evaluate", atCount.Load(), nowCount.Load())
	}
	if d, _ := e.Evaluate(ctx, "b", ipInput("b", "sbx", nil)); d.Allow {
		t.Error("the last revision should deny")
	}
}
