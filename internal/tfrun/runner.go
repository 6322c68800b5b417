// Package tfrun runs one approved Terraform module the way the gateway must:
// in a private working directory, initialised with no network from a
// filesystem provider mirror (as air-gapped sites do), planned to a saved
// plan whose JSON the caller judges before anything is applied, then that
// saved plan applied — never a fresh one.
//
// Credentials (the operation's sub-token, Vault's address) and secret
// inputs reach Terraform only through its process environment: never a
// file sas writes, never argv. Secret inputs are declared sensitive to
// Terraform, so it prints "(sensitive value)" for them; every form of every
// secret value (raw, JSON-escaped, quoted, …) is redacted from what the run
// logs or returns; the plan's JSON is never logged, and the copy kept for
// the policy has its variables' values removed and what the plan marks
// sensitive masked. Terraform runs with umask 077: its state, plans and
// lock files are 0600, its directories 0700, like every file sas writes.
//
// Every Terraform command is a process of its own here (terraform-exec
// refuses TF_VAR_ variables and would copy show's JSON to the log); plans
// are read with terraform-json.
package tfrun

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"
	"unicode/utf8"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclparse"
	tfjson "github.com/hashicorp/terraform-json"
)

// Runner runs modules with one Terraform binary.
type Runner struct {
	// Terraform is the CLI to run (the operator's; ./bin/terraform by default).
	Terraform string
	// PluginDir is the provider mirror init installs from; nothing is downloaded.
	PluginDir string
	// WorkRoot holds the private working directories (created 0700).
	WorkRoot string
	// Interrupt is how long a run past its deadline gets after SIGINT
	// (Terraform then writes its state and releases its lock) before it
	// is killed. Default 30s.
	Interrupt time.Duration
}

// Run is one module run: a working directory for one resource.
type Run struct {
	r   *Runner
	Dir string // the private working directory
	// StateFile is the run's local state, outside Dir (it outlives the run).
	StateFile string
	inputs    map[string]any
	env       []string
	redact    *redactor
	logMu     sync.Mutex // Terraform's stdout and stderr are copied concurrently
	log       io.Writer
	pg        bool // state in PostgreSQL, not StateFile
}

// Spec says what to run.
type Spec struct {
	ID        string // names the working directory (an operation id)
	Source    string // the module's verified source directory
	StateFile string // where the resource's state lives
	// Inputs are written to the working directory as terraform.tfvars.json:
	// they are not secret (the catalog says which are).
	Inputs map[string]any
	// SecretInputs and Env reach Terraform as environment variables only
	// (TF_VAR_<name>, and Env as given: VAULT_TOKEN, VAULT_ADDR, …); their
	// values are redacted from the log. The module's variables named in
	// SecretInputs are declared sensitive to Terraform.
	SecretInputs map[string]string
	Env          map[string]string
	// Log receives Terraform's output, redacted: its human-readable plans
	// and applies, never the JSON of `terraform show` or `terraform output`.
	Log io.Writer
	// PGConnStr, when set, keeps the state in PostgreSQL with Terraform's
	// own pg backend (schema PGSchema, locked with advisory locks that end
	// with the session) instead of StateFile. The connection string holds
	// credentials: it reaches Terraform as PG_CONN_STR only.
	PGConnStr, PGSchema string
}

