package api

import (
	"fmt"
	"reflect"
	"strings"
	"testing"
)

func wantInvalid(t *testing.T, err error, want ...FieldError) {
	t.Helper()
	if len(want) == 0 {
		if err != nil {
			t.Fatalf("refused: %v", err)
		}
		return
	}
	ie, ok := err.(*InvalidRequestError)
	if !ok {
		t.Fatalf("error %v (%T), want %v", err, err, want)
	}
	if !reflect.DeepEqual(ie.Fields, want) {
		t.Errorf("field errors\n got %+v\nwant %+v", ie.Fields, want)
	}
}

// The attacker review's 300 KB input: one value is bounded (4 KiB as
// JSON), by the kinds table, before anything is stored, in a create, an
// update and a dry run's embedded request alike.
func TestModuleRunInputValueIsBounded(t *testing.T) {
	big := strings.Repeat("a", 300<<10)
	body := `{"name":"gate","module":"platform/deploy-gate","version":"1.0.0","inputs":{"release":"` + big + `"}}`
	_, err := DecodeKind(KindModuleRun, ActionCreate, []byte(body), "")
	wantInvalid(t, err, FieldError{Path: "/inputs/release", Message: "is 307202 bytes as JSON; a value may be at most 4096 bytes (4 KiB)"})
	_, err = DecodeKind(KindModuleRun, ActionUpdate, []byte(`{"inputs":{"release":"`+big+`"}}`), "/request")
	wantInvalid(t, err, FieldError{Path: "/request/inputs/release", Message: "is 307202 bytes as JSON; a value may be at most 4096 bytes (4 KiB)"})
	// Structured values count as JSON, and a value just under the bound passes.
	_, err = DecodeKind(KindModuleRun, ActionCreate, []byte(`{"name":"gate","module":"m","version":"1.0.0","inputs":{"tags":["`+strings.Repeat("b", 4096)+`"]}}`), "")
	wantInvalid(t, err, FieldError{Path: "/inputs/tags", Message: "is 4100 bytes as JSON; a value may be at most 4096 bytes (4 KiB)"})
	_, err = DecodeKind(KindModuleRun, ActionCreate, []byte(`{"name":"gate","module":"m","version":"1.0.0","inputs":{"release":"`+strings.Repeat("c", 4094)+`"}}`), "")
	wantInvalid(t, err)
}

// All inputs and secret inputs together are bounded (32 KiB as JSON); the
// refusal names the larger field.
func TestModuleRunInputsAreBoundedTogether(t *testing.T) {
	var in, sec []string
	for i := range 9 {
		in = append(in, fmt.Sprintf(`"in%d":"%s"`, i, strings.Repeat("x", 3500)))
	}
	for i := range 3 {
		sec = append(sec, fmt.Sprintf(`"s%d":"%s"`, i, strings.Repeat("y", 1000)))
	}
	body := `{"name":"gate","module":"m","version":"1.0.0","inputs":{` + strings.Join(in, ",") + `},"secret_inputs":{` + strings.Join(sec, ",") + `}}`
	_, err := DecodeKind(KindModuleRun, ActionCreate, []byte(body), "")
	wantInvalid(t, err, FieldError{Path: "/inputs", Message: "inputs and secret_inputs come to 34607 bytes as JSON; together they may be at most 32768 bytes (32 KiB)"})
	_, err = DecodeKind(KindModuleRun, ActionUpdate, []byte(`{"inputs":{`+strings.Join(in, ",")+`},"secret_inputs":{`+strings.Join(sec, ",")+`}}`), "/request")
	wantInvalid(t, err, FieldError{Path: "/request/inputs", Message: "inputs and secret_inputs come to 34607 bytes as JSON; together they may be at most 32768 bytes (32 KiB)"})
	_, err = DecodeKind(KindModuleRun, ActionCreate, []byte(`{"name":"gate","module":"m","version":"1.0.0","inputs":{`+strings.Join(in[:8], ",")+`}}`), "")
	wantInvalid(t, err)
}

// The bounds are published where clients read the table: the fields'
// descriptions (OpenAPI, provider docs), from the same constants.
func TestModuleRunInputBoundsArePublished(t *testing.T) {
	k, _ := KindByName(KindModuleRun)
	for _, action := range []string{ActionCreate, ActionUpdate} {
		for _, name := range []string{"inputs", "secret_inputs"} {
			f, ok := k.FieldAt(action, "/"+name)
			if !ok || f.MaxValueBytes != MaxModuleInputBytes {
				t.Errorf("%s %s: MaxValueBytes %d", action, name, f.MaxValueBytes)
			}
			desc := k.BodyFor(action).Schema()["properties"].(map[string]any)[name].(map[string]any)["description"].(string)
			if !strings.Contains(desc, "Each value at most 4 KiB as JSON; inputs and secret_inputs together at most 32 KiB.") {
				t.Errorf("%s %s: schema description %q does not state the bounds", action, name, desc)
			}
		}
		if l := k.BodyFor(action).SizeLimits; len(l) != 1 || l[0].MaxBytes != MaxModuleInputsBytes {
			t.Errorf("%s: size limits %+v", action, l)
		}
	}
}

// Module run names are the gateway's own: unique per environment, so one
// in sbx neither blocks nor reveals one in prod. Downstream names stay one
// namespace across environments, as the downstream system has them.
func TestModuleRunNamesArePerEnvironment(t *testing.T) {
	run := &ModuleRunRequest{Name: "ledger-window", Module: "platform/maintenance-window", Version: "1.1.0"}
	if sbx, prod := NaturalKeyIn(run, EnvSandbox), NaturalKeyIn(run, EnvProd); sbx != "sbx/ledger-window" || prod != "prod/ledger-window" {
		t.Errorf("module run keys %q, %q", sbx, prod)
	}
	ipr := &IPReservationRequest{Hostname: "web-01", DNSZone: "sbx.example.internal"}
	if NaturalKeyIn(ipr, EnvSandbox) != ipr.NaturalKey() || NaturalKeyIn(ipr, EnvProd) != "default/web-01.sbx.example.internal" {
		t.Errorf("IP reservation key %q", NaturalKeyIn(ipr, EnvProd))
	}
	app := &CalmAppRequest{Project: "p", Name: "a"}
	if NaturalKeyIn(app, EnvDev) != "p/a" {
		t.Errorf("Calm app key %q", NaturalKeyIn(app, EnvDev))
	}
	for _, env := range Environments {
		if strings.Contains(env, "/") {
			t.Errorf("environment %q holds '/': keys could collide", env)
		}
	}
	if ruleAppName.CheckValue("a/b") == "" {
		t.Error("a module run name may hold '/': keys could collide")
	}
}

func TestInvalidFieldsPrefixes(t *testing.T) {
	if InvalidFields("/request", nil) != nil {
		t.Error("no fields, yet an error")
	}
	fs := []FieldError{{Path: "/inputs/x", Message: "m"}}
	wantInvalid(t, InvalidFields("/request", fs), FieldError{Path: "/request/inputs/x", Message: "m"})
	if fs[0].Path != "/inputs/x" {
		t.Error("InvalidFields changed its argument")
	}
}
