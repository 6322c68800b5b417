package server_test

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/sas-platform/terraform-provider-sas/internal/api"
	"github.com/sas-platform/terraform-provider-sas/internal/testenv"
	"github.com/sas-platform/terraform-provider-sas/internal/vaultsetup"
	"github.com/sas-platform/terraform-provider-sas/server"
)

// member is one "key": value of a generated JSON object, kept as text so a
// body can hold what a map cannot: duplicate keys, 2.0 and 5e1.
type member struct{ key, value string }

func object(ms []member) string {
	parts := make([]string, len(ms))
	for i, m := range ms {
		k, _ := json.Marshal(m.key)
		parts[i] = string(k) + ":" + m.value
	}
	return "{" + strings.Join(parts, ",") + "}"
}

// Bases the generator mutates: an IP reservation and a Calm app, both of
// which really create (in the simulators) once allowed — both go through
// the same decoder and policy.
func dryRunBase(kind string, i int) []member {
	switch kind {
	case api.KindCalmApp:
		return []member{{"name", fmt.Sprintf(`"app-%d"`, i)}, {"project", `"sas-sbx"`}, {"blueprint", `"linux-vm-sandbox"`}, {"network", `"sbx-app"`},
			{"size", `{"vcpus":1,"memory_gib":2,"disk_gib":20}`}}
	default:
		return []member{{"network", `"sbx-app"`}, {"hostname", fmt.Sprintf(`"gen-%d"`, i)}, {"dns_zone", `"sbx.example.internal"`}}
	}
}

var (
	numberForms = []string{"1", "2", "2.0", "5e1", "1e0", "0", "-1", "64", "65", "1.5", "1e400", "18446744073709551616", `"2"`, "true", "null", "[]", "{}"}
	stringForms = []string{`""`, `"sbx-app"`, `"dev-app"`, `"prod-app"`, `"10.10.0.0/24"`, `"10.10.0.7/24"`, `"::ffff:10.10.0.0/120"`,
		`"::ffff:a0a:0/120"`, `"10.20.0.0/24"`, `"linux-vm-prod"`, `"linux-vm-dev"`, `"web_01"`, `"WEB-01"`, `"a\u001bb"`, `"\u202ex"`,
		`"` + strings.Repeat("a", 300) + `"`, `"CHG0012345"`, `"dev.example.internal"`, `"00:50:56:aa:bb:cc"`, `7`, `null`, `["sbx-app"]`}
)

// policyForms are well-formed values the bundle may or may not allow.
var policyForms = map[string][]string{
	"network":   {`"sbx-app"`, `"sbx-data"`, `"dev-app"`, `"prod-app"`, `"10.10.0.0/24"`, `"10.20.0.0/24"`, `"10.99.0.0/24"`},
	"dns_zone":  {`"sbx.example.internal"`, `"dev.example.internal"`, `"prod.example.internal"`},
	"blueprint": {`"linux-vm-sandbox"`, `"web-stack-sandbox"`, `"linux-vm-dev"`, `"linux-vm-prod"`},
	"size":      {`{"vcpus":1,"memory_gib":2,"disk_gib":20}`, `{"vcpus":2,"memory_gib":4,"disk_gib":40}`, `{"vcpus":8,"memory_gib":64,"disk_gib":900}`},
}

// mutate changes a base body: often only in well-formed values the policy
// judges, otherwise in 1–3 random ways that the schema may refuse.
func mutate(r *rand.Rand, ms []member) string {
	ms = slices.Clone(ms)
	if r.IntN(2) == 0 {
		for i, m := range ms {
			if forms, ok := policyForms[m.key]; ok && r.IntN(2) == 0 {
				ms[i].value = forms[r.IntN(len(forms))]
			}
		}
		return object(ms)
	}
	for range 1 + r.IntN(3) {
		switch r.IntN(7) {
		case 0: // another number form inside size
			if i := slices.IndexFunc(ms, func(m member) bool { return m.key == "size" }); i >= 0 {
				f := func() string { return numberForms[r.IntN(len(numberForms))] }
				ms[i].value = fmt.Sprintf(`{"vcpus":%s,"memory_gib":%s,"disk_gib":%s}`, f(), f(), f())
			}
		case 1: // another value for an existing field
			if len(ms) > 0 {
				ms[r.IntN(len(ms))].value = stringForms[r.IntN(len(stringForms))]
			}
		case 2: // an unknown field
			ms = append(ms, member{fmt.Sprintf("x_%d", r.IntN(3)), stringForms[r.IntN(len(stringForms))]})
		case 3: // a duplicate key with another value
			if len(ms) > 0 {
				m := ms[r.IntN(len(ms))]
				ms = append(ms, member{m.key, stringForms[r.IntN(len(stringForms))]})
			}
		case 4: // a field dropped
			if len(ms) > 0 {
				i := r.IntN(len(ms))
				ms = slices.Delete(ms, i, i+1)
			}
		case 5: // optional fields the policy judges
			ms = append(ms, []member{{"comment", stringForms[r.IntN(len(stringForms))]}, {"change_ticket", `"CHG0012345"`},
				{"aliases", `["a.sbx.example.internal"]`}, {"mac", `"00:50:56:aa:bb:cc"`}, {"variables", `{"A":"1"}`}}[r.IntN(5)])
		case 6: // a value nested too deep or of the wrong shape
			if len(ms) > 0 {
				ms[r.IntN(len(ms))].value = strings.Repeat("[", 9) + strings.Repeat("]", 9)
			}
		}
	}
	return object(ms)
}

