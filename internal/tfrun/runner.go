// Package tfrun runs one approved Terraform module the way the gateway must:
// in a private working directory, initialised with no network from a
// filesystem provider mirror (as air-gapped sites do), planned to a saved
// plan whose JSON the caller judges before anything is applied, then that
// saved plan applied — never a fresh one.
//
// Credentials (the operation's sub-token, Vault's address) and secret
// inputs reach Terraform only through its process environment: never a
// file sas writes, never argv. terraform-exec refuses TF_VAR_ variables in
// its environment and would put -var values in argv, so plan and apply are
// run as processes of their own here; init and show go through
// terraform-exec and terraform-json, and outputs are read from the state.
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

	"github.com/hashicorp/terraform-exec/tfexec"
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
	redact    []string
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
	// values are redacted from the log.
	SecretInputs map[string]string
	Env          map[string]string
	// Log receives Terraform's output, redacted.
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
	if err := os.MkdirAll(r.WorkRoot, 0o700); err != nil {
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
		if err := os.MkdirAll(filepath.Dir(s.StateFile), 0o700); err != nil {
			return nil, err
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
	// A minimal environment: nothing of the gateway's own leaks in.
	env := map[string]string{"HOME": dir, "PATH": "/usr/bin:/bin", "CHECKPOINT_DISABLE": "1", "TF_IN_AUTOMATION": "1",
		"TF_INPUT": "0", "TF_CLI_CONFIG_FILE": os.DevNull, "TF_PLUGIN_CACHE_DIR": ""}
	for k, v := range s.Env {
		env[k] = v
		run.redact = append(run.redact, v)
	}
	for k, v := range s.SecretInputs {
		env["TF_VAR_"+k] = v
		run.redact = append(run.redact, v)
	}
	if run.pg {
		env["PG_CONN_STR"] = s.PGConnStr
		run.redact = append(run.redact, s.PGConnStr)
	}
	for k, v := range env {
		run.env = append(run.env, k+"="+v)
	}
	sort.Strings(run.env)
	sort.Slice(run.redact, func(i, j int) bool { return len(run.redact[i]) > len(run.redact[j]) })

	tf, err := run.exec()
	if err != nil {
		return nil, err
	}
	if err := tf.Init(ctx, tfexec.PluginDir(r.PluginDir), tfexec.Upgrade(false)); err != nil {
		return nil, fmt.Errorf("terraform init (offline, from %s): %s", r.PluginDir, run.clean(err.Error()))
	}
	return run, nil
}

// exec is terraform-exec on the run's directory with its environment
// (minus the TF_VAR_ variables it refuses: init, show and output do not
// evaluate variables).
func (run *Run) exec() (*tfexec.Terraform, error) {
	tf, err := tfexec.NewTerraform(run.Dir, run.r.Terraform)
	if err != nil {
		return nil, err
	}
	env := map[string]string{}
	for _, kv := range run.env {
		k, v, _ := strings.Cut(kv, "=")
		env[k] = v
	}
	if err := tf.SetEnv(tfexec.CleanEnv(env)); err != nil {
		return nil, err
	}
	tf.SetStdout(redacting{run})
	tf.SetStderr(redacting{run})
	return tf, nil
}

// Plan is a saved plan and what it would do.
type Plan struct {
	File    string
	JSON    *tfjson.Plan
	Summary Summary
}

// Summary counts a plan's resource changes.
type Summary struct {
	Add, Change, Destroy int
}

// Plan plans the module (destroy: its destruction) to a saved plan file
// and returns it with its JSON, for the policy to judge before Apply.
func (run *Run) Plan(ctx context.Context, destroy bool) (*Plan, error) {
	file := filepath.Join(run.Dir, "sas.tfplan")
	args := []string{"plan", "-input=false", "-no-color", "-lock-timeout=30s", "-out=" + file}
	if destroy {
		args = append(args, "-destroy")
	}
	if err := run.command(ctx, args...); err != nil {
		return nil, err
	}
	tf, err := run.exec()
	if err != nil {
		return nil, err
	}
	js, err := tf.ShowPlanFile(ctx, file)
	if err != nil {
		return nil, fmt.Errorf("terraform show -json: %s", run.clean(err.Error()))
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
	return p, nil
}

// Drift is what a refresh-only plan finds changed outside Terraform: each
// resource whose real object no longer matches the state, and how.
func (run *Run) Drift(ctx context.Context) ([]DriftedResource, error) {
	file := filepath.Join(run.Dir, "sas-refresh.tfplan")
	if err := run.command(ctx, "plan", "-refresh-only", "-input=false", "-no-color", "-lock-timeout=30s", "-out="+file); err != nil {
		return nil, err
	}
	tf, err := run.exec()
	if err != nil {
		return nil, err
	}
	js, err := tf.ShowPlanFile(ctx, file)
	if err != nil {
		return nil, fmt.Errorf("terraform show -json: %s", run.clean(err.Error()))
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
	return run.command(ctx, "apply", "-input=false", "-no-color", "-lock-timeout=30s", "-auto-approve", p.File)
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

// outputsFromTerraform asks Terraform (state in a remote backend).
func (run *Run) outputsFromTerraform(ctx context.Context) (map[string]Output, error) {
	tf, err := run.exec()
	if err != nil {
		return nil, err
	}
	out, err := tf.Output(ctx)
	if err != nil {
		return nil, fmt.Errorf("terraform output: %s", run.clean(err.Error()))
	}
	res := make(map[string]Output, len(out))
	for k, v := range out {
		res[k] = Output{Value: v.Value, Sensitive: v.Sensitive}
	}
	return res, nil
}

// Close removes the working directory (the module copy, its inputs, the
// saved plan); the state file stays.
func (run *Run) Close() error { return os.RemoveAll(run.Dir) }

// command runs terraform with the run's environment. Past the context's
// deadline it is sent SIGINT — Terraform then stops, writes its state and
// releases its lock — and killed only if it has not stopped after Interrupt.
func (run *Run) command(ctx context.Context, args ...string) error {
	cmd := exec.Command(run.r.Terraform, args...)
	cmd.Dir, cmd.Env = run.Dir, run.env
	var out lockedBuffer
	cmd.Stdout, cmd.Stderr = io.MultiWriter(&out, redacting{run}), io.MultiWriter(&out, redacting{run})
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true} // signals reach its providers too
	if err := cmd.Start(); err != nil {
		return err
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			return fmt.Errorf("terraform %s: %v\n%s", args[0], err, run.clean(tail(out.String(), 4000)))
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
	return fmt.Errorf("terraform %s interrupted (%w); its state is saved and its lock released", args[0], ctx.Err())
}

// clean redacts every secret value of the run from s.
func (run *Run) clean(s string) string {
	for _, v := range run.redact {
		if len(v) >= 4 {
			s = strings.ReplaceAll(s, v, "(redacted)")
		}
	}
	return s
}

// redacting writes Terraform's output to the run's log, secrets removed.
// Terraform writes whole lines; a secret split across writes is still
// caught because each write is redacted whole and secrets hold no newline.
type redacting struct{ run *Run }

func (w redacting) Write(p []byte) (int, error) {
	if _, err := io.WriteString(w.run.log, w.run.clean(string(p))); err != nil {
		return 0, err
	}
	return len(p), nil
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
	return "…" + s[len(s)-n:]
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
