package tfrun

import (
	"context"
	"encoding/json"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// secretEchoSpec runs testdata/secret-echo with testSecrets as s1…s7 and
// plain (a 40-character value) as the variable the module forgot to mark
// sensitive.
func secretEchoSpec(id, state string, log *syncBuf) Spec {
	in := map[string]string{"undeclared": plainSecret}
	for i, s := range testSecrets {
		in[fmt.Sprintf("s%d", i+1)] = s
	}
	return Spec{ID: id, Source: "testdata/secret-echo", StateFile: state, SecretInputs: in, Log: log,
		Env: map[string]string{"VAULT_TOKEN": "hvs.sub-token-fixture-0123456789abcdef"}}
}

const plainSecret = "plain-secret-the-module-forgot-0123456789"

// Without redaction the module does print every secret in the log (so the
// test below proves the redaction, not a quiet module); the one it forgot
// to mark sensitive Terraform prints as "(sensitive value)" all the same,
// and the plan kept for the policy masks it by the plan's own markers.
func TestSecretEchoLeaksWithoutRedaction(t *testing.T) {
	r, _ := testRunner(t)
	log := &syncBuf{}
	ctx := context.Background()
	run, err := r.Start(ctx, secretEchoSpec("op-control", filepath.Join(t.TempDir(), "control.tfstate"), log))
	if err != nil {
		t.Fatal(err)
	}
	defer run.Close()
	run.redact = newRedactor(nil) // redaction off
	plan, err := run.Plan(ctx, false)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range testSecrets {
		if len(leaks(log.String(), s)) == 0 {
			t.Errorf("secret %q is not in the unredacted log: the module does not echo it\n%s", s, log.String())
		}
	}
	if strings.Contains(log.String(), plainSecret) || !strings.Contains(log.String(), "(sensitive value)") {
		t.Errorf("the variable sas declared sensitive was printed:\n%s", log.String())
	}
	b, _ := json.Marshal(plan.JSON)
	if strings.Contains(string(b), plainSecret) {
		t.Errorf("the plan kept for the policy holds a value the plan marks sensitive: %s", b)
	}
}

// No form of any secret — raw, JSON-escaped, quoted, escaped twice; of
// 1 to 40 characters, with quotes, backslashes, <&>, non-ASCII — is in the
// log of a plan, apply and destroy of a module that echoes them, nor in the
// plan kept for the policy, nor in any file of the working directory but
// the saved plan (which Terraform needs them in to apply it; 0600, and
// removed with the directory). Every file is 0600, every directory 0700.
func TestSecretsNeverReachTheLogInAnyForm(t *testing.T) {
	r, _ := testRunner(t)
	stateDir := filepath.Join(t.TempDir(), "state")
	state := filepath.Join(stateDir, "mr-echo.tfstate")
	log := &syncBuf{}
	ctx := context.Background()
	spec := secretEchoSpec("op-echo", state, log)
	all := append([]string{plainSecret, spec.Env["VAULT_TOKEN"]}, testSecrets...)
	checkText := func(what, text string) {
		t.Helper()
		for _, s := range all {
			if got := leaks(text, s); len(got) > 0 {
				t.Errorf("%s holds secret %q as %q", what, s, got)
			}
		}
	}
	checkModes := func(root string) {
		t.Helper()
		_ = filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			fi, err := os.Lstat(p)
			if err != nil || fi.Mode()&fs.ModeSymlink != 0 {
				return err
			}
			if perm := fi.Mode().Perm(); (fi.IsDir() && perm != 0o700) || (!fi.IsDir() && perm != 0o600 && perm != 0o700) {
				t.Errorf("%s has mode %o", p, perm)
			}
			return nil
		})
	}
	// checkFiles reads every file under root but the module's own (its
	// text is not a secret: main.tf may well hold "a") and except.
	checkFiles := func(root string, except ...string) {
		t.Helper()
		_ = filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() {
				return err
			}
			for _, e := range except {
				if p == e {
					return nil
				}
			}
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			if orig, err := os.ReadFile(filepath.Join(spec.Source, d.Name())); err == nil && string(orig) == string(b) {
				return nil
			}
			checkText(p, string(b))
			return nil
		})
	}

	run, err := r.Start(ctx, spec)
	if err != nil {
		t.Fatal(err)
	}
	plan, err := run.Plan(ctx, false)
	if err != nil {
		t.Fatal(err)
	}
	if plan.Summary != (Summary{Add: 3}) {
		t.Fatalf("plan %+v\n%s", plan.Summary, log.String())
	}
	if fi, err := os.Stat(plan.File); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("saved plan: %v %v", fi, err)
	}
	b, _ := json.Marshal(plan.JSON)
	checkText("the plan kept for the policy", string(b))
	for name, v := range plan.JSON.Variables {
		if v.Value != nil {
			t.Errorf("the plan keeps variable %s's value", name)
		}
	}
	if err := run.Apply(ctx, plan); err != nil {
		t.Fatal(err)
	}
	// The module really used them: its outputs and its state hold them.
	outs, err := run.Outputs(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var echoed []string
	if err := json.Unmarshal(outs["echo"].Value, &echoed); err != nil || strings.Join(echoed, "\x00") != strings.Join(testSecrets, "\x00") {
		t.Fatalf("echo output %s (%v): the module did not use the secrets", outs["echo"].Value, err)
	}
	checkModes(r.WorkRoot)
	checkModes(stateDir)
	checkFiles(run.Dir, plan.File)

	gone, err := run.Plan(ctx, true)
	if err != nil || gone.Summary != (Summary{Destroy: 3}) {
		t.Fatalf("destroy plan %+v: %v", gone, err)
	}
	if err := run.Apply(ctx, gone); err != nil {
		t.Fatal(err)
	}
	checkModes(r.WorkRoot)
	checkModes(stateDir)
	if err := run.Close(); err != nil {
		t.Fatal(err)
	}
	checkFiles(r.WorkRoot)
	for _, f := range []string{state, state + ".backup"} {
		if fi, err := os.Stat(f); err != nil || fi.Mode().Perm() != 0o600 {
			t.Errorf("%s: %v %v", f, fi, err)
		}
	}
	checkText("the run's log", log.String())
	if !strings.Contains(log.String(), "Apply complete") || !strings.Contains(log.String(), "(redacted)") {
		t.Errorf("the log is not a redacted plan, apply and destroy")
	}
	if t.Failed() {
		t.Logf("log:\n%s", log.String())
	}
}
