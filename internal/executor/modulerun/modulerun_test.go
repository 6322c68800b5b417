package modulerun

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sas-platform/terraform-provider-sas/internal/api"
	"github.com/sas-platform/terraform-provider-sas/internal/devvault"
	"github.com/sas-platform/terraform-provider-sas/internal/executor"
	"github.com/sas-platform/terraform-provider-sas/internal/modules"
	"github.com/sas-platform/terraform-provider-sas/internal/operations"
	"github.com/sas-platform/terraform-provider-sas/internal/policy"
	"github.com/sas-platform/terraform-provider-sas/internal/tfrun"
	"github.com/sas-platform/terraform-provider-sas/internal/vault"
)

func exampleCatalog(t *testing.T) (*modules.Catalog, string) {
	t.Helper()
	root, err := devvault.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	c, err := modules.Load(filepath.Join(root, "examples", "modules"))
	if err != nil {
		t.Fatal(err)
	}
	return c, root
}

// stored is an update as admission stores it: decoded strictly, then
// marshalled (the operation's canonical request).
func stored(t *testing.T, body string) (*api.ModuleRunUpdate, []byte) {
	t.Helper()
	var u api.ModuleRunUpdate
	if err := api.DecodeStrict([]byte(body), &u); err != nil {
		t.Fatalf("%s: %v", body, err)
	}
	canonical, err := json.Marshal(&u)
	if err != nil {
		t.Fatal(err)
	}
	return &u, canonical
}

// An update's {} survives being stored and read back, and means "none":
// the executor runs without the inputs and admission checks that same run
// (so it refuses the update when the module requires one); a field not
// sent keeps the run's own.
func TestUpdateEmptyMapsRemoveInputs(t *testing.T) {
	catalog, _ := exampleCatalog(t)
	spec := api.ModuleRunRequest{Name: "rot", Module: "platform/secret-rotation", Version: "1.0.0",
		Inputs: map[string]any{"service": "web", "rotation_days": float64(14)}, SecretInputs: map[string]string{"initial_secret": "hmac-sha256:aa"}}
	specJSON, _ := json.Marshal(spec)
	for _, tc := range []struct {
		body          string
		stored        string         // the canonical request holds
		inputs        map[string]any // what the executor runs with
		secretInputs  []string
		checkProblems []string // paths CheckUpdate refuses
	}{
		{body: `{"inputs":{},"secret_inputs":{"initial_secret":"s"}}`, stored: `"inputs":{}`,
			inputs: map[string]any{}, secretInputs: []string{"initial_secret"}, checkProblems: []string{"/inputs/service"}},
		{body: `{"inputs":{"service":"web"},"secret_inputs":{}}`, stored: `"secret_inputs":{}`,
			inputs: map[string]any{"service": "web"}, secretInputs: []string{}, checkProblems: []string{"/secret_inputs/initial_secret"}},
		{body: `{"secret_inputs":{"initial_secret":"s"}}`,
			inputs: spec.Inputs, secretInputs: []string{"initial_secret"}},
		{body: `{"version":"1.0.0"}`,
			inputs: spec.Inputs, secretInputs: []string{"initial_secret"}, checkProblems: []string{"/secret_inputs"}},
	} {
		t.Run(tc.body, func(t *testing.T) {
			u, canonical := stored(t, tc.body)
			if tc.stored != "" && !strings.Contains(string(canonical), tc.stored) {
				t.Fatalf("stored as %s: %s dropped", canonical, tc.stored)
			}
			if !strings.Contains(tc.body, `"inputs"`) && strings.Contains(string(canonical), `"inputs"`) {
				t.Fatalf("stored as %s: inputs not sent, yet stored", canonical)
			}
			_, req, err := runRequest(executor.Job{
				Operation: operations.Work{Operation: api.Operation{ID: "op-2", Action: api.ActionUpdate}, Request: canonical},
				Resource:  &operations.Resource{ID: "mr-1", Spec: specJSON},
			})
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(req.Inputs, tc.inputs) {
				t.Errorf("the executor runs with inputs %#v, want %#v", req.Inputs, tc.inputs)
			}
			names := []string{}
			for k := range req.SecretInputs {
				names = append(names, k)
			}
			if !reflect.DeepEqual(names, tc.secretInputs) {
				t.Errorf("the executor runs with secret inputs %v, want %v", names, tc.secretInputs)
			}
			var paths []string
			for _, fe := range catalog.CheckUpdate(&spec, u) {
				paths = append(paths, fe.Path)
			}
			if !reflect.DeepEqual(paths, tc.checkProblems) {
				t.Errorf("admission refuses at %v, want %v", paths, tc.checkProblems)
			}
		})
	}
}

