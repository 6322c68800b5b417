// Package admission is boundary ②, once: every caller-facing action —
// create, update, delete, read, refresh, list, an operation's status, its
// log, its cancellation, and the dry run of a create, read, update or
// delete — is admitted or refused here, by one function taking plain
// values and returning plain values. The HTTP handlers (and any other
// interface: an agent's tool call) are adapters around it.
//
// The rules it keeps, for every action:
//   - an existing resource or operation is judged in its own bundle and
//     environment, never in the one a request names;
//   - every action is put to that bundle's policy (cancel under the rules of
//     the action it stops), and the decision is what the audit record says;
//   - a dry run is Admit with DryRun set: the same checks in the same order,
//     stopping before anything is stored.
package admission

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"

	"github.com/hashicorp/go-hclog"

	"github.com/sas-platform/terraform-provider-sas/internal/api"
	"github.com/sas-platform/terraform-provider-sas/internal/audit"
	"github.com/sas-platform/terraform-provider-sas/internal/caller"
	"github.com/sas-platform/terraform-provider-sas/internal/operations"
	"github.com/sas-platform/terraform-provider-sas/internal/policy"
)

// Actions a caller can ask for. Create, update and delete are the kinds
// table's; the rest are judged by the policy as the action they are
// (read, or cancel).
const (
	Create  = api.ActionCreate
	Update  = api.ActionUpdate
	Delete  = api.ActionDelete
	Read    = api.ActionRead // one resource, read through to its downstream system
	Refresh = "refresh"      // one resource compared with its downstream system (drift)
	List    = "list"         // the caller's resources of a kind in this bundle and environment
	Status  = "status"       // an operation's state
	Log     = "log"          // what an operation's steps printed
	Cancel  = api.ActionCancel
)

// policyAction is how the bundle's policy names an action.
func policyAction(action string) string {
	switch action {
	case Refresh, List, Status, Log:
		return api.ActionRead
	}
	return action
}

// mutates reports whether action is answered with an operation.
func mutates(action string) bool {
	return action == Create || action == Update || action == Delete
}

// onOperation reports whether the action names an operation, not a resource.
func onOperation(action string) bool {
	return action == Status || action == Log || action == Cancel
}

// BundleEvaluator is the policy engine as admission uses it.
type BundleEvaluator interface {
	Evaluate(ctx context.Context, bundle string, in policy.Input) (api.Decision, error)
	Bundle(name string) (policy.BundleInfo, bool)
	// Revision is a bundle's current revision, cheaply.
	Revision(name string) string
	// BundleAt is one revision of a bundle (the one that decided).
	BundleAt(name, revision string) (policy.BundleInfo, bool)
	Bundles() []policy.BundleInfo
}

// KindCheck is a check a kind needs beyond its table's field rules, against
// configuration only the gateway has (a module run's inputs against the
// operator's catalog). It returns an *api.InvalidRequestError naming the
// field, or nil.
//
// A check that resolves something the executor will need (the catalog
// entry a module run was approved for) records it in approval.
type KindCheck func(ctx context.Context, action string, req api.Validator, target *operations.Resource, prefix string, approval *api.Approval) error

// Gate admits requests.
type Gate struct {
	Policy BundleEvaluator
	Book   *operations.Book
	// Seal replaces a secret value by its keyed digest.
	Seal func(string) string
	// Checks are the kinds' extra checks, by kind.
	Checks map[string]KindCheck
	// Executes reports whether this gateway can execute operations of a kind.
	Executes func(kind string) bool
	// Queue runs what Commit stores; Secrets hands a new operation's
	// secret values to its executor.
	Queue   Queue
	Secrets SecretCourier
	Logger  hclog.Logger
}

// Request is one action as a caller asked for it.
type Request struct {
	Caller caller.Caller
	// Bundle and Environment are what the caller named (headers); empty
	// for actions on an operation, which are judged in the operation's own.
	Bundle, Environment string
	Kind                string
	Action              string
	// TargetID is the resource (update, delete, read, refresh) or the
	// operation (status, log, cancel) acted on; TargetParam says where the
	// caller put it ("path:id", "/target_id"), for errors.
	TargetID, TargetParam string
	Body                  []byte
	// BodyPrefix is the body's JSON pointer in the caller's message ("" or
	// "/request" in a dry run), for errors.
	BodyPrefix     string
	IdempotencyKey string
	RequestID      string
	// DryRun decides only: nothing is stored, whatever the decision.
	DryRun bool
}

