// Package policy is the gateway's BundleEvaluator: it loads OPA policy
// bundles (one bundle = one named policy set), compiles one prepared query
// per bundle, and answers "may this request proceed?" with an api.Decision.
//
// Conventions every bundle follows (the gateway and the provider rely on
// them): policy in package sas.policy, manifest roots ["sas"], the bundle's
// declaration of what it allows in data.sas.bundle (see BundleSpec), and two
// rules the evaluator reads: data.sas.policy.allow (boolean) and
// data.sas.policy.violations (a set of {rule, message, path, control_ids}).
//
// The evaluator fails closed. A decision allows only when the query
// succeeded, allow is exactly true and there are no violations; a bundle that
// does not parse, compile, verify or validate, an evaluation error, an
// undefined or non-boolean allow — each is a deny carrying a "policy_error"
// violation that names the bundle and what failed.
//
// Every decision names the revision of the bundle that made it
// (api.Decision.Revision, which identifies the bundle's content). What is
// judged later on behalf of an admitted request — a module run's plan, a
// network resolved for it — is judged by that same revision with
// EvaluateAt and BundleAt, never by whatever was loaded since; a revision
// no longer held fails closed (ErrRevisionGone). See revisions.go.
package policy

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"maps"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/sas-platform/terraform-provider-sas/internal/api"
)

// Rule names the evaluator itself reports (bundles report their own).
const (
	// RulePolicyError: the bundle could not decide (load, compile or
	// evaluation failure, malformed result). Always a deny.
	RulePolicyError = "policy_error"
	// RuleBundleUnknown: no bundle of that name is loaded.
	RuleBundleUnknown = "bundle_unknown"
	// RuleEnvironmentNotAllowed: the environment is not in the bundle's
	// declared environments. Bundles report it too; the evaluator enforces it
	// again from data.sas.bundle.environments in case a bundle's rules forget.
	RuleEnvironmentNotAllowed = "environment_not_allowed"
)

// ErrPolicyFailure marks a deny caused by a failure (a bundle that did not
// load, an evaluation error, a malformed result, a cancelled context) rather
// than by the policy's rules. The decision returned with it is still a valid
// deny; the error is for logs and metrics.
var ErrPolicyFailure = errors.New("policy evaluation failed")

// Options configure Load.
type Options struct {
	// Dir holds the bundles: each subdirectory with a .manifest and each
	// *.tar.gz / *.tgz file is one bundle named after its base name.
	// Entries whose names start with "." are ignored.
	Dir string
	// VerificationKeys, when non-empty, make signatures mandatory: a bundle
	// without a valid .signatures.json from one of these keys is refused
	// (and denies every request).
	VerificationKeys []VerificationKey
	// EvalTimeout bounds one evaluation (default 2s).
	EvalTimeout time.Duration
	// MaxBundleBytes bounds the size of any file in a bundle (default 32 MiB).
	MaxBundleBytes int64
	// Logger receives load, reload and failure events (default: discard).
	Logger hclog.Logger
	// MaxHeldRevisions is how many compiled revisions of each bundle the
	// evaluator keeps for EvaluateAt and BundleAt, the current one included
	// (default DefaultMaxHeldRevisions). Older ones are evicted, and an
	// operation approved under an evicted revision cannot run.
	MaxHeldRevisions int
}

// Input is the policy input document: what the gateway knows about one
// request. Request is the JSON request body (a map or one of the api request
// types); nil is sent as {}.
//
// Every caller-facing action is judged by the bundle of the resource or
// operation it concerns (Bundle and Environment are theirs):
//   - create, update, delete: Request is the decoded body.
//   - read of a resource: Action "read", Request a ReadRequest {"id": ..}
//     (Refresh set for a drift check), Resource the stored resource.
//   - read of an operation's log: Action "read", Kind the operation's kind,
//     Request a ReadRequest {"id": <resource id or "">, "operation_id": ..,
//     "log": true}.
//   - cancel of an unfinished operation: Action api.ActionCancel, Kind the
//     operation's kind, Request a CancelRequest; Resource the target of an
//     update or delete (nil for a create).
//
// A cancel follows the rules of the action it stops: a create's is judged
// as a delete of that kind (it is undone), an update's or a delete's as that
// update or delete, change ticket included. Bundles do not list cancel.
type Input struct {
	Bundle      string `json:"bundle"`
	Environment string `json:"environment"`
	Kind        string `json:"kind"`
	Action      string `json:"action"`
	Caller      Caller `json:"caller"`
	Request     any    `json:"request"`
	// Schema is the kind's field rules from the kinds table (required and
	// mutable fields), so the policy never keeps its own copy.
	Schema *api.Schema `json:"schema,omitempty"`
	// Resource is the existing resource an update, delete or read acts on,
	// as the gateway stored it; Bundle and Environment above are its own.
	Resource *Resource `json:"resource,omitempty"`
	// Plan is the Terraform plan a module run would apply, judged before
	// it is (input.plan.resource_changes: address, type, actions).
	Plan *Plan `json:"plan,omitempty"`
}

