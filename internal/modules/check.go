package modules

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/ext/typeexpr"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/zclconf/go-cty/cty"
	"github.com/zclconf/go-cty/cty/convert"
	ctyjson "github.com/zclconf/go-cty/cty/json"

	"github.com/sas-platform/terraform-provider-sas/internal/api"
)

// The fields of a module run's body that carry inputs.
const (
	fieldInputs       = "inputs"
	fieldSecretInputs = "secret_inputs"
)

// CheckRequest is admission's check of the run a module run request would
// make, done before anything is stored, so that a dry run answers what the
// run would: the module and version must be in the operator's catalog,
// and the inputs must be what that version's variables take — each one
// declared; a sensitive variable only among the secret inputs and every
// other only among the inputs; every required one given; each value of
// the variable's type (converted as Terraform converts it) and passing the
// variable's own validation blocks. A validation the gateway cannot
// evaluate before a run refuses the input that it guards, saying why.
//
// secretInputs are the clear values: call it before the request's secrets
// are sealed. Field paths are JSON pointers into a create's body
// (/module, /version, /inputs/<name>, /secret_inputs/<name>); no message
// repeats a secret input's value. Nil: nothing wrong.
func (c *Catalog) CheckRequest(module, version string, inputs map[string]any, secretInputs map[string]string) []api.FieldError {
	v, fe := c.lookup(module, version)
	if fe != nil {
		return []api.FieldError{*fe}
	}
	return fieldErrors(v.problems(inputs, secretInputs, true))
}

// CheckCreate is CheckRequest of a module run create.
func (c *Catalog) CheckCreate(r *api.ModuleRunRequest) []api.FieldError {
	return c.CheckRequest(r.Module, r.Version, r.Inputs, r.SecretInputs)
}

// CheckUpdate is CheckRequest of the run an update would make: the stored
// spec (the create with earlier updates laid over it) with this update laid
// over it as the executor lays it (api.ModuleRunUpdate.LayOver) — a version
// or inputs sent replace the stored ones, secret inputs sent replace the
// stored ones whole; an empty inputs or secret_inputs object is sent, and
// leaves the run without any. Field paths are pointers into the update's
// body: a problem with what the run keeps from its spec is reported at
// what the update changed (/version) and says to send the field again.
//
// The secret inputs' values are not kept after a run, and every update
// runs the module again, so an update of a run with secret inputs must
// send them again (as the provider does): otherwise the executor finds
// nothing in Vault and fails the run.
func (c *Catalog) CheckUpdate(stored *api.ModuleRunRequest, u *api.ModuleRunUpdate) []api.FieldError {
	u = asStored(u)
	run := u.LayOver(*stored)
	version, inputs, secrets := run.Version, run.Inputs, run.SecretInputs
	versionChanged := version != stored.Version
	var out []api.FieldError
	if u.SecretInputs == nil && len(stored.SecretInputs) > 0 {
		out = append(out, api.FieldError{Path: "/" + fieldSecretInputs, Message: fmt.Sprintf(
			"required: the run has secret inputs (%s) and their values are not kept after a run; every update runs the module again, so send them again",
			strings.Join(sortedKeys(stored.SecretInputs), ", "))})
	}
	v, fe := c.lookup(stored.Module, version)
	if fe != nil {
		return append(out, *fe)
	}
	for _, p := range v.problems(inputs, secrets, u.SecretInputs != nil) {
		sent := (p.field == fieldInputs && u.Inputs != nil) || (p.field == fieldSecretInputs && u.SecretInputs != nil)
		if sent {
			out = append(out, p.fieldError())
			continue
		}
		if p.field == fieldSecretInputs && u.SecretInputs == nil && len(stored.SecretInputs) > 0 {
			continue // already: send them again
		}
		at, next := "/"+p.field, "send "+p.field
		if versionChanged {
			at, next = "/version", "send "+p.field+" with the new version"
		}
		out = append(out, api.FieldError{Path: at, Message: fmt.Sprintf("%s %s and the run's current %s: %s: %s; %s",
			v.Module, v.Version, p.field, p.pointer(), p.message, next)})
	}
	sortFieldErrors(out)
	return out
}

// asStored is the update as the operation stores it and the executor reads
// it back (its JSON): what the run will be made of. (An empty inputs or
// secret_inputs object is kept there, as sent: it removes them all.)
func asStored(u *api.ModuleRunUpdate) *api.ModuleRunUpdate {
	b, err := json.Marshal(u)
	if err != nil {
		return u
	}
	var out api.ModuleRunUpdate
	if err := json.Unmarshal(b, &out); err != nil {
		return u
	}
	return &out
}