// Admission is the gate's answer.
type Admission struct {
	// Decision is the policy's; Allow false is a denial (403, or a dry
	// run's answer).
	Decision api.Decision
	// Audit holds what the request's audit record says of the decision:
	// kind, action, target, bundle, environment, revision, decision id,
	// violations, control ids and the decision itself.
	Audit audit.Record
	// Target is the resource acted on (nil for a create, a list, or an
	// operation whose resource does not exist yet).
	Target *operations.Resource
	// Operation is the operation a status, log or cancel names.
	Operation *api.Operation
	// Resources is what a list may show.
	Resources []operations.Resource
	// Work is the operation to store for an allowed create, update or
	// delete (nil for a dry run).
	Work *operations.New
	// Secrets are the clear values of the request's secret fields, by
	// field; Work.Request carries only their digests. Handed to the
	// executor only once the operation exists (Commit).
	Secrets map[string]map[string]string

	approval api.Approval // what the kinds' checks resolved, completed once the policy decided
}

// Refusal is a request the gate refuses before any policy question: an id
// that cannot be one, something that does not exist for this caller, a
// resource of another context, an object in use. Its audit decision is
// "refused".
type Refusal struct{ Problem api.Problem }

func (r *Refusal) Error() string { return r.Problem.Title + ": " + r.Problem.Detail }

func refuse(p api.Problem) error { return &Refusal{Problem: p} }

// Admit decides one request. The Admission is returned even with an error,
// so the caller can audit what was learned before the refusal.
func (g *Gate) Admit(ctx context.Context, req Request) (Admission, error) {
	a := Admission{Audit: audit.Record{Kind: req.Kind, Action: policyAction(req.Action), Decision: audit.DecisionRefused,
		Bundle: req.Bundle, Environment: req.Environment}}
	if req.Action == List {
		a.Audit.Action = api.ActionRead
	}
	if req.TargetID != "" {
		a.Audit.TargetID = truncate(req.TargetID, 64)
	}
	bundle, env := req.Bundle, req.Environment

	// Where the action lives: the resource's or operation's own context.
	switch {
	case onOperation(req.Action):
		op, target, err := g.operation(ctx, req)
		if op.ID != "" { // the caller's own: audited where it lives, even when refused
			a.Audit.Kind, bundle, env = op.Kind, op.Bundle, op.Environment
			a.Audit.Bundle, a.Audit.Environment = bundle, env
		}
		if err != nil {
			return a, err
		}
		a.Operation, a.Target = &op, target
		if req.Action == Cancel {
			if err := g.cancellable(ctx, op); err != nil {
				return a, err
			}
		}
	case req.TargetID != "":
		target, err := g.resource(ctx, req)
		if err != nil {
			return a, err
		}
		a.Target = target
	}
	a.Audit.BundleRevision = g.Policy.Revision(bundle)

	// The request body, decoded and checked by the kinds table, then by
	// what only the gateway knows (catalogs, references, kinds' checks).
	var body api.Validator
	switch {
	case mutates(req.Action):
		v, secrets, err := g.decode(ctx, req, a.Target, &a.approval)
		if err != nil {
			return a, err
		}
		body, a.Secrets = v, secrets
	case req.Action == Cancel:
		var cr api.CancelRequest
		if len(strings.TrimSpace(string(req.Body))) > 0 {
			if err := api.DecodeStrict(req.Body, &cr); err != nil {
				return a, err
			}
			if err := cr.Validate(); err != nil {
				return a, err
			}
		}
		body = &cr
	}
	if req.Action == Delete && a.Target != nil {
		if err := g.notInUse(ctx, *a.Target); err != nil {
			return a, err
		}
	}

	in, err := g.input(ctx, req, a, body, env)
	if err != nil {
		return a, err
	}
	d, err := g.Policy.Evaluate(ctx, bundle, in)
	if err != nil {
		if g.Logger != nil {
			g.Logger.Error("policy evaluation failed; denying", "request_id", req.RequestID, "error", err)
		}
		d.Allow = false
	}
	a.Decision = d
	a.Audit.BundleRevision, a.Audit.DecisionID, a.Audit.Violations = d.Revision, d.DecisionID, d.Violations
	a.Audit.ControlIDs = ControlIDs(d.Violations)
	switch {
	case err != nil:
		a.Audit.Decision = audit.DecisionError
	case d.Allow:
		a.Audit.Decision = audit.DecisionAllow
	default:
		a.Audit.Decision = audit.DecisionDeny
	}
	if !d.Allow || req.DryRun {
		return a, nil
	}

	switch {
	case req.Action == List:
		rs, err := g.Book.ListResources(ctx, req.Kind, req.Caller.EntityID)
		if err != nil {
			return a, err
		}
		for _, r := range rs {
			if r.Bundle == bundle && r.Environment == env {
				a.Resources = append(a.Resources, r)
			}
		}
	case mutates(req.Action):
		if g.Executes != nil && !g.Executes(req.Kind) {
			// Accepting an operation nothing will execute would leave it pending
			// forever; schema and policy answered first, so denials stay denials.
			return a, refuse(api.Problem{Type: api.ProblemNotImplemented, Title: "Kind not executable here", Status: http.StatusNotImplemented,
				Detail: fmt.Sprintf("this gateway has no executor for %s yet; POST /v1/decisions still evaluates such requests", req.Kind)})
		}
		canonical, err := json.Marshal(body)
		if err != nil {
			return a, err
		}
		approval, err := g.approve(ctx, req, body, a.approval, bundle, d.Revision)
		if err != nil {
			return a, err
		}
		a.Work = &operations.New{Kind: req.Kind, Action: req.Action, TargetID: req.TargetID,
			OwnerEntityID: req.Caller.EntityID, Owner: req.Caller.Owner, Bundle: bundle, Environment: env,
			RequestID: req.RequestID, DecisionID: d.DecisionID, IdempotencyKey: req.IdempotencyKey, Request: canonical,
			Approval: approval}
		for _, ref := range api.ResourceRefs(req.Kind, req.Action, body) {
			a.Work.Refers = append(a.Work.Refers, operations.Ref{Kind: ref.Kind, ID: ref.Value})
		}
		if k, ok := api.KindByName(req.Kind); ok {
			a.Work.MaxUnfinished = k.Settings.MaxUnfinishedPerCaller
		}
		if obj, ok := body.(api.NaturalKeyed); ok && req.Action == Create {
			a.Work.Object = obj
		}
	}
	return a, nil
}