// Start prepares a run: a fresh private working directory holding a copy
// of the module, its non-secret inputs and a local backend pointed at the
// resource's state, initialised from the mirror.
func (r *Runner) Start(ctx context.Context, s Spec) (*Run, error) {
	if err := privateDir(r.WorkRoot); err != nil {
		return nil, err
	}
	dir := filepath.Join(r.WorkRoot, s.ID)
	_ = os.RemoveAll(dir) // a previous step's leftovers: start clean
	if err := copyDir(s.Source, dir); err != nil {
		return nil, fmt.Errorf("copy module: %w", err)
	}
	run := &Run{r: r, Dir: dir, StateFile: s.StateFile, inputs: s.Inputs, log: s.Log, pg: s.PGConnStr != ""}
	if run.log == nil {
		run.log = io.Discard
	}
	backend := fmt.Sprintf("terraform {\n  backend \"pg\" {\n    schema_name = %q\n  }\n}\n", s.PGSchema)
	if !run.pg {
		if err := privateDir(filepath.Dir(s.StateFile)); err != nil {
			return nil, err
		}
		// State written before Terraform ran with umask 077 keeps its mode
		// when Terraform rewrites it: make it private now.
		for _, f := range []string{s.StateFile, s.StateFile + ".backup"} {
			if err := os.Chmod(f, 0o600); err != nil && !errors.Is(err, fs.ErrNotExist) {
				return nil, err
			}
		}
		backend = fmt.Sprintf("terraform {\n  backend \"local\" {\n    path = %q\n  }\n}\n", s.StateFile)
	}
	if err := os.WriteFile(filepath.Join(dir, "_sas_backend.tf"), []byte(backend), 0o600); err != nil {
		return nil, err
	}
	if len(s.Inputs) > 0 {
		b, err := json.Marshal(s.Inputs)
		if err != nil {
			return nil, err
		}
		if err := os.WriteFile(filepath.Join(dir, "terraform.tfvars.json"), b, 0o600); err != nil {
			return nil, err
		}
	}
	if err := writeSecretInputsOverride(dir, s.SecretInputs); err != nil {
		return nil, err
	}
	// A minimal environment: nothing of the gateway's own leaks in.
	env := map[string]string{"HOME": dir, "PATH": "/usr/bin:/bin", "CHECKPOINT_DISABLE": "1", "TF_IN_AUTOMATION": "1",
		"TF_INPUT": "0", "TF_CLI_CONFIG_FILE": os.DevNull, "TF_PLUGIN_CACHE_DIR": ""}
	var secrets []string
	for k, v := range s.Env {
		env[k] = v
		secrets = append(secrets, v)
	}
	for k, v := range s.SecretInputs {
		env["TF_VAR_"+k] = v
		secrets = append(secrets, v)
	}
	if run.pg {
		env["PG_CONN_STR"] = s.PGConnStr
		secrets = append(secrets, s.PGConnStr)
	}
	run.redact = newRedactor(secrets)
	for k, v := range env {
		run.env = append(run.env, k+"="+v)
	}
	sort.Strings(run.env)

	if err := run.command(ctx, nil, "init", "-input=false", "-no-color", "-upgrade=false", "-plugin-dir="+r.PluginDir); err != nil {
		_ = run.Close()
		return nil, fmt.Errorf("terraform init (offline, from %s): %w", r.PluginDir, err)
	}
	return run, nil
}

// secretInputsOverride is the override file declaring the secret inputs
// sensitive. Terraform merges override files in name order after the
// module's own: "zz_" keeps this one last.
const secretInputsOverride = "zz_sas_secret_inputs_override.tf"

// writeSecretInputsOverride declares each of the module's variables that
// receives a secret input sensitive (catalog modules already do; this
// holds for any module), so Terraform prints "(sensitive value)" for it
// and anything derived from it, and marks it so in the plan's JSON.
// Variables the module does not declare are left out: Terraform refuses
// to override a variable that does not exist (and ignores its TF_VAR_).
func writeSecretInputsOverride(dir string, secretInputs map[string]string) error {
	if len(secretInputs) == 0 {
		return nil
	}
	declared, err := declaredVariables(dir)
	if err != nil {
		return err
	}
	names := make([]string, 0, len(secretInputs))
	for k := range secretInputs {
		if declared[k] {
			names = append(names, k)
		}
	}
	if len(names) == 0 {
		return nil
	}
	sort.Strings(names)
	var b strings.Builder
	b.WriteString("# Written by sas: secret inputs are sensitive.\n")
	for _, n := range names {
		fmt.Fprintf(&b, "variable %q {\n  sensitive = true\n}\n", n)
	}
	return os.WriteFile(filepath.Join(dir, secretInputsOverride), []byte(b.String()), 0o600)
}

// declaredVariables names the variables the module's primary files declare.
func declaredVariables(dir string) (map[string]bool, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	parser := hclparse.NewParser()
	schema := &hcl.BodySchema{Blocks: []hcl.BlockHeaderSchema{{Type: "variable", LabelNames: []string{"name"}}}}
	out := map[string]bool{}
	for _, e := range entries {
		name := e.Name()
		base := strings.TrimSuffix(strings.TrimSuffix(name, ".json"), ".tf")
		if e.IsDir() || base == "override" || strings.HasSuffix(base, "_override") {
			continue
		}
		var file *hcl.File
		switch {
		case strings.HasSuffix(name, ".tf"):
			file, _ = parser.ParseHCLFile(filepath.Join(dir, name))
		case strings.HasSuffix(name, ".tf.json"):
			file, _ = parser.ParseJSONFile(filepath.Join(dir, name))
		}
		if file == nil || file.Body == nil {
			continue // Terraform reports what does not parse
		}
		content, _, _ := file.Body.PartialContent(schema)
		for _, b := range content.Blocks {
			out[b.Labels[0]] = true
		}
	}
	return out, nil
}