// verdict is what the gateway made of a body: "invalid" with the field
// paths named, "deny" with the rules, or "allow".
type verdict struct {
	class  string
	detail []string
}

func (v verdict) String() string { return v.class + " " + strings.Join(v.detail, ",") }

func invalidPaths(p api.Problem, prefix string) []string {
	var out []string
	for _, f := range p.InvalidParams {
		out = append(out, strings.TrimPrefix(f.Path, prefix)+": "+f.Message)
	}
	slices.Sort(out)
	return out
}

func violationRules(vs []api.Violation) []string {
	var out []string
	for _, v := range vs {
		out = append(out, v.Rule+"@"+v.Path)
	}
	slices.Sort(out)
	return out
}

// dryRunVersusMutation sends body as a dry run and as the real create and
// reports both verdicts.
func dryRunVersusMutation(t *testing.T, gw *testenv.Gateway, tok, kind, body string) (dry, real verdict) {
	t.Helper()
	d := do(t, gw, call{method: "POST", path: "/v1/decisions", token: tok, bundle: sbx, env: "sbx",
		body: `{"kind":"` + kind + `","action":"create","request":` + body + `}`})
	switch {
	case d.status == http.StatusUnprocessableEntity:
		dry = verdict{"invalid", invalidPaths(d.problem, "/request")}
	case d.status == http.StatusOK:
		var dec api.Decision
		if err := json.Unmarshal(d.body, &dec); err != nil {
			t.Fatal(err)
		}
		dry = verdict{"allow", nil}
		if !dec.Allow {
			dry = verdict{"deny", violationRules(dec.Violations)}
		}
	default:
		dry = verdict{fmt.Sprintf("status %d %s", d.status, d.problem.Type), nil}
	}
	m := do(t, gw, call{method: "POST", path: "/v1/" + api.KindPaths[kind], token: tok, bundle: sbx, env: "sbx", body: body})
	switch {
	case m.status == http.StatusUnprocessableEntity:
		real = verdict{"invalid", invalidPaths(m.problem, "")}
	case m.status == http.StatusForbidden && m.problem.Type == api.ProblemPolicyDenied:
		real = verdict{"deny", violationRules(m.problem.Violations)}
	case m.status == http.StatusAccepted || m.status == http.StatusOK || m.status == http.StatusNotImplemented ||
		(m.status == http.StatusConflict && m.problem.Type == api.ProblemNaturalKeyConflict):
		real = verdict{"allow", nil} // allowed by policy; what became of it is not the dry run's question
	default:
		real = verdict{fmt.Sprintf("status %d %s", m.status, m.problem.Type), nil}
	}
	return dry, real
}

// dryRunGateway is a gateway whose per-identity limit does not get in the
// way of hundreds of requests in a row.
func dryRunGateway(t testing.TB) *testenv.Gateway {
	env.StartInfoblox(t)
	env.StartCalm(t)
	return env.StartGateway(t, func(c *server.Config) { c.RateLimit, c.RateBurst = 1e6, 1e6 })
}

// The dry run and the real create agree on any body; `go test -fuzz
// FuzzDryRunAgreesWithMutation ./server` searches further than the seeds.
func FuzzDryRunAgreesWithMutation(f *testing.F) {
	for _, seed := range []string{
		`{"name":"a","project":"sas-sbx","blueprint":"linux-vm-sandbox","network":"sbx-app","size":{"vcpus":2.0,"memory_gib":2,"disk_gib":20}}`,
		`{"name":"a","project":"sas-sbx","blueprint":"linux-vm-sandbox","network":"sbx-app","size":{"vcpus":5e1,"memory_gib":2,"disk_gib":20}}`,
		`{"name":"a","name":"b","project":"sas-sbx","blueprint":"linux-vm-sandbox","network":"sbx-app","size":{"vcpus":1,"memory_gib":2,"disk_gib":20}}`,
		`{"name":"a","project":"sas-sbx","blueprint":"linux-vm-sandbox","network":"::ffff:10.10.0.0/120","size":{"vcpus":1,"memory_gib":2,"disk_gib":20},"extra":1}`,
		`{"name":"a","project":"sas-sbx","blueprint":"linux-vm-sandbox","network":"sbx-app","size":{"vcpus":1,"memory_gib":2,"disk_gib":20}}`,
		`{"name":"a","project":"sas-sbx","blueprint":"linux-vm-dev","network":"dev-app","size":{"vcpus":1,"memory_gib":2,"disk_gib":20}}`,
		`[[[[[[[[[]]]]]]]]]`,
	} {
		f.Add(seed)
	}
	gw := dryRunGateway(f)
	tok := env.Caller(f, vaultsetup.CallerSpec{Entity: "fuzzer", Bundles: []string{sbx}})
	f.Fuzz(func(t *testing.T, body string) {
		dry, real := dryRunVersusMutation(t, gw, tok, api.KindCalmApp, body)
		if !json.Valid([]byte(body)) {
			// Not JSON: the dry run's envelope cannot hold it, so only
			// the verdict (not the field paths) can be compared.
			dry.detail, real.detail = nil, nil
		}
		if dry.String() != real.String() {
			t.Fatalf("body %s:\n dry run: %s\n create:  %s", body, dry, real)
		}
	})
}