// CheckInputs checks a run's inputs (secrets: the clear values) against
// the version's variables as CheckRequest does, and returns every problem
// keyed by input name: the executor's last check before Terraform runs.
func (v *Version) CheckInputs(inputs map[string]any, secrets map[string]string) map[string]string {
	out := map[string]string{}
	for _, p := range v.problems(inputs, secrets, true) {
		msg := p.message
		if p.path != "" {
			msg = p.pointer() + ": " + msg
		}
		if prev, ok := out[p.name]; ok {
			msg = prev + "; " + msg
		}
		out[p.name] = msg
	}
	return out
}

func (c *Catalog) lookup(module, version string) (*Version, *api.FieldError) {
	m, ok := c.modules[module]
	if !ok {
		return nil, &api.FieldError{Path: "/module", Message: fmt.Sprintf("%s is not in the operator's module catalog; approved: %s",
			api.Quote(module), strings.Join(c.Names(), ", "))}
	}
	v, ok := m.Versions[version]
	if !ok {
		return nil, &api.FieldError{Path: "/version", Message: fmt.Sprintf("module %s has no approved version %s; approved: %s",
			module, api.Quote(version), strings.Join(m.versionList(), ", "))}
	}
	return v, nil
}

// problem is one thing wrong with a run's inputs.
type problem struct {
	field   string // fieldInputs or fieldSecretInputs
	name    string // the input
	path    string // JSON pointer below the input's value ("" for the value itself)
	message string
}

func (p problem) pointer() string { return "/" + p.field + "/" + escapePointer(p.name) + p.path }

func (p problem) fieldError() api.FieldError {
	return api.FieldError{Path: p.pointer(), Message: p.message}
}

func fieldErrors(ps []problem) []api.FieldError {
	if len(ps) == 0 {
		return nil
	}
	out := make([]api.FieldError, len(ps))
	for i, p := range ps {
		out[i] = p.fieldError()
	}
	sortFieldErrors(out)
	return out
}

// problems checks inputs and secret inputs against the version's
// variables. secretValues: the secrets' values are at hand (not only
// their names) and are checked too.
func (v *Version) problems(inputs map[string]any, secrets map[string]string, secretValues bool) []problem {
	byName := make(map[string]*Input, len(v.Inputs))
	for i := range v.Inputs {
		byName[v.Inputs[i].Name] = &v.Inputs[i]
	}
	var out []problem
	add := func(field, name, path, format string, args ...any) {
		out = append(out, problem{field: field, name: name, path: path, message: fmt.Sprintf(format, args...)})
	}
	for _, name := range sortedKeys(inputs) {
		in, ok := byName[name]
		switch {
		case !ok:
			add(fieldInputs, name, "", "module %s %s has no input %s; %s", v.Module, v.Version, api.Quote(name), v.declared())
		case in.Secret:
			add(fieldInputs, name, "", "%s is a secret input of %s %s (sensitive = true): send it in secret_inputs, never in inputs, which are stored, shown and given to the policy",
				name, v.Module, v.Version)
		case inputs[name] == nil:
			if in.Required {
				add(fieldInputs, name, "", "null is not a value for %s, which has no default: give a value of type %s", name, in.typeString())
			} else {
				add(fieldInputs, name, "", "null is not a value: leave %s out to use its default", name)
			}
		default:
			val, path, msg := in.fromJSON(inputs[name])
			if msg == "" {
				for _, m := range in.validate(v, val, false) {
					add(fieldInputs, name, "", "%s", m)
				}
				continue
			}
			add(fieldInputs, name, path, "%s", msg)
		}
	}
	for _, name := range sortedKeys(secrets) {
		in, ok := byName[name]
		switch {
		case !ok:
			add(fieldSecretInputs, name, "", "module %s %s has no input %s; %s", v.Module, v.Version, api.Quote(name), v.declared())
		case !in.Secret:
			add(fieldSecretInputs, name, "", "%s is not a secret input of %s %s (its variable is not sensitive): send it in inputs", name, v.Module, v.Version)
		case secretValues:
			val, path, msg := in.fromEnvironment(secrets[name])
			if msg == "" {
				for _, m := range in.validate(v, val, true) {
					add(fieldSecretInputs, name, "", "%s", m)
				}
				continue
			}
			add(fieldSecretInputs, name, path, "%s", msg)
		}
	}
	for _, in := range v.Inputs {
		_, clear := inputs[in.Name]
		_, secret := secrets[in.Name]
		if !in.Required || clear || secret {
			continue
		}
		field := fieldInputs
		if in.Secret {
			field = fieldSecretInputs
		}
		what := in.Description
		if what == "" {
			what = "a value of type " + in.typeString()
		}
		add(field, in.Name, "", "required: %s (%s %s has no default for %s)", what, v.Module, v.Version, in.Name)
	}
	return out
}