// privateDir makes dir (and its parents) exist, dir itself 0700.
func privateDir(dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	return os.Chmod(dir, 0o700)
}

// Plan is a saved plan and what it would do.
type Plan struct {
	File string
	// JSON is the plan as the policy judges it: the variables' values
	// removed, what the plan marks sensitive masked, secrets redacted.
	JSON    *tfjson.Plan
	Summary Summary
}

// Summary counts a plan's resource changes.
type Summary struct {
	Add, Change, Destroy int
}

// Plan plans the module (destroy: its destruction) to a saved plan file
// and returns it with its JSON, for the policy to judge before Apply. The
// log gets Terraform's human-readable plan and a one-line summary, never
// the JSON.
func (run *Run) Plan(ctx context.Context, destroy bool) (*Plan, error) {
	file := filepath.Join(run.Dir, "sas.tfplan")
	args := []string{"plan", "-input=false", "-no-color", "-lock-timeout=30s", "-out=" + file}
	if destroy {
		args = append(args, "-destroy")
	}
	if err := run.command(ctx, nil, args...); err != nil {
		return nil, err
	}
	js, err := run.showPlan(ctx, file)
	if err != nil {
		return nil, err
	}
	p := &Plan{File: file, JSON: js}
	for _, rc := range js.ResourceChanges {
		if rc.Change == nil {
			continue
		}
		a := rc.Change.Actions
		switch {
		case a.Create():
			p.Summary.Add++
		case a.Update():
			p.Summary.Change++
		case a.Delete():
			p.Summary.Destroy++
		case a.Replace():
			p.Summary.Add++
			p.Summary.Destroy++
		}
	}
	_ = run.writeLog(fmt.Sprintf("sas: saved plan %s: %d to add, %d to change, %d to destroy\n",
		filepath.Base(file), p.Summary.Add, p.Summary.Change, p.Summary.Destroy))
	return p, nil
}

// showPlan reads a saved plan's JSON (never logged) and masks it.
func (run *Run) showPlan(ctx context.Context, file string) (*tfjson.Plan, error) {
	var out bytes.Buffer
	if err := run.command(ctx, &out, "show", "-json", "-no-color", file); err != nil {
		return nil, err
	}
	return maskPlan(out.Bytes(), run.redact)
}

// Drift is what a refresh-only plan finds changed outside Terraform: each
// resource whose real object no longer matches the state, and how.
func (run *Run) Drift(ctx context.Context) ([]DriftedResource, error) {
	file := filepath.Join(run.Dir, "sas-refresh.tfplan")
	if err := run.command(ctx, nil, "plan", "-refresh-only", "-input=false", "-no-color", "-lock-timeout=30s", "-out="+file); err != nil {
		return nil, err
	}
	js, err := run.showPlan(ctx, file)
	if err != nil {
		return nil, err
	}
	var out []DriftedResource
	for _, rc := range js.ResourceDrift {
		if rc.Change == nil || rc.Change.Actions.NoOp() {
			continue
		}
		actions := make([]string, len(rc.Change.Actions))
		for i, a := range rc.Change.Actions {
			actions[i] = string(a)
		}
		out = append(out, DriftedResource{Address: rc.Address, Actions: actions})
	}
	return out, nil
}

// DriftedResource is one resource a refresh found changed outside Terraform.
type DriftedResource struct {
	Address string
	Actions []string // "update" (changed), "delete" (gone)
}

// Apply applies exactly the saved plan (Terraform refuses one whose state
// changed since: a stale plan is never applied).
func (run *Run) Apply(ctx context.Context, p *Plan) error {
	return run.command(ctx, nil, "apply", "-input=false", "-no-color", "-lock-timeout=30s", "-auto-approve", p.File)
}

// Output is a module output.
type Output struct {
	Value     json.RawMessage
	Sensitive bool
}

