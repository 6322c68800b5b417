// Package modulerun is the executor of the module_run kind: one approved
// Terraform module, run by the gateway with the operation's sub-token only.
// Each run plans to a saved plan, has the plan judged by the operation's
// bundle, and applies exactly that plan; a destroy is planned and judged
// the same way.
//
// A step that dies mid-apply loses nothing: Terraform has written its
// progress to the resource's state, the saved plan dies with the private
// working directory, and the next step plans again from the state — so a
// plan is never applied twice, nor a stale one.
package modulerun

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"sort"
	"strings"

	tfjson "github.com/hashicorp/terraform-json"

	"github.com/sas-platform/terraform-provider-sas/internal/api"
	"github.com/sas-platform/terraform-provider-sas/internal/executor"
	"github.com/sas-platform/terraform-provider-sas/internal/modules"
	"github.com/sas-platform/terraform-provider-sas/internal/policy"
	"github.com/sas-platform/terraform-provider-sas/internal/tfrun"
	"github.com/sas-platform/terraform-provider-sas/internal/vault"
)

var _ executor.Executor = (*Executor)(nil)

// Executor runs catalog modules.
type Executor struct{ Config }

// Config is what running catalog modules needs: the operator's catalog,
// the Terraform runner, where states live, and the bundle's verdict on a plan.
type Config struct {
	Catalog  *modules.Catalog
	Runner   *tfrun.Runner
	StateDir string
	// PostgresDSN, when set, keeps each run's state in PostgreSQL (Terraform's
	// pg backend, a schema per resource) instead of StateDir.
	PostgresDSN string
	// JudgePlan puts a run's saved plan to the bundle revision that
	// admitted the operation (and audits the verdict) before anything is applied.
	JudgePlan func(ctx context.Context, j executor.Job, request any, plan policy.Plan) (api.Decision, error)
	// FingerprintKey keys the fingerprint a run reports of each secret
	// input (HMAC-SHA256; the gateway's audit HMAC key). Empty: runs
	// report none — never an unkeyed hash, which a guess could be checked against.
	FingerprintKey []byte
}

// resourceID is the module run's id: it names its state file, so it is
// known before the first apply writes anything.
func resourceID(opID string) string { return "mr-" + strings.TrimPrefix(opID, "op-") }

// StateSchema is the PostgreSQL schema holding a module run's state.
func StateSchema(id string) string {
	return "sas_module_" + strings.ReplaceAll(strings.ToLower(id), "-", "_")
}

func (e *Executor) Execute(ctx context.Context, j executor.Job) (executor.Result, error) {
	op := j.Operation
	id, req, err := runRequest(j)
	if err != nil {
		return executor.Result{}, err
	}
	destroy := op.Action == api.ActionDelete
	out, err := e.run(ctx, j, id, req, destroy)
	if err != nil {
		return executor.Result{}, err
	}
	if destroy {
		return executor.Result{ResourceID: id, Deleted: true}, nil
	}
	attrs := map[string]any{"module": req.Module, "version": req.Version, "outputs": out.outputs, "plan": out.summary}
	if out.fingerprints != nil {
		attrs["secret_input_fingerprints"] = out.fingerprints
	}
	return executor.Result{ResourceID: id, Attributes: attrs}, nil
}

// runRequest is the run an operation makes and the id of its resource: a
// create's request; the resource's stored spec with an update laid over it
// as admission checked it (api.ModuleRunUpdate.LayOver: {} sent removes
// every input); a delete's stored spec.
func runRequest(j executor.Job) (string, api.ModuleRunRequest, error) {
	op := j.Operation
	var req api.ModuleRunRequest
	id := resourceID(op.ID)
	if j.Resource != nil {
		id = j.Resource.ID
		if err := json.Unmarshal(j.Resource.Spec, &req); err != nil {
			return "", req, executor.Permanent(fmt.Errorf("module run %s spec: %w", id, err))
		}
	}
	switch op.Action {
	case api.ActionCreate:
		if err := json.Unmarshal(op.Request, &req); err != nil {
			return "", req, executor.Permanent(fmt.Errorf("operation %s request: %w", op.ID, err))
		}
	case api.ActionUpdate:
		var u api.ModuleRunUpdate
		if err := json.Unmarshal(op.Request, &u); err != nil {
			return "", req, executor.Permanent(fmt.Errorf("operation %s request: %w", op.ID, err))
		}
		req = u.LayOver(req)
	case api.ActionDelete:
	default:
		return "", req, executor.Permanent(fmt.Errorf("module_run cannot %s", op.Action))
	}
	return id, req, nil
}

// outcome is what an applied run reports.
type outcome struct {
	outputs map[string]any // name → value and sensitivity
	summary map[string]any // what the applied plan did
	// fingerprints are the secret inputs' keyed fingerprints (nil without
	// a FingerprintKey).
	fingerprints map[string]string
}