// declared names the version's inputs, for a message about one it lacks.
func (v *Version) declared() string {
	var clear, secret []string
	for _, in := range v.Inputs {
		if in.Secret {
			secret = append(secret, in.Name)
		} else {
			clear = append(clear, in.Name)
		}
	}
	s := "its inputs: " + strings.Join(clear, ", ")
	if len(clear) == 0 {
		s = "it takes no inputs"
	}
	if len(secret) > 0 {
		s += "; its secret inputs: " + strings.Join(secret, ", ")
	}
	return s
}

// fromJSON converts an input as the executor hands it to Terraform (in
// terraform.tfvars.json, where strings are literal): the JSON value's
// implied type, converted to the variable's type constraint. It returns
// the value, or where inside it (a JSON pointer) and what is wrong.
func (in *Input) fromJSON(raw any) (cty.Value, string, string) {
	b, err := json.Marshal(raw)
	if err != nil {
		return cty.NilVal, "", "is not a JSON value"
	}
	ty, err := ctyjson.ImpliedType(b)
	if err != nil {
		return cty.NilVal, "", fmt.Sprintf("is not a value Terraform can read: %v", err)
	}
	val, err := ctyjson.Unmarshal(b, ty)
	if err != nil {
		return cty.NilVal, "", fmt.Sprintf("is not a value Terraform can read: %v", err)
	}
	return in.conform(val)
}

// fromEnvironment converts a secret input as Terraform reads TF_VAR_<name>:
// the literal string for a primitive type (or none), an HCL expression for
// a complex one. Messages never repeat the value.
func (in *Input) fromEnvironment(s string) (cty.Value, string, string) {
	if !in.parseHCL {
		return in.conform(cty.StringVal(s))
	}
	expr, diags := hclsyntax.ParseExpression([]byte(s), in.Name, hcl.InitialPos)
	if diags.HasErrors() {
		return cty.NilVal, "", fmt.Sprintf("must be %s written as an HCL expression (Terraform reads a secret input of a complex type that way); this one does not parse", in.typeString())
	}
	val, diags := expr.Value(nil)
	if diags.HasErrors() {
		return cty.NilVal, "", fmt.Sprintf("must be %s written as a constant HCL expression: no references or function calls", in.typeString())
	}
	return in.conform(val)
}

// conform applies the type's optional attribute defaults and converts
// the value to the type constraint, as Terraform does before a run.
func (in *Input) conform(val cty.Value) (cty.Value, string, string) {
	if in.defaults != nil && !val.IsNull() {
		val = in.defaults.Apply(val)
	}
	out, err := convert.Convert(val, in.constraint)
	if err == nil {
		return out, "", ""
	}
	var pe cty.PathError
	path := ""
	if errors.As(err, &pe) {
		path = pathPointer(pe.Path)
	}
	if path == "" {
		return cty.NilVal, "", fmt.Sprintf("must be %s: %s", in.typeString(), err.Error())
	}
	return cty.NilVal, path, fmt.Sprintf("%s (%s is %s)", err.Error(), in.Name, in.typeString())
}

// typeString is the type constraint in one line, as HCL writes it.
func (in *Input) typeString() string { return typeexpr.TypeString(in.constraint) }

// validate evaluates the variable's validation blocks on val, bound to
// var.<name>, with Terraform's pure functions; it returns what fails. A
// secret's messages are the module's literal error messages only (a
// template could show the value) and no evaluation error's detail.
func (in *Input) validate(v *Version, val cty.Value, secret bool) []string {
	var out []string
	for _, vd := range in.Validations {
		if vd.Unchecked != "" {
			next := "leave it out to use its default, or ask the operator to change the module's validation"
			if in.Required {
				next = "the operator must change the module's validation before it can be run"
			}
			out = append(out, fmt.Sprintf("cannot be checked before a run, so it is refused rather than left to fail at plan: %s %s validates %s with `%s`, and %s; %s",
				v.Module, v.Version, in.Name, vd.Condition, vd.Unchecked, next))
			continue
		}
		ctx := &hcl.EvalContext{
			Variables: map[string]cty.Value{"var": cty.ObjectVal(map[string]cty.Value{in.Name: val})},
			Functions: validationFunctions,
		}
		res, diags := vd.condition.Value(ctx)
		if diags.HasErrors() {
			what := diagSummary(diags, !secret)
			out = append(out, fmt.Sprintf("the module's validation `%s` cannot be evaluated on this value (%s), so Terraform would refuse it too", vd.Condition, what))
			continue
		}
		res, err := convert.Convert(res, cty.Bool)
		if err != nil || res.IsNull() || !res.IsKnown() {
			out = append(out, fmt.Sprintf("the module's validation `%s` does not give true or false on this value, so Terraform would refuse it too", vd.Condition))
			continue
		}
		if res.True() {
			continue
		}
		out = append(out, "fails the module's validation: "+vd.message(ctx, secret))
	}
	return out
}