// ReadRequest is Input.Request of a read: of a resource (ID, Refresh for a
// drift check) or of an operation's log (OperationID and Log; ID is the
// operation's resource id, or "" when it has none yet).
type ReadRequest struct {
	ID          string `json:"id"`
	OperationID string `json:"operation_id,omitempty"`
	Log         bool   `json:"log,omitempty"`
	Refresh     bool   `json:"refresh,omitempty"`
}

// CancelRequest is Input.Request of a cancel (Action api.ActionCancel).
type CancelRequest struct {
	// Cancels is the action of the operation being cancelled: create,
	// update or delete. Anything else is denied (cancel_target_unknown).
	Cancels     string `json:"cancels"`
	OperationID string `json:"operation_id"`
	// ChangeTicket is the one the caller sent with the cancel; bundles that
	// require tickets want it whenever the cancelled action would. The
	// cancelled create's own ticket (in Spec) does not count.
	ChangeTicket string `json:"change_ticket,omitempty"`
	// Spec is the cancelled create's request, for a create only.
	Spec any `json:"spec,omitempty"`
}

// Plan is a module run's saved plan as policies see it.
type Plan struct {
	ResourceChanges []PlanChange `json:"resource_changes"`
}

// PlanChange is one resource change of a plan.
type PlanChange struct {
	Address string   `json:"address"`
	Type    string   `json:"type"`
	Actions []string `json:"actions"`
}

// Resource is a stored resource as policies see it.
type Resource struct {
	ID          string `json:"id"`
	Bundle      string `json:"bundle"`
	Environment string `json:"environment"`
	Spec        any    `json:"spec"`
}

// Caller is the verified identity behind a request, from Vault.
type Caller struct {
	Owner    string   `json:"owner"`
	EntityID string   `json:"entity_id"`
	Bundles  []string `json:"bundles"`
	Policies []string `json:"policies"`
}

// Evaluator holds the compiled bundles. It is safe for concurrent use:
// Evaluate reads an immutable snapshot, Reload builds a new one and swaps it
// in atomically, so a decision is made entirely by one revision of a bundle.
// Besides the current revision of each bundle it holds the last
// Options.MaxHeldRevisions it has served, so that what a revision approved is
// later judged by that same revision (EvaluateAt).
type Evaluator struct {
	opts   Options
	log    hclog.Logger
	verify *verification

	current  atomic.Pointer[bundleSet]
	reloadMu sync.Mutex
}

// bundleSet is one immutable generation of loaded bundles.
type bundleSet struct {
	bundles map[string]*compiledBundle
	names   []string
	// held are the compiled revisions of each bundle, oldest first, the
	// current one last when it compiled; bundles that failed to load are
	// never held. A generation's slices are never changed: the next
	// generation copies what it changes.
	held map[string][]*compiledBundle
}

// Load reads every bundle in opts.Dir and compiles it. It fails when the
// directory cannot be read, when the verification keys are unusable or when
// the directory holds no bundle at all; a single bundle that fails to load
// does not fail Load — it is kept as a deny-all entry (see Reload) and its
// error is logged and shown in BundleInfo.Error.
func Load(ctx context.Context, opts Options) (*Evaluator, error) {
	if opts.Dir == "" {
		return nil, errors.New("policy: no bundle directory configured")
	}
	if opts.EvalTimeout <= 0 {
		opts.EvalTimeout = 2 * time.Second
	}
	if opts.MaxBundleBytes <= 0 {
		opts.MaxBundleBytes = 32 << 20
	}
	if opts.Logger == nil {
		opts.Logger = hclog.NewNullLogger()
	}
	if opts.MaxHeldRevisions <= 0 {
		opts.MaxHeldRevisions = DefaultMaxHeldRevisions
	}
	verify, err := newVerification(opts.VerificationKeys)
	if err != nil {
		return nil, err
	}
	e := &Evaluator{opts: opts, log: opts.Logger.Named("policy"), verify: verify}
	set, err := e.loadSet(ctx, nil)
	if err != nil {
		return nil, err
	}
	if len(set.names) == 0 {
		return nil, fmt.Errorf("policy: no bundles in %s (expected bundle directories with a .manifest, or .tar.gz files)", opts.Dir)
	}
	e.current.Store(set)
	return e, nil
}