// A fingerprint is keyed: not the bare SHA-256 a guess could be checked
// against, not the audit trail's seal of the same value, and different
// under another key or name.
func TestSecretInputFingerprint(t *testing.T) {
	key := []byte("0123456789abcdef0123456789abcdef")
	fp := SecretInputFingerprint(key, "initial_secret", "hunter2")
	m := hmac.New(sha256.New, key)
	m.Write([]byte("sas module_run secret_input fingerprint\x00initial_secret\x00hunter2"))
	if want := "hmac-sha256:" + hex.EncodeToString(m.Sum(nil)); fp != want {
		t.Fatalf("fingerprint %s, want %s", fp, want)
	}
	bare := sha256.Sum256([]byte("hunter2"))
	seal := hmac.New(sha256.New, key)
	seal.Write([]byte("secret\x00hunter2"))
	for what, other := range map[string]string{
		"the bare SHA-256":     hex.EncodeToString(bare[:]),
		"the audit seal":       hex.EncodeToString(seal.Sum(nil)),
		"another key's":        SecretInputFingerprint([]byte("another-key-another-key-another!!"), "initial_secret", "hunter2"),
		"another name's":       SecretInputFingerprint(key, "other_secret", "hunter2"),
		"another value's":      SecretInputFingerprint(key, "initial_secret", "hunter3"),
		"a shifted boundary's": SecretInputFingerprint(key, "initial_secret\x00hunter", "2"),
	} {
		if strings.TrimPrefix(fp, FingerprintPrefix) == strings.TrimPrefix(other, FingerprintPrefix) {
			t.Errorf("the fingerprint equals %s", what)
		}
	}
	if got := fingerprints(nil, map[string]string{"initial_secret": "hunter2"}); got != nil {
		t.Fatalf("without a key: %v, want none", got)
	}
}

// A run of the shipped secret-rotation module, offline: the run reports a
// keyed fingerprint of its secret input and no output derived from it; an
// update with the secret rotated and a new schedule (changed in place,
// never replaced) reports another; an update sending
// inputs {} runs without them (and so is refused: service is required).
func TestRunReportsKeyedSecretFingerprints(t *testing.T) {
	catalog, root := exampleCatalog(t)
	tf, plugins := filepath.Join(root, "bin", "terraform"), filepath.Join(root, "bin", "plugins")
	for _, p := range []string{tf, plugins} {
		if _, err := os.Stat(p); err != nil {
			t.Fatalf("%v: run `make tools`", err)
		}
	}
	key := []byte("fingerprint-key-for-the-test-0001")
	e := &Executor{Config{Catalog: catalog, StateDir: t.TempDir(), FingerprintKey: key,
		Runner: &tfrun.Runner{Terraform: tf, PluginDir: plugins, WorkRoot: t.TempDir(), Interrupt: 20 * time.Second},
		JudgePlan: func(_ context.Context, j executor.Job, _ any, p policy.Plan) (api.Decision, error) {
			for _, c := range p.ResourceChanges {
				if j.Operation.Action != api.ActionDelete && slices.Contains(c.Actions, "delete") {
					// as the shipped bundles judge it: no destroy or replace outside a delete
					return api.Decision{Violations: []api.Violation{{Rule: "module_destroy_not_allowed", Message: c.Address + " replaced"}}}, nil
				}
			}
			return api.Decision{Allow: true}, nil
		}}}
	job := func(action, request, secret string, res *operations.Resource) executor.Job {
		return executor.Job{Operation: operations.Work{Operation: api.Operation{ID: "op-" + action, Action: action}, Request: []byte(request)},
			Resource: res,
			Secrets: func(context.Context) (vault.RequestSecrets, error) {
				return vault.RequestSecrets{"secret_inputs": {"initial_secret": secret}}, nil
			}}
	}
	const first, second = "first-secret-7719", "second-secret-2291"
	create := `{"name":"rot","module":"platform/secret-rotation","version":"1.0.0","inputs":{"service":"billing"},"secret_inputs":{"initial_secret":"hmac-sha256:aa"}}`
	res, err := e.Execute(t.Context(), job(api.ActionCreate, create, first, nil))
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"initial_secret": SecretInputFingerprint(key, "initial_secret", first)}
	if got := res.Attributes["secret_input_fingerprints"]; !reflect.DeepEqual(got, want) {
		t.Fatalf("secret_input_fingerprints %v, want %v", got, want)
	}
	outs, _ := json.Marshal(res.Attributes["outputs"])
	bare := sha256.Sum256([]byte(first))
	if strings.Contains(string(outs), hex.EncodeToString(bare[:])) || strings.Contains(string(outs), first) {
		t.Fatalf("an output reveals the secret: %s", outs)
	}
	if _, ok := res.Attributes["outputs"].(map[string]any)["rotated_at"]; !ok {
		t.Fatalf("no rotated_at among the outputs: %s", outs)
	}

	run := &operations.Resource{ID: res.ResourceID, Spec: json.RawMessage(create)}
	_, rotated := stored(t, `{"inputs":{"service":"billing","rotation_days":7},"secret_inputs":{"initial_secret":"hmac-sha256:bb"}}`)
	up, err := e.Execute(t.Context(), job(api.ActionUpdate, string(rotated), second, run))
	if err != nil {
		t.Fatal(err)
	}
	if p := up.Attributes["plan"].(map[string]any); p["change"] == 0 || p["add"] != 0 || p["destroy"] != 0 {
		t.Fatalf("the new schedule: plan %v, want changes in place only", p)
	}
	want = map[string]string{"initial_secret": SecretInputFingerprint(key, "initial_secret", second)}
	if got := up.Attributes["secret_input_fingerprints"]; !reflect.DeepEqual(got, want) {
		t.Fatalf("after the rotation: secret_input_fingerprints %v, want %v", got, want)
	}

	_, cleared := stored(t, `{"inputs":{},"secret_inputs":{"initial_secret":"hmac-sha256:bb"}}`)
	_, err = e.Execute(t.Context(), job(api.ActionUpdate, string(cleared), second, run))
	if err == nil || !strings.Contains(err.Error(), "service") || !executor.IsPermanent(err) {
		t.Fatalf("an update removing every input ran: %v", err)
	}

	if _, err := e.Execute(t.Context(), job(api.ActionDelete, `{}`, "", run)); err != nil {
		t.Fatal(err)
	}
}