// message is the validation's error message, evaluated with the value
// when it is a template (never for a secret).
func (vd *Validation) message(ctx *hcl.EvalContext, secret bool) string {
	if vd.staticMessage || secret {
		return vd.ErrorMessage
	}
	if s, d := vd.errorMessage.Value(ctx); !d.HasErrors() && s.Type() == cty.String && s.IsKnown() && !s.IsNull() {
		return s.AsString()
	}
	return vd.ErrorMessage
}

func diagSummary(diags hcl.Diagnostics, detail bool) string {
	var parts []string
	for _, d := range diags {
		if d.Severity != hcl.DiagError {
			continue
		}
		s := d.Summary
		if detail && d.Detail != "" {
			s += ": " + d.Detail
		}
		parts = append(parts, s)
	}
	return strings.Join(parts, "; ")
}

// pathPointer renders a cty path inside a value as a JSON pointer.
func pathPointer(p cty.Path) string {
	var b strings.Builder
	for _, step := range p {
		switch s := step.(type) {
		case cty.GetAttrStep:
			b.WriteString("/" + escapePointer(s.Name))
		case cty.IndexStep:
			switch {
			case s.Key.Type() == cty.String:
				b.WriteString("/" + escapePointer(s.Key.AsString()))
			case s.Key.Type() == cty.Number:
				i, _ := s.Key.AsBigFloat().Int64()
				b.WriteString("/" + strconv.FormatInt(i, 10))
			}
		}
	}
	return b.String()
}

func escapePointer(s string) string {
	return strings.ReplaceAll(strings.ReplaceAll(s, "~", "~0"), "/", "~1")
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

func sortFieldErrors(fs []api.FieldError) {
	slices.SortStableFunc(fs, func(a, b api.FieldError) int { return strings.Compare(a.Path, b.Path) })
}

// CheckModuleRun is admission's one call for a decoded module_run body of
// action (a create's or an update's; a delete has nothing to check):
// CheckCreate, or CheckUpdate against stored, the resource's spec as the
// book keeps it. Call it before the body's secrets are sealed.
func (c *Catalog) CheckModuleRun(action string, req api.Validator, stored []byte) ([]api.FieldError, error) {
	switch r := req.(type) {
	case *api.ModuleRunRequest:
		return c.CheckCreate(r), nil
	case *api.ModuleRunUpdate:
		var spec api.ModuleRunRequest
		if err := json.Unmarshal(stored, &spec); err != nil {
			return nil, fmt.Errorf("module run spec: %w", err)
		}
		return c.CheckUpdate(&spec, r), nil
	case *api.DeleteRequest:
		return nil, nil
	}
	return nil, fmt.Errorf("%s of a module run: unexpected body %T", action, req)
}

// Approve is the catalog entry a module-run request, once admitted, runs:
// its module and version (a create's; an update's laid over the stored
// spec; a delete's stored one), the digest its source must still have
// when it runs, and the catalog's step limit for it. Stored on the
// operation, so a catalog changed after admission changes nothing run.
func (c *Catalog) Approve(req api.Validator, stored []byte) (*api.ApprovedModule, error) {
	var run api.ModuleRunRequest
	switch r := req.(type) {
	case *api.ModuleRunRequest:
		run = *r
	case *api.ModuleRunUpdate, *api.DeleteRequest:
		if err := json.Unmarshal(stored, &run); err != nil {
			return nil, fmt.Errorf("module run spec: %w", err)
		}
		if u, ok := r.(*api.ModuleRunUpdate); ok {
			run = u.LayOver(run)
		}
	default:
		return nil, fmt.Errorf("module run: unexpected body %T", req)
	}
	v, err := c.Version(run.Module, run.Version)
	if err != nil {
		return nil, err
	}
	return &api.ApprovedModule{Name: v.Module, Version: v.Version, SHA256: v.SHA256, StepTimeout: c.StepTimeout(v.Module)}, nil
}
