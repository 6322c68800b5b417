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
