package modules

import (
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite examples/modules/catalog.json with the modules' current SHA-256")

const exampleCatalog = "../../examples/modules/catalog.json"

// The shipped catalog approves exactly what examples/modules holds: a
// module edited without re-approval fails here (and would be refused at
// run time). `make docs` re-approves.
func TestExampleCatalogIsCurrent(t *testing.T) {
	raw, err := os.ReadFile(exampleCatalog)
	if err != nil {
		t.Fatal(err)
	}
	var f File
	if err := json.Unmarshal(raw, &f); err != nil {
		t.Fatal(err)
	}
	changed := false
	for i, m := range f.Modules {
		for j, v := range m.Versions {
			got, err := DirHash(filepath.Join(filepath.Dir(exampleCatalog), v.Source))
			if err != nil {
				t.Fatal(err)
			}
			if got != v.SHA256 {
				if !*update {
					t.Errorf("%s %s: source hashes to %s, catalog says %q; run `make docs` to re-approve", m.Name, v.Version, got, v.SHA256)
				}
				f.Modules[i].Versions[j].SHA256, changed = got, true
			}
		}
	}
	if *update && changed {
		out, _ := json.MarshalIndent(f, "", "  ")
		if err := os.WriteFile(exampleCatalog, append(out, '\n'), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	c, err := Load(filepath.Dir(exampleCatalog))
	if err != nil {
		t.Fatal(err)
	}
	v, err := c.Version("platform/secret-rotation", "1.0.0")
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]Input{
		"service":        {Name: "service", Type: "string", Required: true},
		"rotation_days":  {Name: "rotation_days", Type: "number"},
		"initial_secret": {Name: "initial_secret", Type: "string", Required: true, Secret: true},
	}
	for _, in := range v.Inputs {
		w, ok := want[in.Name]
		if !ok || in.Type != w.Type || in.Required != w.Required || in.Secret != w.Secret || in.Description == "" {
			t.Errorf("input %+v, want %+v", in, w)
		}
		delete(want, in.Name)
	}
	if len(want) != 0 {
		t.Errorf("inputs not read: %v", want)
	}
}

// A source changed after approval is refused at load and at run time.
func TestTamperedModuleRefused(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "m", "1.0.0")
	if err := os.MkdirAll(src, 0o755); err != nil {
		t.Fatal(err)
	}
	write := func(body string) {
		if err := os.WriteFile(filepath.Join(src, "main.tf"), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write(`variable "name" { type = string }` + "\n")
	sum, err := DirHash(src)
	if err != nil {
		t.Fatal(err)
	}
	cat, _ := json.Marshal(File{Modules: []FileModule{{Name: "m", Versions: []FileVersion{{Version: "1.0.0", Source: "m/1.0.0", SHA256: sum}}}}})
	if err := os.WriteFile(filepath.Join(dir, CatalogFile), cat, 0o644); err != nil {
		t.Fatal(err)
	}
	c, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	v, _ := c.Version("m", "1.0.0")
	write(`variable "name" { type = string }` + "\n" + `resource "terraform_data" "x" {}` + "\n")
	if err := v.Verify(); err == nil || !strings.Contains(err.Error(), "approved") {
		t.Fatalf("tampered source: %v", err)
	}
	if _, err := Load(dir); err == nil {
		t.Fatal("a catalog whose source changed loaded")
	}
	if _, err := c.Version("m", "2.0.0"); err == nil || !strings.Contains(err.Error(), "approved: 1.0.0") {
		t.Fatalf("unknown version: %v", err)
	}
}

func TestCheckInputs(t *testing.T) {
	c, err := Load(filepath.Dir(exampleCatalog))
	if err != nil {
		t.Fatal(err)
	}
	v, _ := c.Version("platform/secret-rotation", "1.0.0")
	if p := v.CheckInputs(map[string]any{"service": "web", "rotation_days": float64(30)}, map[string]string{"initial_secret": "x"}); len(p) != 0 {
		t.Fatalf("valid inputs refused: %v", p)
	}
	p := v.CheckInputs(map[string]any{"initial_secret": "clear!", "colour": "red", "rotation_days": "thirty"}, map[string]string{"service": "web"})
	for _, name := range []string{"initial_secret", "colour", "rotation_days", "service"} {
		if p[name] == "" {
			t.Errorf("no problem reported for %s: %v", name, p)
		}
	}
	if strings.Contains(p["initial_secret"], "clear!") {
		t.Error("a problem repeats a secret's value")
	}
	if p := v.CheckInputs(nil, nil); p["service"] == "" || p["initial_secret"] == "" {
		t.Errorf("missing required inputs not reported: %v", p)
	}
}
