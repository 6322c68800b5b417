package tfrun

import (
	"bytes"
	"encoding/json"
	"fmt"

	tfjson "github.com/hashicorp/terraform-json"
)

// sensitiveMark stands for a value the plan marks sensitive, as in
// Terraform's own human-readable output.
const sensitiveMark = "(sensitive value)"

// markedValues pairs each value key of Terraform's JSON formats with the
// key of its sensitivity markers: a resource change's before and after,
// a state resource's values, an action's config.
var markedValues = map[string]string{
	"before":        "before_sensitive",
	"after":         "after_sensitive",
	"values":        "sensitive_values",
	"config_values": "config_sensitive",
}

// maskPlan turns `terraform show -json`'s output into the plan sas keeps:
//   - the variables' values are removed (the caller has the inputs it
//     passed; the plan need not carry them, secret or not);
//   - every value the plan itself marks sensitive (before_sensitive,
//     after_sensitive, sensitive_values, config_sensitive, and an output's
//     or variable's "sensitive": true) is replaced by "(sensitive value)",
//     whatever it holds;
//   - every remaining string (and key) has the run's secrets redacted, for
//     what a module unmarked with nonsensitive().
func maskPlan(raw []byte, r *redactor) (*tfjson.Plan, error) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var doc map[string]any
	if err := dec.Decode(&doc); err != nil {
		return nil, fmt.Errorf("terraform show -json: %w", err)
	}
	if vars, ok := doc["variables"].(map[string]any); ok {
		for k := range vars {
			vars[k] = map[string]any{}
		}
	}
	maskMarked(doc)
	b, err := json.Marshal(redactStrings(doc, r))
	if err != nil {
		return nil, err
	}
	var p tfjson.Plan
	p.UseJSONNumber(true)
	if err := json.Unmarshal(b, &p); err != nil {
		return nil, fmt.Errorf("terraform show -json: %w", err)
	}
	return &p, nil
}

// maskMarked masks, anywhere in a JSON document, the values their
// sibling markers call sensitive.
func maskMarked(n any) {
	switch n := n.(type) {
	case map[string]any:
		for valueKey, markerKey := range markedValues {
			if marks, ok := n[markerKey]; ok {
				if v, ok := n[valueKey]; ok {
					n[valueKey] = applyMarks(v, marks)
				}
			}
		}
		if s, _ := n["sensitive"].(bool); s {
			for _, k := range []string{"value", "default"} {
				if _, ok := n[k]; ok {
					n[k] = sensitiveMark
				}
			}
		}
		for _, c := range n {
			maskMarked(c)
		}
	case []any:
		for _, c := range n {
			maskMarked(c)
		}
	}
}

// applyMarks masks v where marks (true, or an object or array of marks
// shaped like v) says it is sensitive.
func applyMarks(v, marks any) any {
	switch m := marks.(type) {
	case bool:
		if m {
			return sensitiveMark
		}
	case map[string]any:
		if vm, ok := v.(map[string]any); ok {
			for k, mk := range m {
				if c, ok := vm[k]; ok {
					vm[k] = applyMarks(c, mk)
				}
			}
		}
	case []any:
		if vl, ok := v.([]any); ok {
			for i := range vl {
				if i < len(m) {
					vl[i] = applyMarks(vl[i], m[i])
				}
			}
		}
	}
	return v
}

// redactStrings redacts the secrets from every string, key and number of
// a JSON document (a number that held a secret becomes a redacted string).
func redactStrings(n any, r *redactor) any {
	switch n := n.(type) {
	case string:
		return r.clean(n)
	case json.Number:
		if c := r.clean(string(n)); c != string(n) {
			return c
		}
		return n
	case map[string]any:
		out := make(map[string]any, len(n))
		for k, v := range n {
			out[r.clean(k)] = redactStrings(v, r)
		}
		return out
	case []any:
		for i := range n {
			n[i] = redactStrings(n[i], r)
		}
		return n
	}
	return n
}