// FingerprintPrefix starts every secret input fingerprint.
const FingerprintPrefix = "hmac-sha256:"

// fingerprintDomain separates a fingerprint from every other use of the
// key (the audit trail seals secrets and hashes accessors with it too): a
// fingerprint never equals a stored seal of the same value.
const fingerprintDomain = "sas module_run secret_input fingerprint\x00"

// SecretInputFingerprint is what a run reports of a secret input's value:
// "hmac-sha256:" and the lowercase hex HMAC-SHA256(key,
// fingerprintDomain + name + "\x00" + value). The same value under the
// same name gives the same fingerprint, so an owner sees whether an update
// changed the secret; without the key no guess at the value can be checked
// against it, as one can against a bare hash of a short secret.
func SecretInputFingerprint(key []byte, name, value string) string {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(fingerprintDomain))
	m.Write([]byte(name))
	m.Write([]byte{0})
	m.Write([]byte(value))
	return FingerprintPrefix + hex.EncodeToString(m.Sum(nil))
}

// fingerprints are the keyed fingerprints of a run's secret inputs (their
// clear values); nil without a key.
func fingerprints(key []byte, secrets map[string]string) map[string]string {
	if len(key) == 0 {
		return nil
	}
	out := make(map[string]string, len(secrets))
	for name, value := range secrets {
		out[name] = SecretInputFingerprint(key, name, value)
	}
	return out
}

// run plans, judges and applies one module run.
func (e *Executor) run(ctx context.Context, j executor.Job, id string, req api.ModuleRunRequest, destroy bool) (outcome, error) {
	v, err := e.Catalog.Version(req.Module, req.Version)
	if err != nil {
		return outcome{}, executor.Permanent(err)
	}
	if m := j.Operation.Approval.Module; m != nil && (m.Name != v.Module || m.Version != v.Version || m.SHA256 != v.SHA256) {
		return outcome{}, executor.Permanent(fmt.Errorf("module %s %s was approved with source digest %s; the operator's catalog now says %s %s with %s, so it is not run (send the request again to have it judged)",
			m.Name, m.Version, m.SHA256, v.Module, v.Version, v.SHA256))
	}
	if err := v.Verify(); err != nil {
		return outcome{}, executor.Permanent(err)
	}
	secrets := map[string]string{}
	if len(req.SecretInputs) > 0 && !destroy {
		all, err := j.Secrets(ctx)
		if errors.Is(err, vault.ErrRequestSecretsGone) {
			return outcome{}, executor.Permanent(errors.New("the request's secret inputs are no longer in Vault (an earlier step used them); send the request again with them"))
		}
		if err != nil {
			return outcome{}, err
		}
		for k := range req.SecretInputs {
			s, ok := all["secret_inputs"][k]
			if !ok {
				return outcome{}, executor.Permanent(fmt.Errorf("secret input %s is missing from the request's secrets in Vault", k))
			}
			secrets[k] = s
		}
	}
	if !destroy {
		if problems := v.CheckInputs(req.Inputs, secrets); len(problems) > 0 {
			return outcome{}, executor.Permanent(fmt.Errorf("inputs of %s %s: %s", req.Module, req.Version, joinProblems(problems)))
		}
	} else {
		// Destroy needs the variables only to evaluate the configuration:
		// placeholders keep secrets out of a destroy.
		for _, in := range v.Inputs {
			if in.Secret && in.Required {
				secrets[in.Name] = "(destroy)"
			}
		}
	}
	// The step's sub-token is the run's only credential (modules that read
	// Vault use it); environment only, redacted from the run's log.
	env := map[string]string{}
	if j.SubToken != nil {
		env["VAULT_ADDR"], env["VAULT_TOKEN"] = j.SubToken()
	}
	// Terraform's output, redacted by the runner, is kept for the owner
	// whatever the step's outcome.
	var log bytes.Buffer
	if j.Log != nil {
		defer func() {
			if log.Len() > 0 {
				_ = j.Log(context.WithoutCancel(ctx), log.String())
			}
		}()
	}
	spec := tfrun.Spec{ID: j.Operation.ID, Source: v.Dir, StateFile: filepath.Join(e.StateDir, id+".tfstate"),
		Inputs: req.Inputs, SecretInputs: secrets, Env: env, Log: &log}
	if e.PostgresDSN != "" {
		spec.PGConnStr, spec.PGSchema = e.PostgresDSN, StateSchema(id)
	}
	run, err := e.Runner.Start(ctx, spec)
	if err != nil {
		return outcome{}, err
	}
	defer run.Close()
	plan, err := run.Plan(ctx, destroy)
	if err != nil {
		return outcome{}, classify(err)
	}
	d, err := e.JudgePlan(ctx, j, req, policyPlan(plan.JSON))
	if err != nil {
		return outcome{}, err
	}
	if !d.Allow {
		msgs := make([]string, len(d.Violations))
		for i, v := range d.Violations {
			msgs[i] = fmt.Sprintf("%s (%s)", v.Message, v.Rule)
		}
		return outcome{}, executor.Permanent(fmt.Errorf("bundle %s denied the plan of %s %s (decision %s), so nothing was applied: %s",
			d.Bundle, req.Module, req.Version, d.DecisionID, strings.Join(msgs, "; ")))
	}
	if err := run.Apply(ctx, plan); err != nil {
		return outcome{}, classify(err)
	}
	if len(req.SecretInputs) > 0 && j.ForgetSecrets != nil {
		if err := j.ForgetSecrets(ctx); err != nil {
			return outcome{}, err
		}
	}
	summary := map[string]any{"add": plan.Summary.Add, "change": plan.Summary.Change, "destroy": plan.Summary.Destroy}
	if destroy {
		return outcome{summary: summary}, nil
	}
	outs, err := run.Outputs(ctx)
	if err != nil {
		return outcome{}, err
	}
	outputs := map[string]any{}
	for k, o := range outs {
		var val any
		_ = json.Unmarshal(o.Value, &val)
		outputs[k] = map[string]any{"value": val, "sensitive": o.Sensitive}
	}
	return outcome{outputs: outputs, summary: summary, fingerprints: fingerprints(e.FingerprintKey, secrets)}, nil
}