// resource loads the resource a request names, or refuses: an id that
// cannot be one (422), none of this caller's (404), or one made under
// another bundle or environment than the request names (409, naming them).
func (g *Gate) resource(ctx context.Context, req Request) (*operations.Resource, error) {
	if !api.ValidID(req.TargetID) {
		return nil, api.Invalid(req.TargetParam, "%s is not a resource id (letters, digits, '_' and '-', at most 64)", api.Quote(truncate(req.TargetID, 64)))
	}
	res, err := g.Book.GetResource(ctx, req.Kind, req.TargetID, req.Caller.EntityID)
	if errors.Is(err, operations.ErrResourceNotFound) {
		return nil, refuse(api.Problem{Type: api.ProblemNotFound, Title: "Not found", Status: http.StatusNotFound,
			Detail: fmt.Sprintf("no %s %q exists for this caller", req.Kind, req.TargetID)})
	}
	if err != nil {
		return nil, err
	}
	if res.Bundle != req.Bundle || res.Environment != req.Environment {
		return nil, refuse(api.Problem{Type: api.ProblemWrongContext, Title: "Resource belongs to another bundle or environment",
			Status: http.StatusConflict, Bundle: res.Bundle,
			Detail: fmt.Sprintf("%s %s was made under bundle %s in environment %s, and is judged and changed only there; "+
				"this request names bundle %s in environment %s — send %s: %s and %s: %s (a provider alias configured with them)",
				req.Kind, req.TargetID, res.Bundle, res.Environment, req.Bundle, req.Environment,
				api.HeaderPolicyBundle, res.Bundle, api.HeaderEnvironment, res.Environment)})
	}
	return &res, nil
}

