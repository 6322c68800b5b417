package modules

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/sas-platform/terraform-provider-sas/internal/api"
)

func shippedCatalog(t *testing.T) *Catalog {
	t.Helper()
	c, err := Load(filepath.Dir(exampleCatalog))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func wantFieldErrors(t *testing.T, got []api.FieldError, want ...api.FieldError) {
	t.Helper()
	if len(want) == 0 {
		want = nil
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("field errors:\n got %s\nwant %s", formatFields(got), formatFields(want))
	}
}

func formatFields(fs []api.FieldError) string {
	var b strings.Builder
	for _, f := range fs {
		b.WriteString("\n  " + f.Path + ": " + f.Message)
	}
	return b.String()
}

// The attacker review's inputs: names the module does not declare (which
// the executor would have passed to Terraform's environment or tfvars) are
// refused at admission, by pointer, naming what the module takes.
func TestCheckRequestRefusesUndeclaredInputs(t *testing.T) {
	c := shippedCatalog(t)
	got := c.CheckRequest("platform/deploy-gate", "1.0.0",
		map[string]any{"release": "v1.2.3", "TF_LOG": "trace", "TF_CLI_ARGS": "-lock=false"}, map[string]string{"TF_CLI_ARGS_apply": "x"})
	wantFieldErrors(t, got,
		api.FieldError{Path: "/inputs/TF_CLI_ARGS", Message: `module platform/deploy-gate 1.0.0 has no input "TF_CLI_ARGS"; its inputs: release, settle`},
		api.FieldError{Path: "/inputs/TF_LOG", Message: `module platform/deploy-gate 1.0.0 has no input "TF_LOG"; its inputs: release, settle`},
		api.FieldError{Path: "/secret_inputs/TF_CLI_ARGS_apply", Message: `module platform/deploy-gate 1.0.0 has no input "TF_CLI_ARGS_apply"; its inputs: release, settle`},
	)
	got = c.CheckRequest("platform/secret-rotation", "1.0.0",
		map[string]any{"service": "web", "colour": "red"}, map[string]string{"initial_secret": "s3cret"})
	wantFieldErrors(t, got, api.FieldError{Path: "/inputs/colour",
		Message: `module platform/secret-rotation 1.0.0 has no input "colour"; its inputs: rotation_days, service; its secret inputs: initial_secret`})
}

// A sensitive variable's value in the clear inputs (stored, shown, given
// to the policy) is refused, and the refusal does not repeat it; a secret
// input for a variable that is not sensitive is refused too.
func TestCheckRequestKeepsSecretsAndInputsApart(t *testing.T) {
	c := shippedCatalog(t)
	got := c.CheckRequest("platform/secret-rotation", "1.0.0",
		map[string]any{"initial_secret": "clear-secret-value"}, map[string]string{"service": "web"})
	wantFieldErrors(t, got,
		api.FieldError{Path: "/inputs/initial_secret", Message: "initial_secret is a secret input of platform/secret-rotation 1.0.0 (sensitive = true): send it in secret_inputs, never in inputs, which are stored, shown and given to the policy"},
		api.FieldError{Path: "/secret_inputs/service", Message: "service is not a secret input of platform/secret-rotation 1.0.0 (its variable is not sensitive): send it in inputs"},
	)
	if strings.Contains(formatFields(got), "clear-secret-value") {
		t.Error("a refusal repeats the secret's value")
	}
}

func TestCheckRequestRefusesMissingRequiredInputs(t *testing.T) {
	c := shippedCatalog(t)
	wantFieldErrors(t, c.CheckRequest("platform/secret-rotation", "1.0.0", nil, nil),
		api.FieldError{Path: "/inputs/service", Message: "required: The service whose secret rotates. (platform/secret-rotation 1.0.0 has no default for service)"},
		api.FieldError{Path: "/secret_inputs/initial_secret", Message: "required: The secret's first value (a secret input). (platform/secret-rotation 1.0.0 has no default for initial_secret)"},
	)
	// Optional ones may be left out; the module's defaults apply.
	wantFieldErrors(t, c.CheckRequest("platform/secret-rotation", "1.0.0", map[string]any{"service": "web"}, map[string]string{"initial_secret": "s"}))
}

// Values are converted to the variable's type as Terraform converts them
// (the provider sends strings: "14" is a number), and refused when they
// cannot be; null is not a value.
func TestCheckRequestTypeChecksValues(t *testing.T) {
	c := shippedCatalog(t)
	wantFieldErrors(t, c.CheckRequest("platform/secret-rotation", "1.0.0",
		map[string]any{"service": "web", "rotation_days": "14"}, map[string]string{"initial_secret": "s"}))
	got := c.CheckRequest("platform/secret-rotation", "1.0.0",
		map[string]any{"service": []any{"web"}, "rotation_days": "thirty"}, map[string]string{"initial_secret": "s"})
	wantFieldErrors(t, got,
		api.FieldError{Path: "/inputs/rotation_days", Message: "must be number: a number is required"},
		api.FieldError{Path: "/inputs/service", Message: "must be string: string required, but have tuple"},
	)
	got = c.CheckRequest("platform/service-registration", "2.0.0", map[string]any{"name": nil, "owner": "team@example.com", "tier": nil}, nil)
	wantFieldErrors(t, got,
		api.FieldError{Path: "/inputs/name", Message: "null is not a value for name, which has no default: give a value of type string"},
		api.FieldError{Path: "/inputs/tier", Message: "null is not a value: leave tier out to use its default"},
	)
}

// The module's own validation blocks run at admission, with its own
// messages: deploy-gate's settle is bounded (the review's 720h), and the
// other shipped modules' bounds hold before a run, not only at plan.
func TestCheckRequestRunsTheModulesValidations(t *testing.T) {
	c := shippedCatalog(t)
	for _, settle := range []string{"720h", "121s", "3m", "2m1s", "1h", "-5s", "30"} {
		wantFieldErrors(t, c.CheckRequest("platform/deploy-gate", "1.0.0", map[string]any{"release": "v1.2.3", "settle": settle}, nil),
			api.FieldError{Path: "/inputs/settle", Message: "fails the module's validation: settle must be a duration of at most 120s, in seconds or minutes, such as 30s, 90s, 1m30s or 2m."})
	}
	for _, settle := range []string{"0s", "8s", "30s", "90s", "120s", "1m", "1m30s", "2m", "2m0s"} {
		wantFieldErrors(t, c.CheckRequest("platform/deploy-gate", "1.0.0", map[string]any{"release": "v1.2.3", "settle": settle}, nil))
	}
	wantFieldErrors(t, c.CheckRequest("platform/maintenance-window", "1.1.0",
		map[string]any{"service": "Billing", "start_hour": 2.5, "duration_hours": "9", "weekday": "someday"}, nil),
		api.FieldError{Path: "/inputs/duration_hours", Message: "fails the module's validation: duration_hours must be a whole number of hours from 1 to 8."},
		api.FieldError{Path: "/inputs/service", Message: "fails the module's validation: service must be lowercase letters, digits and '-', starting with a letter, at most 63 characters."},
		api.FieldError{Path: "/inputs/start_hour", Message: "fails the module's validation: start_hour must be a whole hour from 0 to 23."},
		api.FieldError{Path: "/inputs/weekday", Message: "fails the module's validation: weekday must be a day of the week, in lowercase."},
	)
	wantFieldErrors(t, c.CheckRequest("platform/service-registration", "2.0.0", map[string]any{"name": "ledger", "owner": "nobody", "tier": "platinum"}, nil),
		api.FieldError{Path: "/inputs/owner", Message: "fails the module's validation: owner must be an e-mail address."},
		api.FieldError{Path: "/inputs/tier", Message: "fails the module's validation: tier must be bronze, silver or gold."},
	)
	wantFieldErrors(t, c.CheckRequest("platform/service-registration", "2.0.0", map[string]any{"name": "ledger", "owner": "team@example.com", "tier": "gold"}, nil))
}

func TestCheckRequestRefusesUnapprovedModuleOrVersion(t *testing.T) {
	c := shippedCatalog(t)
	wantFieldErrors(t, c.CheckRequest("platform/maintenance-window", "9.0.0", nil, nil),
		api.FieldError{Path: "/version", Message: `module platform/maintenance-window has no approved version "9.0.0"; approved: 1.0.0, 1.1.0`})
	wantFieldErrors(t, c.CheckRequest("platform/nope", "1.0.0", nil, nil),
		api.FieldError{Path: "/module", Message: `"platform/nope" is not in the operator's module catalog; approved: platform/deploy-gate, platform/maintenance-window, platform/secret-rotation, platform/service-registration`})
}

// An update is checked as the run it would make: the stored spec with the
// update laid over it. A version change the stored inputs do not fit is
// refused at /version; secret inputs must be sent again.
func TestCheckUpdate(t *testing.T) {
	c := shippedCatalog(t)
	stored := &api.ModuleRunRequest{Name: "ledger-window", Module: "platform/maintenance-window", Version: "1.1.0",
		Inputs: map[string]any{"service": "ledger", "weekday": "monday"}}
	wantFieldErrors(t, c.CheckUpdate(stored, &api.ModuleRunUpdate{Version: "1.0.0"}),
		api.FieldError{Path: "/version", Message: `platform/maintenance-window 1.0.0 and the run's current inputs: /inputs/weekday: module platform/maintenance-window 1.0.0 has no input "weekday"; its inputs: duration_hours, service, start_hour; send inputs with the new version`})
	wantFieldErrors(t, c.CheckUpdate(stored, &api.ModuleRunUpdate{Version: "1.0.0", Inputs: map[string]any{"service": "ledger", "weekday": "monday"}}),
		api.FieldError{Path: "/inputs/weekday", Message: `module platform/maintenance-window 1.0.0 has no input "weekday"; its inputs: duration_hours, service, start_hour`})
	wantFieldErrors(t, c.CheckUpdate(stored, &api.ModuleRunUpdate{Version: "1.0.0", Inputs: map[string]any{"service": "ledger"}}))
	wantFieldErrors(t, c.CheckUpdate(stored, &api.ModuleRunUpdate{Version: "2.0.0"}),
		api.FieldError{Path: "/version", Message: `module platform/maintenance-window has no approved version "2.0.0"; approved: 1.0.0, 1.1.0`})
	wantFieldErrors(t, c.CheckUpdate(stored, &api.ModuleRunUpdate{Inputs: map[string]any{"service": "ledger", "start_hour": 24}}),
		api.FieldError{Path: "/inputs/start_hour", Message: "fails the module's validation: start_hour must be a whole hour from 0 to 23."})

	secret := &api.ModuleRunRequest{Name: "rot", Module: "platform/secret-rotation", Version: "1.0.0",
		Inputs: map[string]any{"service": "web"}, SecretInputs: map[string]string{"initial_secret": "hmac:digest"}}
	wantFieldErrors(t, c.CheckUpdate(secret, &api.ModuleRunUpdate{Inputs: map[string]any{"service": "web", "rotation_days": 7}}),
		api.FieldError{Path: "/secret_inputs", Message: "required: the run has secret inputs (initial_secret) and their values are not kept after a run; every update runs the module again, so send them again"})
	wantFieldErrors(t, c.CheckUpdate(secret, &api.ModuleRunUpdate{Inputs: map[string]any{"service": "web", "rotation_days": 7},
		SecretInputs: map[string]string{"initial_secret": "new"}}))
	// An empty object is kept in the stored update and sent: the executor
	// runs without any (the provider sends {} when every input is removed).
	// The check sees the update as stored.
	wantFieldErrors(t, c.CheckUpdate(secret, &api.ModuleRunUpdate{SecretInputs: map[string]string{}}),
		api.FieldError{Path: "/secret_inputs/initial_secret", Message: "required: The secret's first value (a secret input). (platform/secret-rotation 1.0.0 has no default for initial_secret)"})
	wantFieldErrors(t, c.CheckUpdate(stored, &api.ModuleRunUpdate{Version: "1.0.0", Inputs: map[string]any{}}),
		api.FieldError{Path: "/inputs/service", Message: "required: The service the window is for (lowercase letters, digits and '-'). (platform/maintenance-window 1.0.0 has no default for service)"})
}

// Every validation of the shipped modules is one the gateway evaluates
// before a run: none of their inputs is refused for being uncheckable.
func TestShippedValidationsAreCheckable(t *testing.T) {
	c := shippedCatalog(t)
	n := 0
	for _, name := range c.Names() {
		for _, v := range c.modules[name].Versions {
			for _, in := range v.Inputs {
				for _, vd := range in.Validations {
					n++
					if vd.Unchecked != "" {
						t.Errorf("%s %s: validation of %s: %s", name, v.Version, in.Name, vd.Unchecked)
					}
				}
			}
		}
	}
	if n == 0 {
		t.Fatal("no validations read from the shipped modules")
	}
}

// writeModule approves a one-version module in a fresh catalog.
func writeModule(t *testing.T, src string) *Version {
	t.Helper()
	dir := t.TempDir()
	mdir := filepath.Join(dir, "m", "1.0.0")
	if err := os.MkdirAll(mdir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(mdir, "main.tf"), []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	sum, err := DirHash(mdir)
	if err != nil {
		t.Fatal(err)
	}
	cat := `{"modules":[{"name":"m","versions":[{"version":"1.0.0","source":"m/1.0.0","sha256":"` + sum + `"}]}]}`
	if err := os.WriteFile(filepath.Join(dir, CatalogFile), []byte(cat), 0o644); err != nil {
		t.Fatal(err)
	}
	c, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	v, err := c.Version("m", "1.0.0")
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// A validation the gateway cannot evaluate with the value alone (another
// variable, a function it does not evaluate) refuses the input it guards,
// saying why, instead of letting it through to fail at plan.
func TestUncheckableValidationRefusesItsInput(t *testing.T) {
	v := writeModule(t, `
variable "start" {
  type = string
  validation {
    condition     = timecmp(var.start, "2030-01-01T00:00:00Z") < 0
    error_message = "start must be before 2030."
  }
}
variable "end" {
  type    = string
  default = "x"
  validation {
    condition     = var.end != var.start
    error_message = "end must differ from start."
  }
}
`)
	c := &Catalog{modules: map[string]*Module{"m": {Name: "m", Versions: map[string]*Version{"1.0.0": v}}}}
	wantFieldErrors(t, c.CheckRequest("m", "1.0.0", map[string]any{"start": "2029-01-01T00:00:00Z", "end": "y"}, nil),
		api.FieldError{Path: "/inputs/end", Message: "cannot be checked before a run, so it is refused rather than left to fail at plan: m 1.0.0 validates end with `var.end != var.start`, and the condition refers to var.start; the gateway evaluates conditions on var.end alone; leave it out to use its default, or ask the operator to change the module's validation"},
		api.FieldError{Path: "/inputs/start", Message: "cannot be checked before a run, so it is refused rather than left to fail at plan: m 1.0.0 validates start with `timecmp(var.start, \"2030-01-01T00:00:00Z\") < 0`, and the condition calls timecmp(), which the gateway does not evaluate before a run; the operator must change the module's validation before it can be run"},
	)
}

// Complex type constraints: optional attributes with defaults, nested
// errors named by pointer, and secret inputs of a complex type read as HCL
// (as Terraform reads TF_VAR_ variables), never echoed.
func TestComplexTypesAndSecretValues(t *testing.T) {
	v := writeModule(t, `
variable "endpoint" {
  type = object({
    host = string
    port = optional(number, 443)
    tags = optional(list(string), [])
    ports = optional(list(number), [])
  })
  validation {
    condition     = var.endpoint.port > 0 && var.endpoint.port < 65536 && length(var.endpoint.tags) <= 3
    error_message = "port must be 1-65535 and at most 3 tags (got port ${var.endpoint.port})."
  }
}
variable "keys" {
  type      = map(string)
  sensitive = true
}
variable "pin" {
  type      = number
  sensitive = true
  default   = 0
  validation {
    condition     = var.pin >= 1000 && var.pin <= 9999
    error_message = "pin must have four digits, not ${var.pin}."
  }
}
`)
	c := &Catalog{modules: map[string]*Module{"m": {Name: "m", Versions: map[string]*Version{"1.0.0": v}}}}
	wantFieldErrors(t, c.CheckRequest("m", "1.0.0", map[string]any{"endpoint": map[string]any{"host": "a"}},
		map[string]string{"keys": `{ a = "1" }`, "pin": "1234"}))
	got := c.CheckRequest("m", "1.0.0",
		map[string]any{"endpoint": map[string]any{"host": "a", "ports": []any{"8443", "https"}}},
		map[string]string{"keys": `{ a = "secret-1", b = `, "pin": "12"})
	wantFieldErrors(t, got,
		api.FieldError{Path: "/inputs/endpoint/ports/1", Message: "a number is required (endpoint is object({host=string,port=number,ports=list(number),tags=list(string)}))"},
		api.FieldError{Path: "/secret_inputs/keys", Message: "must be map(string) written as an HCL expression (Terraform reads a secret input of a complex type that way); this one does not parse"},
		api.FieldError{Path: "/secret_inputs/pin", Message: "fails the module's validation: pin must have four digits, not ${var.pin}."},
	)
	if strings.Contains(formatFields(got), "secret-1") || strings.Contains(formatFields(got), "not 12") {
		t.Error("a refusal repeats a secret's value")
	}
	wantFieldErrors(t, c.CheckRequest("m", "1.0.0", map[string]any{"endpoint": map[string]any{"host": "a", "port": 70000}}, map[string]string{"keys": `{}`}),
		api.FieldError{Path: "/inputs/endpoint", Message: "fails the module's validation: port must be 1-65535 and at most 3 tags (got port 70000)."})
	// No conversion at all between the types: the mismatch is named from the top.
	wantFieldErrors(t, c.CheckRequest("m", "1.0.0", map[string]any{"endpoint": map[string]any{"host": "a", "tags": []any{"x", []any{"nested"}}}}, map[string]string{"keys": `{}`}),
		api.FieldError{Path: "/inputs/endpoint", Message: `must be object({host=string,port=number,ports=list(number),tags=list(string)}): attribute "tags": element 1: string required, but have tuple`})
}

// Override files would change the variables Terraform sees: a catalog
// module has none.
func TestOverrideFilesRefused(t *testing.T) {
	dir := t.TempDir()
	for name, body := range map[string]string{"main.tf": `variable "a" { type = string }`, "main_override.tf": `variable "a" { type = number }`} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := ReadInputs(dir); err == nil || !strings.Contains(err.Error(), "override file") {
		t.Fatalf("override file: %v", err)
	}
}

// CheckModuleRun is the one call admission makes, for a decoded body and
// (for an update) the resource's stored spec; api.InvalidFields turns its
// answer into the request's field errors, under a dry run's prefix too.
func TestCheckModuleRunForAdmission(t *testing.T) {
	c := shippedCatalog(t)
	create, err := api.DecodeKind(api.KindModuleRun, api.ActionCreate,
		[]byte(`{"name":"gate","module":"platform/deploy-gate","version":"1.0.0","inputs":{"release":"v1","settle":"720h"}}`), "/request")
	if err != nil {
		t.Fatal(err)
	}
	fs, err := c.CheckModuleRun(api.ActionCreate, create, nil)
	if err != nil {
		t.Fatal(err)
	}
	got := api.InvalidFields("/request", fs)
	want := "invalid request: /request/inputs/settle: fails the module's validation: settle must be a duration of at most 120s, in seconds or minutes, such as 30s, 90s, 1m30s or 2m."
	if got == nil || got.Error() != want {
		t.Errorf("create: %v\nwant %s", got, want)
	}
	update, err := api.DecodeKind(api.KindModuleRun, api.ActionUpdate, []byte(`{"inputs":{"release":"v2","settle":"2m"}}`), "")
	if err != nil {
		t.Fatal(err)
	}
	stored := []byte(`{"name":"gate","module":"platform/deploy-gate","version":"1.0.0","inputs":{"release":"v1"}}`)
	if fs, err := c.CheckModuleRun(api.ActionUpdate, update, stored); err != nil || len(fs) != 0 {
		t.Errorf("update: %v %v", fs, err)
	}
	if fs, err := c.CheckModuleRun(api.ActionDelete, &api.DeleteRequest{}, stored); err != nil || len(fs) != 0 {
		t.Errorf("delete: %v %v", fs, err)
	}
	if _, err := c.CheckModuleRun(api.ActionUpdate, update, []byte("not json")); err == nil {
		t.Error("an unreadable stored spec passed")
	}
}
