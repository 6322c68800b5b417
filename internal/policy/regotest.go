package policy

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/storage/inmem"
	"github.com/open-policy-agent/opa/v1/tester"

	"github.com/sas-platform/terraform-provider-sas/internal/api"
)

// RunRegoTests runs a bundle's Rego tests (test_* rules, usually in
// *_test.rego files) through the engine the gateway uses: the same bundle
// reader, the same compiler capabilities (forbidden builtins removed), the
// same data, and builtin errors raised as in production. path is a bundle
// directory or .tar.gz. Signatures are not checked (tests run before
// signing); the bundle's layout and data.sas.bundle are.
func RunRegoTests(ctx context.Context, path string) ([]*tester.Result, error) {
	info, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	base := filepath.Base(path)
	src := source{name: base, path: path}
	if !info.IsDir() {
		src.tarball = true
		src.name = strings.TrimSuffix(strings.TrimSuffix(base, ".tar.gz"), ".tgz")
	}
	b, _, err := readBundle(src, nil, 32<<20)
	if err != nil {
		return nil, fmt.Errorf("bundle %s: read: %w", src.name, err)
	}
	if err := checkLayout(b); err != nil {
		return nil, fmt.Errorf("bundle %s: %w", src.name, err)
	}
	if _, _, err := parseSpec(b.Data); err != nil {
		return nil, fmt.Errorf("bundle %s: %w", src.name, err)
	}
	modules := make(map[string]*ast.Module, len(b.Modules))
	for _, mf := range b.Modules {
		modules[mf.Path] = mf.Parsed
	}
	// Tests build inputs as the gateway does: data.sas.kinds holds each
	// kind's schema from the kinds table (what the gateway puts in input.schema).
	data := b.Data
	if sas, ok := data["sas"].(map[string]any); ok {
		kinds := map[string]any{}
		for _, k := range api.Kinds {
			kinds[k] = api.PolicySchema(k)
		}
		raw, err := json.Marshal(kinds)
		if err != nil {
			return nil, err
		}
		var generic any
		if err := json.Unmarshal(raw, &generic); err != nil {
			return nil, err
		}
		sas["kinds"] = generic
	}
	store := inmem.NewFromObjectWithOpts(data, inmem.OptRoundTripOnWrite(false))
	txn, err := store.NewTransaction(ctx)
	if err != nil {
		return nil, err
	}
	defer store.Abort(ctx, txn)
	ch, err := tester.NewRunner().
		SetCompiler(newCompiler()).
		SetStore(store).
		SetModules(modules).
		RaiseBuiltinErrors(true).
		CapturePrintOutput(false).
		RunTests(ctx, txn)
	if err != nil {
		return nil, fmt.Errorf("bundle %s: %w", src.name, err)
	}
	var results []*tester.Result
	for r := range ch {
		results = append(results, r)
	}
	return results, nil
}