// Outputs reads the module's outputs from its state file (what
// `terraform output -json` prints, without starting Terraform again).
func (run *Run) Outputs(ctx context.Context) (map[string]Output, error) {
	if run.pg {
		return run.outputsFromTerraform(ctx)
	}
	b, err := os.ReadFile(run.StateFile)
	if err != nil {
		return nil, fmt.Errorf("read the run's state: %w", err)
	}
	var st struct {
		Outputs map[string]struct {
			Value     json.RawMessage `json:"value"`
			Sensitive bool            `json:"sensitive"`
		} `json:"outputs"`
	}
	if err := json.Unmarshal(b, &st); err != nil {
		return nil, fmt.Errorf("the run's state is not Terraform state: %w", err)
	}
	res := make(map[string]Output, len(st.Outputs))
	for k, v := range st.Outputs {
		res[k] = Output{Value: v.Value, Sensitive: v.Sensitive}
	}
	return res, nil
}

// outputsFromTerraform asks Terraform (state in a remote backend); the
// values are returned, not logged.
func (run *Run) outputsFromTerraform(ctx context.Context) (map[string]Output, error) {
	var out bytes.Buffer
	if err := run.command(ctx, &out, "output", "-json", "-no-color"); err != nil {
		return nil, err
	}
	var outs map[string]struct {
		Value     json.RawMessage `json:"value"`
		Sensitive bool            `json:"sensitive"`
	}
	if err := json.Unmarshal(out.Bytes(), &outs); err != nil {
		return nil, fmt.Errorf("terraform output -json: %w", err)
	}
	res := make(map[string]Output, len(outs))
	for k, v := range outs {
		res[k] = Output{Value: v.Value, Sensitive: v.Sensitive}
	}
	return res, nil
}

// Close removes the working directory (the module copy, its inputs, the
// saved plan); the state file stays.
func (run *Run) Close() error { return os.RemoveAll(run.Dir) }

// umask077 starts Terraform with umask 077 (os/exec cannot set a child's
// umask): the state, plan, lock and backup files it creates are 0600.
const umask077 = `umask 077 && exec "$0" "$@"`

// command runs terraform with the run's environment. Its stderr, and its
// stdout unless captured (stdout non-nil: JSON the caller reads), go to
// the run's log, redacted. Past the context's deadline it is sent SIGINT —
// Terraform then stops, writes its state and releases its lock — and
// killed only if it has not stopped after Interrupt.
func (run *Run) command(ctx context.Context, stdout io.Writer, args ...string) error {
	cmd := exec.Command("/bin/sh", append([]string{"-c", umask077, run.r.Terraform}, args...)...)
	cmd.Dir, cmd.Env = run.Dir, run.env
	var out lockedBuffer // for the error message
	errLog := &redactingStream{run: run}
	streams := []*redactingStream{errLog}
	cmd.Stderr = io.MultiWriter(&out, errLog)
	if stdout != nil {
		cmd.Stdout = stdout
	} else {
		outLog := &redactingStream{run: run}
		streams = append(streams, outLog)
		cmd.Stdout = io.MultiWriter(&out, outLog)
	}
	flush := func() {
		for _, s := range streams {
			_ = s.flush()
		}
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true} // signals reach its providers too
	if err := cmd.Start(); err != nil {
		return err
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		flush()
		if err != nil {
			// Redacted whole, then cut: a cut must not leave half a secret.
			return fmt.Errorf("terraform %s: %v\n%s", args[0], err, tail(run.clean(out.String()), 4000))
		}
		return nil
	case <-ctx.Done():
	}
	_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGINT)
	grace := run.r.Interrupt
	if grace <= 0 {
		grace = 30 * time.Second
	}
	select {
	case <-done:
	case <-time.After(grace):
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		<-done
	}
	flush()
	return fmt.Errorf("terraform %s interrupted (%w); its state is saved and its lock released", args[0], ctx.Err())
}

// clean redacts every form of every secret value of the run from s.
func (run *Run) clean(s string) string { return run.redact.clean(s) }

// writeLog appends already-redacted text to the run's log.
func (run *Run) writeLog(s string) error {
	if s == "" {
		return nil
	}
	run.logMu.Lock()
	defer run.logMu.Unlock()
	_, err := io.WriteString(run.log, s)
	return err
}

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	s = s[len(s)-n:]
	for len(s) > 0 && !utf8.RuneStart(s[0]) {
		s = s[1:]
	}
	return "…" + s
}

// copyDir copies a module's regular files (hidden ones left out, as in its hash).
func copyDir(src, dst string) error {
	return filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		if strings.HasPrefix(d.Name(), ".") && p != src {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		target := filepath.Join(dst, rel)
		if d.IsDir() {
			return os.MkdirAll(target, 0o700)
		}
		if !d.Type().IsRegular() {
			return errors.New(p + " is not a regular file")
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(target, b, 0o600)
	})
}