// policyPlan is a plan as the bundle judges it.
func policyPlan(p *tfjson.Plan) policy.Plan {
	out := policy.Plan{ResourceChanges: []policy.PlanChange{}}
	for _, rc := range p.ResourceChanges {
		if rc.Change == nil || rc.Change.Actions.NoOp() || rc.Change.Actions.Read() {
			continue
		}
		actions := make([]string, len(rc.Change.Actions))
		for i, a := range rc.Change.Actions {
			actions[i] = string(a)
		}
		out.ResourceChanges = append(out.ResourceChanges, policy.PlanChange{Address: rc.Address, Type: rc.Type, Actions: actions})
	}
	return out
}

// Compensate: a failed run leaves what Terraform applied in the resource's
// state — nothing is lost track of; there is nothing to release here.
func (e *Executor) Compensate(context.Context, executor.Job) error { return nil }

// Read reports the last applied run as sas recorded it; asked to refresh,
// it runs a refresh-only plan and reports what changed outside Terraform
// as drift (nothing is applied).
func (e *Executor) Read(ctx context.Context, j executor.Job) (map[string]any, []api.Drift, bool, error) {
	if !j.Refresh {
		return j.Resource.Attributes, nil, false, nil
	}
	var req api.ModuleRunRequest
	if err := json.Unmarshal(j.Resource.Spec, &req); err != nil {
		return nil, nil, false, err
	}
	v, err := e.Catalog.Version(req.Module, req.Version)
	if err != nil {
		return nil, nil, false, err
	}
	secrets := map[string]string{}
	for _, in := range v.Inputs {
		if in.Secret && in.Required {
			secrets[in.Name] = "(refresh)" // a refresh re-reads objects; it needs no secret's value
		}
	}
	env := map[string]string{}
	if j.SubToken != nil {
		env["VAULT_ADDR"], env["VAULT_TOKEN"] = j.SubToken()
	}
	spec := tfrun.Spec{ID: "read-" + j.SubTokenAccessor, Source: v.Dir, StateFile: filepath.Join(e.StateDir, j.Resource.ID+".tfstate"),
		Inputs: req.Inputs, SecretInputs: secrets, Env: env}
	if e.PostgresDSN != "" {
		spec.PGConnStr, spec.PGSchema = e.PostgresDSN, StateSchema(j.Resource.ID)
	}
	run, err := e.Runner.Start(ctx, spec)
	if err != nil {
		return nil, nil, false, err
	}
	defer run.Close()
	changed, err := run.Drift(ctx)
	if err != nil {
		return nil, nil, false, err
	}
	var drift []api.Drift
	for _, c := range changed {
		got := "changed outside Terraform"
		if slices.Contains(c.Actions, "delete") {
			got = "gone"
		}
		drift = append(drift, api.Drift{Field: "resources/" + c.Address, Want: "as last applied", Got: got})
	}
	return j.Resource.Attributes, drift, false, nil
}

// classify: Terraform's own errors (a validation failure, a provider's
// refusal) do not change on retry; an interrupted run does.
func classify(err error) error {
	if strings.Contains(err.Error(), "interrupted") {
		return err
	}
	return executor.Permanent(err)
}

func joinProblems(p map[string]string) string {
	keys := make([]string, 0, len(p))
	for k := range p {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	out := make([]string, len(keys))
	for i, k := range keys {
		out[i] = p[k]
	}
	return strings.Join(out, "; ")
}
