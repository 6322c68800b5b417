package tfrun

import (
	"encoding/json"
	"strings"
	"testing"
)

// The plan kept for the policy holds no variable value and nothing the
// plan marks sensitive — masked by the plan's own markers, values sas does
// not know included — and no known secret in any other string.
func TestMaskPlanByItsOwnMarkers(t *testing.T) {
	const raw = `{
  "format_version": "1.2", "terraform_version": "1.5.7",
  "variables": {"service": {"value": "billing-input"}, "token": {"value": "known-secret-token"}},
  "planned_values": {
    "outputs": {"pw": {"sensitive": true, "value": "unknown-derived-1"}, "id": {"sensitive": false, "value": "visible-id"}},
    "root_module": {"resources": [{"address": "terraform_data.x", "mode": "managed", "type": "terraform_data", "name": "x",
      "provider_name": "terraform.io/builtin/terraform", "schema_version": 0,
      "values": {"input": {"user": "visible-user", "password": "unknown-derived-2", "list": ["visible-0", "unknown-derived-3"]}},
      "sensitive_values": {"input": {"password": true, "list": [false, true]}}}]}
  },
  "resource_changes": [{"address": "terraform_data.x", "mode": "managed", "type": "terraform_data", "name": "x",
    "provider_name": "terraform.io/builtin/terraform",
    "change": {"actions": ["update"],
      "before": {"input": "unknown-derived-4", "note": "was known-secret-token"},
      "after": {"input": "unknown-derived-5", "note": "visible-note"},
      "after_unknown": {}, "before_sensitive": {"input": true}, "after_sensitive": {"input": true}}}],
  "output_changes": {"pw": {"actions": ["create"], "before": null, "after": "unknown-derived-6", "after_unknown": false,
    "before_sensitive": false, "after_sensitive": true}},
  "prior_state": {"format_version": "1.0", "terraform_version": "1.5.7", "values": {
    "outputs": {"pw": {"sensitive": true, "value": "unknown-derived-7"}}, "root_module": {}}},
  "configuration": {"root_module": {"variables": {"token": {"sensitive": true, "default": "unknown-derived-8"}}}}
}`
	p, err := maskPlan([]byte(raw), newRedactor([]string{"known-secret-token"}))
	if err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(p)
	if err != nil {
		t.Fatal(err)
	}
	got := string(b)
	for _, gone := range []string{"billing-input", "known-secret-token", "unknown-derived"} {
		if strings.Contains(got, gone) {
			t.Errorf("%q is in the kept plan: %s", gone, got)
		}
	}
	for _, kept := range []string{"visible-id", "visible-user", "visible-0", "visible-note", `"terraform_data.x"`, sensitiveMark, redactedMark} {
		if !strings.Contains(got, kept) {
			t.Errorf("%q is not in the kept plan: %s", kept, got)
		}
	}
	if len(p.ResourceChanges) != 1 || !p.ResourceChanges[0].Change.Actions.Update() || p.Variables["service"] == nil {
		t.Errorf("plan structure lost: %s", got)
	}
}
