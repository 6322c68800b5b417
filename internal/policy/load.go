package policy

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/bundle"
	"github.com/open-policy-agent/opa/v1/loader/filter"
	"github.com/open-policy-agent/opa/v1/rego"
	"github.com/open-policy-agent/opa/v1/storage/inmem"

	"github.com/sas-platform/terraform-provider-sas/internal/api"
)

// The query every bundle answers; one prepared query per bundle.
const decisionQuery = "allow := data.sas.policy.allow; violations := data.sas.policy.violations"

var (
	allowRef      = ast.MustParseRef("data.sas.policy.allow")
	violationsRef = ast.MustParseRef("data.sas.policy.violations")
	bundleNameRE  = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,62}$`)
)

// Builtins a bundle may not call: they reach the network or the gateway
// process (opa.runtime exposes its environment, which may hold Vault
// credentials). A bundle that uses one fails to compile, hence denies.
var forbiddenBuiltins = map[string]bool{
	"http.send":          true,
	"net.lookup_ip_addr": true,
	"opa.runtime":        true,
	"trace":              true,
}

// capabilities is this OPA version's builtins minus forbiddenBuiltins; the
// gateway and the Rego test runner compile with the same set.
var capabilities = func() *ast.Capabilities {
	c := ast.CapabilitiesForThisVersion()
	c.Builtins = slices.DeleteFunc(c.Builtins, func(b *ast.Builtin) bool { return forbiddenBuiltins[b.Name] })
	c.AllowNet = []string{}
	return c
}()

// source is one bundle on disk: a directory or a .tar.gz.
type source struct {
	name    string
	path    string
	tarball bool
	err     error // e.g. the name is defined twice
}

// discover lists the bundles in dir, sorted by name.
func discover(dir string, log hclog.Logger) ([]source, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("policy: read bundle directory: %w", err)
	}
	byName := map[string]source{}
	for _, ent := range entries {
		fname := ent.Name()
		if strings.HasPrefix(fname, ".") {
			continue
		}
		path := filepath.Join(dir, fname)
		info, err := os.Stat(path) // follows symlinks (e.g. mounted config)
		if err != nil {
			continue
		}
		var src source
		switch {
		case info.IsDir():
			if _, err := os.Stat(filepath.Join(path, bundle.ManifestExt)); err != nil {
				log.Warn("policy: skipping directory without .manifest (not a bundle)", "path", path)
				continue
			}
			if real, err := filepath.EvalSymlinks(path); err == nil {
				path = real // OPA's directory loader does not walk a symlinked root
			}
			src = source{name: fname, path: path}
		case strings.HasSuffix(fname, ".tar.gz"):
			src = source{name: strings.TrimSuffix(fname, ".tar.gz"), path: path, tarball: true}
		case strings.HasSuffix(fname, ".tgz"):
			src = source{name: strings.TrimSuffix(fname, ".tgz"), path: path, tarball: true}
		default:
			continue
		}
		if !bundleNameRE.MatchString(src.name) {
			log.Warn("policy: skipping bundle with an invalid name (lowercase letters, digits, '_' and '-')", "path", path)
			continue
		}
		if other, dup := byName[src.name]; dup {
			src.err = fmt.Errorf("bundle %s is defined twice (%s and %s); remove one", src.name, filepath.Base(other.path), fname)
			src.path = other.path + ", " + path
		}
		byName[src.name] = src
	}
	out := make([]source, 0, len(byName))
	for _, s := range byName {
		out = append(out, s)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].name < out[j].name })
	return out, nil
}

// fingerprint hashes the bundle's content (paths and bytes), so Watch
// notices any edit regardless of timestamps.
func (s source) fingerprint() (string, error) {
	if s.err != nil {
		sum := sha256.Sum256([]byte(s.err.Error()))
		return hex.EncodeToString(sum[:]), nil
	}
	h := sha256.New()
	if s.tarball {
		f, err := os.Open(s.path)
		if err != nil {
			return "", err
		}
		defer f.Close()
		if _, err := io.Copy(h, f); err != nil {
			return "", err
		}
		return hex.EncodeToString(h.Sum(nil)), nil
	}
	err := filepath.WalkDir(s.path, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.Type().IsRegular() {
			return nil
		}
		rel, _ := filepath.Rel(s.path, path)
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		fmt.Fprintf(h, "%s\x00%d\x00", filepath.ToSlash(rel), len(b))
		h.Write(b)
		return nil
	})
	if err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// compiledBundle is one loaded bundle: its description and, when it loaded,
// its prepared query. query == nil means deny-all (info.Error says why).
// A compiledBundle is never changed once built: the current set and the
// held revisions share it.
type compiledBundle struct {
	info BundleInfo
	// source is where it was read from; fingerprint hashes that source as
	// it is on disk (Watch compares it), while info.Digest hashes the files
	// the reader actually consumed (what the revision names).
	source      string
	fingerprint string
	query       *rego.PreparedEvalQuery
}

func failedBundle(src source, revision string, err error) *compiledBundle {
	return &compiledBundle{
		info:   BundleInfo{Name: src.name, Revision: revision, Error: err.Error(), LoadedAt: time.Now().UTC(), Data: map[string]any{}},
		source: src.path,
	}
}

// contentRevision is the revision a bundle's content is known by: the
// manifest's revision and a prefix of the content digest (64 bits; the
// evaluator refuses a second content under a revision it holds, so a
// prefix collision cannot make one content stand for another).
func contentRevision(manifestRevision, digest string) string {
	short := digest[:min(16, len(digest))]
	switch {
	case manifestRevision == "":
		return short
	case strings.Contains(manifestRevision, "+"): // already has build metadata
		return manifestRevision + "." + short
	default:
		return manifestRevision + "+" + short
	}
}

// recordingLoader hands OPA's bundle reader each file of the inner loader
// from memory, keeping a copy, so the digest is taken over exactly the
// bytes that were parsed and verified (a file rewritten while the bundle is
// read cannot make the revision name other content than was compiled). The
// same files replayed through NewCustomReader would compile to the same
// bundle: this is the copy a store could keep per revision.
type recordingLoader struct {
	inner    bundle.DirectoryLoader
	maxBytes int64
	files    []bundleFile
}

// bundleFile is one file of a bundle as the reader consumed it.
type bundleFile struct {
	path string
	data []byte
}

var _ bundle.DirectoryLoader = (*recordingLoader)(nil)

func (l *recordingLoader) NextFile() (*bundle.Descriptor, error) {
	d, err := l.inner.NextFile()
	if err != nil {
		return nil, err
	}
	defer d.Close()
	var buf bytes.Buffer
	// One byte over the limit lets the reader report the file as too big.
	if _, err := d.Read(&buf, l.maxBytes+1); err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("read %s: %w", d.Path(), err)
	}
	l.files = append(l.files, bundleFile{path: d.Path(), data: buf.Bytes()})
	return bundle.NewDescriptor(d.URL(), d.Path(), bytes.NewReader(buf.Bytes())), nil
}

func (l *recordingLoader) WithFilter(f filter.LoaderFilter) bundle.DirectoryLoader {
	l.inner = l.inner.WithFilter(f)
	return l
}

func (l *recordingLoader) WithPathFormat(f bundle.PathFormat) bundle.DirectoryLoader {
	l.inner = l.inner.WithPathFormat(f)
	return l
}

func (l *recordingLoader) WithSizeLimitBytes(n int64) bundle.DirectoryLoader {
	l.inner = l.inner.WithSizeLimitBytes(n)
	return l
}

func (l *recordingLoader) WithFollowSymlinks(follow bool) bundle.DirectoryLoader {
	l.inner = l.inner.WithFollowSymlinks(follow)
	return l
}

// digest is the SHA-256 of the recorded files: each one's path (without a
// leading "/"), length and bytes, in path order.
func (l *recordingLoader) digest() string {
	files := slices.Clone(l.files)
	slices.SortStableFunc(files, func(a, b bundleFile) int { return strings.Compare(cleanPath(a.path), cleanPath(b.path)) })
	h := sha256.New()
	for _, f := range files {
		fmt.Fprintf(h, "%s\x00%d\x00", cleanPath(f.path), len(f.data))
		h.Write(f.data)
	}
	return hex.EncodeToString(h.Sum(nil))
}

func cleanPath(p string) string { return strings.TrimPrefix(filepath.ToSlash(p), "/") }

// readBundle reads a bundle from disk with OPA's reader, verifying its
// signature when verification is configured. digest identifies the files
// read (see recordingLoader); it is "" when reading failed.
func readBundle(src source, verify *verification, maxBytes int64) (b *bundle.Bundle, digest string, err error) {
	if src.err != nil {
		return nil, "", src.err
	}
	var loader bundle.DirectoryLoader
	if src.tarball {
		f, err := os.Open(src.path)
		if err != nil {
			return nil, "", err
		}
		defer f.Close()
		loader = bundle.NewTarballLoaderWithBaseURL(f, src.path)
	} else {
		loader = bundle.NewDirectoryLoader(src.path)
	}
	rec := &recordingLoader{inner: loader.WithSizeLimitBytes(maxBytes), maxBytes: maxBytes}
	r := bundle.NewCustomReader(rec).
		WithRegoVersion(ast.RegoV1).
		WithSizeLimitBytes(maxBytes).
		WithBundleName(src.name).
		WithCapabilities(capabilities)
	if verify != nil {
		r = r.WithBundleVerificationConfig(verify.config())
	} else {
		r = r.WithSkipBundleVerification(true)
	}
	read, err := r.Read()
	if err != nil {
		return nil, "", err
	}
	if verify != nil && len(read.Signatures.Signatures) == 0 {
		// OPA's reader already refuses this; keep the invariant local.
		return nil, "", errors.New("bundle is not signed and verification keys are configured")
	}
	return &read, rec.digest(), nil
}

// checkLayout enforces the sas conventions on a read bundle.
func checkLayout(b *bundle.Bundle) error {
	m := b.Manifest
	if m.Revision == "" {
		return errors.New(".manifest: revision is required")
	}
	if m.Roots == nil || !slices.Equal(*m.Roots, []string{"sas"}) {
		return fmt.Errorf(`.manifest: roots must be ["sas"], got %v`, rootsOf(m))
	}
	for _, mf := range b.Modules {
		if !mf.Parsed.Package.Path.HasPrefix(ast.MustParseRef("data.sas")) {
			return fmt.Errorf("%s: package %s is outside the bundle root sas", strings.TrimPrefix(mf.Path, "/"), mf.Parsed.Package.Path)
		}
	}
	for k := range b.Data {
		if k != "sas" {
			return fmt.Errorf("data.json: top-level key %q is outside the bundle root sas", k)
		}
	}
	return nil
}

func rootsOf(m bundle.Manifest) any {
	if m.Roots == nil {
		return "(none)"
	}
	return *m.Roots
}

func isTestModule(path string) bool { return strings.HasSuffix(path, "_test.rego") }

// newCompiler returns the compiler configuration shared by the gateway and
// the Rego test runner.
func newCompiler() *ast.Compiler {
	return ast.NewCompiler().
		WithCapabilities(capabilities).
		WithDefaultRegoVersion(ast.RegoV1).
		WithEnablePrintStatements(false)
}

// compile turns a source into a compiledBundle; any failure yields a
// deny-all entry.
func (e *Evaluator) compile(ctx context.Context, src source) *compiledBundle {
	b, digest, err := readBundle(src, e.verify, e.opts.MaxBundleBytes)
	if err != nil {
		return failedBundle(src, "", fmt.Errorf("read: %w", err))
	}
	revision := contentRevision(b.Manifest.Revision, digest)
	failed := func(err error) *compiledBundle {
		fb := failedBundle(src, revision, err)
		fb.info.ManifestRevision, fb.info.Digest = b.Manifest.Revision, digest
		return fb
	}
	if err := checkLayout(b); err != nil {
		return failed(err)
	}
	spec, data, err := parseSpec(b.Data)
	if err != nil {
		return failed(err)
	}
	modules := map[string]*ast.Module{}
	for _, mf := range b.Modules {
		if !isTestModule(mf.Path) {
			modules[mf.Path] = mf.Parsed
		}
	}
	c := newCompiler()
	if c.Compile(modules); c.Failed() {
		return failed(fmt.Errorf("compile: %w", c.Errors))
	}
	for _, ref := range []ast.Ref{allowRef, violationsRef} {
		if len(c.GetRulesExact(ref)) == 0 {
			return failed(fmt.Errorf("package sas.policy defines no rule %s", string(ref[len(ref)-1].Value.(ast.String))))
		}
	}
	// The store is never written after load; keeping it as AST values saves
	// converting data.sas.bundle on every evaluation.
	store := inmem.NewFromObjectWithOpts(b.Data, inmem.OptRoundTripOnWrite(false), inmem.OptReturnASTValuesOnRead(true))
	pq, err := rego.New(
		rego.Query(decisionQuery),
		rego.Compiler(c),
		rego.Store(store),
		rego.StrictBuiltinErrors(true),
	).PrepareForEval(ctx)
	if err != nil {
		return failed(fmt.Errorf("prepare: %w", err))
	}
	return &compiledBundle{
		info: BundleInfo{
			Name:             src.name,
			Revision:         revision,
			ManifestRevision: b.Manifest.Revision,
			Digest:           digest,
			Description:      spec.Description,
			Signed:           len(b.Signatures.Signatures) > 0,
			LoadedAt:         time.Now().UTC(),
			Data:             data,
			Spec:             spec,
		},
		source: src.path,
		query:  &pq,
	}
}

// eval runs the prepared query and checks the shape of the result.
func (b *compiledBundle) eval(ctx context.Context, in Input) (bool, []api.Violation, error) {
	value, err := inputValue(in)
	if err != nil {
		return false, nil, fmt.Errorf("input: %w", err)
	}
	rs, err := b.query.Eval(ctx, rego.EvalParsedInput(value))
	if err != nil {
		return false, nil, err
	}
	if len(rs) != 1 {
		return false, nil, fmt.Errorf("data.sas.policy.allow or data.sas.policy.violations is undefined for this input (%d results)", len(rs))
	}
	allow, ok := rs[0].Bindings["allow"].(bool)
	if !ok {
		return false, nil, fmt.Errorf("data.sas.policy.allow is %T, not a boolean", rs[0].Bindings["allow"])
	}
	vs, err := parseViolations(b.info.Name, rs[0].Bindings["violations"])
	if err != nil {
		return false, nil, err
	}
	return allow, vs, nil
}

// inputValue converts an Input to an AST value without reflection on the
// envelope; the request body goes through JSON when it is not a plain map.
func inputValue(in Input) (ast.Value, error) {
	req := in.Request
	switch r := req.(type) {
	case nil:
		req = map[string]any{}
	case map[string]any:
	case json.RawMessage:
		var m any
		if err := json.Unmarshal(r, &m); err != nil {
			return nil, err
		}
		req = m
	default:
		raw, err := json.Marshal(r)
		if err != nil {
			return nil, err
		}
		var m any
		if err := json.Unmarshal(raw, &m); err != nil {
			return nil, err
		}
		req = m
	}
	reqValue, err := ast.InterfaceToValue(req)
	if err != nil {
		return nil, err
	}
	caller := ast.NewObject(
		ast.Item(ast.StringTerm("owner"), ast.StringTerm(in.Caller.Owner)),
		ast.Item(ast.StringTerm("entity_id"), ast.StringTerm(in.Caller.EntityID)),
		ast.Item(ast.StringTerm("bundles"), stringsTerm(in.Caller.Bundles)),
		ast.Item(ast.StringTerm("policies"), stringsTerm(in.Caller.Policies)),
	)
	obj := ast.NewObject(
		ast.Item(ast.StringTerm("bundle"), ast.StringTerm(in.Bundle)),
		ast.Item(ast.StringTerm("environment"), ast.StringTerm(in.Environment)),
		ast.Item(ast.StringTerm("kind"), ast.StringTerm(in.Kind)),
		ast.Item(ast.StringTerm("action"), ast.StringTerm(in.Action)),
		ast.Item(ast.StringTerm("caller"), ast.NewTerm(caller)),
		ast.Item(ast.StringTerm("request"), ast.NewTerm(reqValue)),
	)
	if in.Schema != nil {
		obj.Insert(ast.StringTerm("schema"), ast.ObjectTerm(
			ast.Item(ast.StringTerm("required"), stringsTerm(in.Schema.Required)),
			ast.Item(ast.StringTerm("mutable"), stringsTerm(in.Schema.Mutable)),
		))
	}
	if r := in.Resource; r != nil {
		spec, err := ast.InterfaceToValue(r.Spec)
		if err != nil {
			return nil, fmt.Errorf("resource spec: %w", err)
		}
		obj.Insert(ast.StringTerm("resource"), ast.ObjectTerm(
			ast.Item(ast.StringTerm("id"), ast.StringTerm(r.ID)),
			ast.Item(ast.StringTerm("bundle"), ast.StringTerm(r.Bundle)),
			ast.Item(ast.StringTerm("environment"), ast.StringTerm(r.Environment)),
			ast.Item(ast.StringTerm("spec"), ast.NewTerm(spec)),
		))
	}
	if in.Plan != nil {
		changes := make([]*ast.Term, len(in.Plan.ResourceChanges))
		for i, c := range in.Plan.ResourceChanges {
			changes[i] = ast.ObjectTerm(
				ast.Item(ast.StringTerm("address"), ast.StringTerm(c.Address)),
				ast.Item(ast.StringTerm("type"), ast.StringTerm(c.Type)),
				ast.Item(ast.StringTerm("actions"), stringsTerm(c.Actions)),
			)
		}
		obj.Insert(ast.StringTerm("plan"), ast.ObjectTerm(ast.Item(ast.StringTerm("resource_changes"), ast.ArrayTerm(changes...))))
	}
	return obj, nil
}

func stringsTerm(xs []string) *ast.Term {
	terms := make([]*ast.Term, len(xs))
	for i, x := range xs {
		terms[i] = ast.StringTerm(x)
	}
	return ast.ArrayTerm(terms...)
}