// operation loads the caller's operation a request names, and its
// resource when it has one. The caller must still be bound to the
// operation's bundle: an operation is acted on only where it was admitted.
func (g *Gate) operation(ctx context.Context, req Request) (api.Operation, *operations.Resource, error) {
	if !api.ValidID(req.TargetID) {
		return api.Operation{}, nil, api.Invalid(req.TargetParam, "%s is not an operation id (letters, digits, '_' and '-', at most 64)", api.Quote(truncate(req.TargetID, 64)))
	}
	op, err := g.Book.Get(ctx, req.TargetID, req.Caller.EntityID)
	if err != nil {
		return op, nil, err
	}
	if !req.Caller.MayUseBundle(op.Bundle) {
		return op, nil, refuse(api.Problem{Type: api.ProblemBundleNotBound, Title: "Bundle not bound to this token", Status: http.StatusForbidden,
			Bundle: op.Bundle,
			Detail: fmt.Sprintf("operation %s was admitted under bundle %s; your token does not carry Vault policy sas-bundle-%s, "+
				"so it may not %s it (it is bound to: %s)", op.ID, op.Bundle, op.Bundle, verb(req.Action), listOrNone(req.Caller.Bundles))})
	}
	if req.Action != Cancel {
		return op, nil, nil // a read of the operation is judged without its resource (polled often: no extra read)
	}
	resourceID := op.TargetID
	if resourceID == "" && op.Result != nil {
		resourceID, _ = op.Result["resource_id"].(string)
	}
	if resourceID == "" {
		return op, nil, nil
	}
	res, err := g.Book.GetResource(ctx, op.Kind, resourceID, req.Caller.EntityID)
	if errors.Is(err, operations.ErrResourceNotFound) {
		return op, nil, nil // deleted since, or not made yet
	}
	if err != nil {
		return op, nil, err
	}
	return op, &res, nil
}

func verb(action string) string {
	switch action {
	case Log:
		return "read the log of"
	case Status:
		return "read"
	}
	return action
}

// cancellable refuses a cancel that would not stop anything: the operation
// ended, or it runs a step its kind cannot stop midway.
func (g *Gate) cancellable(ctx context.Context, op api.Operation) error {
	if operations.Terminal(op.State) {
		return refuse(Finished(op.ID, op.State))
	}
	if op.State == api.OperationRunning && op.Action != Create {
		// What an update or delete changed is not put back by compensation:
		// once a step started, a cancel would be answered and not honoured.
		return refuse(CannotStopNow(op))
	}
	if op.State == api.OperationRunning && !api.CancelsWhileRunning(op.Kind) {
		w, err := g.Book.Load(ctx, op.ID)
		if err != nil {
			return err
		}
		if !w.Waiting {
			return refuse(CannotStopNow(op))
		}
	}
	return nil
}

// Finished is the answer to a cancel of an operation that already ended.
func Finished(id, state string) api.Problem {
	return api.Problem{Type: api.ProblemOperationDone, Title: "Operation already finished", Status: http.StatusConflict,
		Detail: fmt.Sprintf("operation %s already %s; there is nothing to cancel", id, state)}
}

// CannotStopNow is the answer to a cancel of a step its kind cannot stop midway.
func CannotStopNow(op api.Operation) api.Problem {
	return api.Problem{Type: api.ProblemCannotCancel, Title: "Operation cannot be stopped now", Status: http.StatusConflict,
		Detail: fmt.Sprintf("operation %s (%s %s) has started, and what it does cannot be stopped midway or put back by a cancel; "+
			"wait for it to end (GET /v1/operations/%s), then undo what it did if you do not want it", op.ID, op.Action, op.Kind, op.ID)}
}

// decode is the body of a create, update or delete: strictly decoded and
// checked by the kinds table, its catalog names and references checked,
// the kind's own check run, and its secrets sealed — before the policy,
// the store or the audit trail sees it.
func (g *Gate) decode(ctx context.Context, req Request, target *operations.Resource, approval *api.Approval) (api.Validator, map[string]map[string]string, error) {
	body := req.Body
	if req.Action == Delete && len(strings.TrimSpace(string(body))) == 0 {
		body = []byte(`{}`) // the body of a delete is optional
	}
	v, err := api.DecodeKind(req.Kind, req.Action, body, req.BodyPrefix)
	if err != nil {
		return nil, nil, err
	}
	if err := g.checkCatalog(req, v); err != nil {
		return nil, nil, err
	}
	if err := g.checkReferences(ctx, req, v); err != nil {
		return nil, nil, err
	}
	if check := g.Checks[req.Kind]; check != nil {
		if err := check(ctx, req.Action, v, target, req.BodyPrefix, approval); err != nil {
			return nil, nil, err
		}
	}
	secrets := api.SealSecrets(req.Kind, req.Action, v, g.Seal)
	return v, secrets, nil
}