// Reload re-reads the bundle directory and atomically swaps in the new set.
// Bundles whose files did not change keep their compiled query; decisions in
// flight finish on the generation they started with.
//
// A bundle that fails to load (parse, compile, signature, data validation)
// replaces its previous version with a deny-all entry rather than keeping
// the last good one: the operator changed it for a reason — often to revoke
// access — so silently continuing to enforce the old, possibly more
// permissive revision (and stamping decisions with a revision that is no
// longer on disk) would be failing open. The failure is logged at ERROR,
// shown in BundleInfo.Error, and named in every denied decision's violation.
//
// New requests are judged by the new set; what an earlier revision already
// approved stays judged by that revision (EvaluateAt), which stays held
// until Options.MaxHeldRevisions newer ones of its bundle have been served —
// also when its bundle is removed or now fails to load.
//
// Reload returns an error, and keeps the current set, only when the
// directory itself cannot be read.
func (e *Evaluator) Reload(ctx context.Context) error {
	e.reloadMu.Lock()
	defer e.reloadMu.Unlock()
	prev := e.current.Load()
	set, err := e.loadSet(ctx, prev)
	if err != nil {
		e.log.Error("policy reload failed; keeping the current bundles", "dir", e.opts.Dir, "error", err)
		return err
	}
	if len(set.names) == 0 {
		e.log.Warn("policy reload found no bundles; every request will be denied", "dir", e.opts.Dir)
	}
	e.current.Store(set)
	for name := range prev.bundles {
		if _, ok := set.bundles[name]; !ok {
			e.log.Info("policy bundle removed", "bundle", name)
		}
	}
	return nil
}

// Watch polls the bundle directory every interval and reloads when any
// bundle's content changed (a content hash, not mtimes, so fast edits are
// not missed). It returns when ctx is done. The gateway also calls Reload
// on SIGHUP.
func (e *Evaluator) Watch(ctx context.Context, interval time.Duration) {
	if interval <= 0 {
		interval = 5 * time.Second
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		changed, err := e.changed()
		if err != nil {
			e.log.Warn("policy watch: cannot read bundle directory", "dir", e.opts.Dir, "error", err)
			continue
		}
		if changed {
			_ = e.Reload(ctx) // logged by Reload
		}
	}
}

// changed reports whether the bundles on disk differ from the loaded set.
func (e *Evaluator) changed() (bool, error) {
	sources, err := discover(e.opts.Dir, e.log)
	if err != nil {
		return false, err
	}
	set := e.current.Load()
	if len(sources) != len(set.bundles) {
		return true, nil
	}
	for _, src := range sources {
		b, ok := set.bundles[src.name]
		if !ok {
			return true, nil
		}
		fp, err := src.fingerprint()
		if err != nil || fp != b.fingerprint {
			return true, nil
		}
	}
	return false, nil
}

// Bundles describes every loaded bundle, sorted by name, including those
// that failed to load (Error set).
func (e *Evaluator) Bundles() []BundleInfo {
	set := e.current.Load()
	out := make([]BundleInfo, 0, len(set.names))
	for _, name := range set.names {
		out = append(out, set.bundles[name].info.clone())
	}
	return out
}

// Revision is a loaded bundle's current revision ("" when not loaded),
// without copying its declaration as Bundle does: for every request's audit.
func (e *Evaluator) Revision(name string) string {
	if b, ok := e.current.Load().bundles[name]; ok {
		return b.info.Revision
	}
	return ""
}

// Bundle describes one bundle.
func (e *Evaluator) Bundle(name string) (BundleInfo, bool) {
	b, ok := e.current.Load().bundles[name]
	if !ok {
		return BundleInfo{}, false
	}
	return b.info.clone(), true
}

// Evaluate decides one request under the named bundle. The decision is
// always usable: every failure is a deny with a violation explaining it.
// The error is non-nil (wrapping ErrPolicyFailure) only when the deny comes
// from a failure rather than from the bundle's rules; an unknown bundle is
// a plain deny. input.Bundle is set to bundle.
func (e *Evaluator) Evaluate(ctx context.Context, bundle string, input Input) (api.Decision, error) {
	d := api.Decision{Bundle: bundle, DecisionID: newDecisionID(), Violations: []api.Violation{}}
	set := e.current.Load()
	b, ok := set.bundles[bundle]
	if !ok {
		d.Violations = append(d.Violations, api.Violation{
			Rule:       RuleBundleUnknown,
			Message:    fmt.Sprintf("bundle %q is not loaded on this gateway; loaded bundles: %s", bundle, fmtList(set.names)),
			ControlIDs: []string{"AC-3"},
		})
		return d, nil
	}
	return e.decide(ctx, d, b, input)
}

