package server_test

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"testing"
)

var update = flag.Bool("update", false, "rewrite docs/gateway/openapi.json from the route table")

// docs/gateway/openapi.json is the document the gateway serves; this keeps
// the published copy identical to the code.
func TestOpenAPIDocumentIsPublished(t *testing.T) {
	gw := env.StartGateway(t)
	a := do(t, gw, call{method: "GET", path: "/v1/openapi.json"})
	var v any
	if err := json.Unmarshal(a.body, &v); err != nil {
		t.Fatal(err)
	}
	want, _ := json.MarshalIndent(v, "", "  ")
	want = append(want, '\n')
	const path = "../docs/gateway/openapi.json"
	if *update {
		if err := os.WriteFile(path, want, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	got, err := os.ReadFile(path)
	if err != nil || !bytes.Equal(got, want) {
		t.Fatalf("%s is stale or missing (%v); run `make docs`", path, err)
	}
}

// Every field of every kind's request bodies carries its constraint from
// the kinds table, and no body admits unknown members.
func TestOpenAPICarriesEveryFieldConstraint(t *testing.T) {
	gw := env.StartGateway(t)
	a := do(t, gw, call{method: "GET", path: "/v1/openapi.json"})
	var doc struct {
		Components struct {
			Schemas map[string]map[string]any `json:"schemas"`
		} `json:"components"`
	}
	if err := json.Unmarshal(a.body, &doc); err != nil {
		t.Fatal(err)
	}
	var check func(where string, s map[string]any)
	check = func(where string, s map[string]any) {
		switch s["type"] {
		case "object":
			if props, ok := s["properties"].(map[string]any); ok {
				if s["additionalProperties"] != false {
					t.Errorf("%s admits unknown members", where)
				}
				for name, p := range props {
					check(where+"/"+name, p.(map[string]any))
				}
			}
		case "string":
			if s["pattern"] == nil && s["maxLength"] == nil && s["enum"] == nil {
				t.Errorf("%s: a string without pattern, maxLength or enum", where)
			}
		case "integer":
			if s["minimum"] == nil || s["maximum"] == nil {
				t.Errorf("%s: an integer without bounds", where)
			}
		case "array":
			check(where+"/items", s["items"].(map[string]any))
		}
	}
	for _, name := range []string{"IPReservationRequest", "IPReservationUpdate", "DeleteRequest", "CalmAppRequest", "ModuleRunRequest"} {
		s, ok := doc.Components.Schemas[name]
		if !ok {
			t.Fatalf("no schema %s", name)
		}
		check(name, s)
	}
	if p := doc.Components.Schemas["IPReservationRequest"]["properties"].(map[string]any)["hostname"].(map[string]any); p["pattern"] == nil || p["description"] == "" {
		t.Errorf("hostname: %v", p)
	}
}