// checkCatalog refuses catalog names (the kinds table says which fields
// hold them) that no loaded bundle knows: those are guesses (the
// AI-hallucination threat), not policy questions.
func (g *Gate) checkCatalog(req Request, v api.Validator) error {
	for _, ref := range api.CatalogRefs(req.Kind, req.Action, v) {
		var names []string
		for _, b := range g.Policy.Bundles() {
			names = append(names, b.Spec.CatalogNames(ref.Catalog)...)
		}
		slices.Sort(names)
		names = slices.Compact(names)
		if !slices.Contains(names, ref.Value) {
			return api.Invalid(req.BodyPrefix+ref.Path, "%q is not a %s in any catalog; known: %s", truncate(ref.Value, 64), ref.Field, strings.Join(names, ", "))
		}
	}
	return nil
}

// checkReferences refuses a field naming another resource (the kinds
// table's References) unless the caller owns it in the request's bundle and
// environment: a request cannot borrow what another caller or context holds.
func (g *Gate) checkReferences(ctx context.Context, req Request, v api.Validator) error {
	for _, ref := range api.ResourceRefs(req.Kind, req.Action, v) {
		res, err := g.Book.GetResource(ctx, ref.Kind, ref.Value, req.Caller.EntityID)
		if errors.Is(err, operations.ErrResourceNotFound) {
			return api.Invalid(req.BodyPrefix+ref.Path, "no %s %s exists for this caller", ref.Kind, api.Quote(truncate(ref.Value, 64)))
		}
		if err != nil {
			return err
		}
		if res.Bundle != req.Bundle || res.Environment != req.Environment {
			return api.Invalid(req.BodyPrefix+ref.Path, "%s %s was made under bundle %s in environment %s; a %s here can use only what this bundle made in %s",
				ref.Kind, res.ID, res.Bundle, res.Environment, req.Kind, req.Environment)
		}
		if err := g.notBeingDeleted(ctx, ref.Kind, ref.Value); err != nil {
			return err
		}
	}
	return nil
}

// input is the policy's view of the request: for an existing resource its
// own bundle and environment, with its stored spec; for a cancel, the
// action it stops and (for a create) what the create asked for.
func (g *Gate) input(ctx context.Context, req Request, a Admission, body api.Validator, env string) (policy.Input, error) {
	c := req.Caller
	in := policy.Input{Environment: env, Kind: a.Audit.Kind, Action: policyAction(req.Action),
		Caller: policy.Caller{Owner: c.Owner, EntityID: c.EntityID, Bundles: c.Bundles, Policies: c.Policies}}
	doc := map[string]any{}
	if body != nil && req.Action != Cancel {
		m, err := api.AsMap(body)
		if err != nil {
			return in, err
		}
		doc = m
	}
	if t := a.Target; t != nil {
		var spec any
		_ = json.Unmarshal(t.Spec, &spec)
		in.Resource = &policy.Resource{ID: t.ID, Bundle: t.Bundle, Environment: t.Environment, Spec: spec}
		doc["id"] = t.ID
	}
	switch req.Action {
	case Refresh:
		doc["refresh"] = true
	case Log, Status:
		doc["operation_id"] = a.Operation.ID
		if req.Action == Log {
			doc["log"] = true
		}
	case Cancel:
		op := a.Operation
		doc["cancels"], doc["operation_id"] = op.Action, op.ID
		if cr, ok := body.(*api.CancelRequest); ok && cr.ChangeTicket != "" {
			doc["change_ticket"] = cr.ChangeTicket
		}
		if op.Action == Create {
			w, err := g.Book.Load(ctx, op.ID)
			if err != nil {
				return in, err
			}
			var spec any
			_ = json.Unmarshal(w.Request, &spec)
			doc["spec"] = spec
		}
	}
	in.Request = doc
	return in, nil
}

// ControlIDs are the controls a decision's violations cite, sorted and unique.
func ControlIDs(vs []api.Violation) []string {
	var ids []string
	for _, v := range vs {
		ids = append(ids, v.ControlIDs...)
	}
	slices.Sort(ids)
	return slices.Compact(ids)
}

// Denied is the answer to a request its bundle denied.
func Denied(d api.Decision) api.Problem {
	msgs := make([]string, 0, len(d.Violations))
	for _, v := range d.Violations {
		msgs = append(msgs, v.Message)
	}
	return api.Problem{Type: api.ProblemPolicyDenied, Title: "Denied by policy bundle " + d.Bundle, Status: http.StatusForbidden,
		Detail: strings.Join(msgs, "; "), Violations: d.Violations, DecisionID: d.DecisionID, Bundle: d.Bundle, BundleRevision: d.Revision}
}

func listOrNone(xs []string) string {
	if len(xs) == 0 {
		return "no bundles"
	}
	return strings.Join(xs, ", ")
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}