// decide judges input by one compiled revision of a bundle; d is the
// decision's envelope (bundle, decision id).
func (e *Evaluator) decide(ctx context.Context, d api.Decision, b *compiledBundle, input Input) (api.Decision, error) {
	bundle := b.info.Name
	d.Revision = b.info.Revision
	if b.query == nil {
		d.Violations = append(d.Violations, policyError("bundle %s failed to load and denies every request: %s", bundle, b.info.Error))
		return d, fmt.Errorf("%w: bundle %s: %s", ErrPolicyFailure, bundle, b.info.Error)
	}
	input.Bundle = bundle
	if input.Schema == nil {
		input.Schema = api.PolicySchema(input.Kind) // the kinds table, never a copy in Rego
	}
	ctx, cancel := context.WithTimeout(ctx, e.opts.EvalTimeout)
	defer cancel()
	allow, violations, err := b.eval(ctx, input)
	if err != nil {
		d.Violations = append(d.Violations, policyError("bundle %s could not evaluate the request: %v", bundle, err))
		return d, fmt.Errorf("%w: bundle %s: %w", ErrPolicyFailure, bundle, err)
	}
	d.Violations = violations
	if !slices.Contains(b.info.Spec.Environments, input.Environment) && !hasRule(violations, RuleEnvironmentNotAllowed) {
		d.Violations = append(d.Violations, api.Violation{
			Rule:       RuleEnvironmentNotAllowed,
			Message:    fmt.Sprintf("bundle %s allows environments %s; %q is not one of them", bundle, fmtList(b.info.Spec.Environments), input.Environment),
			ControlIDs: []string{"AC-3", "AC-6"},
		})
	}
	if !allow && len(d.Violations) == 0 {
		d.Violations = append(d.Violations, policyError("bundle %s denied the request (allow is false) without reporting a violation", bundle))
	}
	d.Allow = allow && len(d.Violations) == 0
	if hasRule(d.Violations, RulePolicyError) {
		return d, fmt.Errorf("%w: bundle %s returned a malformed result", ErrPolicyFailure, bundle)
	}
	return d, nil
}

func policyError(format string, args ...any) api.Violation {
	return api.Violation{Rule: RulePolicyError, Message: fmt.Sprintf(format, args...), ControlIDs: []string{"SC-24"}}
}

func hasRule(vs []api.Violation, rule string) bool {
	return slices.ContainsFunc(vs, func(v api.Violation) bool { return v.Rule == rule })
}

// loadSet builds a new generation from disk, reusing prev's compiled
// bundles whose content is unchanged.
func (e *Evaluator) loadSet(ctx context.Context, prev *bundleSet) (*bundleSet, error) {
	if _, err := os.Stat(e.opts.Dir); err != nil {
		return nil, fmt.Errorf("policy: bundle directory: %w", err)
	}
	sources, err := discover(e.opts.Dir, e.log)
	if err != nil {
		return nil, err
	}
	set := &bundleSet{bundles: make(map[string]*compiledBundle, len(sources))}
	for _, src := range sources {
		fp, fpErr := src.fingerprint()
		if fpErr == nil && prev != nil {
			if old, ok := prev.bundles[src.name]; ok && old.fingerprint == fp && old.source == src.path {
				set.bundles[src.name] = old
				continue
			}
		}
		var b *compiledBundle
		if fpErr != nil {
			b = failedBundle(src, "", fpErr)
		} else {
			b = e.compile(ctx, src)
			if err := prev.revisionConflict(b); err != nil {
				b = failedBundle(src, b.info.ManifestRevision+"+"+b.info.Digest, err)
			}
			b.fingerprint = fp
		}
		if b.info.Error != "" {
			e.log.Error("policy bundle failed to load; it denies every request until fixed", "bundle", src.name, "source", src.path, "error", b.info.Error)
		} else {
			e.log.Info("policy bundle loaded", "bundle", src.name, "revision", b.info.Revision, "signed", b.info.Signed, "source", src.path)
		}
		set.bundles[src.name] = b
	}
	set.names = slices.Sorted(maps.Keys(set.bundles))
	set.held = e.hold(prev, set)
	return set, nil
}

func fmtList(xs []string) string {
	out := "["
	for i, x := range xs {
		if i > 0 {
			out += ", "
		}
		out += x
	}
	return out + "]"
}

// newDecisionID returns a random UUID (version 4).
func newDecisionID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	h := hex.EncodeToString(b[:])
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:32]
}
