package policyset

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/sas-platform/terraform-provider-sas/internal/policy"
)

var update = flag.Bool("update", false, "rewrite examples/policy-sets from the bundles")

const setsDir = "../../examples/policy-sets"

func generated(t *testing.T) map[string][]byte {
	t.Helper()
	e, err := policy.Load(context.Background(), policy.Options{Dir: "../../examples/bundles"})
	if err != nil {
		t.Fatal(err)
	}
	files, err := Files(e.Bundles())
	if err != nil {
		t.Fatal(err)
	}
	return files
}

// examples/policy-sets is exactly what the bundles generate.
func TestPolicySetsAreCurrent(t *testing.T) {
	files := generated(t)
	if *update {
		if err := Write(setsDir, files); err != nil {
			t.Fatal(err)
		}
	}
	onDisk := map[string]bool{}
	_ = filepath.WalkDir(setsDir, func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			rel, _ := filepath.Rel(setsDir, p)
			onDisk[rel] = true
		}
		return nil
	})
	for p, want := range files {
		got, err := os.ReadFile(filepath.Join(setsDir, p))
		if err != nil || !bytes.Equal(got, want) {
			t.Errorf("%s is stale or missing; run `make docs`", p)
		}
		delete(onDisk, p)
	}
	for p := range onDisk {
		t.Errorf("%s is not generated from any bundle; run `make docs`", p)
	}
}

// Every OPA set compiles, allows a plan within its bundle and denies one
// outside it (unit plans; real Terraform plans: provider's TestAccPolicySets).
func TestOPASetsDecide(t *testing.T) {
	files := generated(t)
	plan := func(env, network, zone string) []byte {
		return []byte(`{"configuration":{"provider_config":{"sas":{"expressions":{"environment":{"constant_value":"` + env + `"}}}}},
			"resource_changes":[{"address":"sas_ip_reservation.x","type":"sas_ip_reservation",
			"change":{"actions":["create"],"after":{"network":"` + network + `","dns_zone":"` + zone + `","aliases":[]}}}]}`)
	}
	for name, c := range map[string]struct {
		bundle, env, network, zone string
		deny                       string // "" = allowed
	}{
		"sbx allowed":          {"fedramp_sbx_default", "sbx", "sbx-app", "sbx.example.internal", ""},
		"sbx cidr inside":      {"fedramp_sbx_default", "sbx", "10.10.0.0/25", "sbx.example.internal", ""},
		"sbx prod network":     {"fedramp_sbx_default", "sbx", "10.30.0.0/24", "sbx.example.internal", "is neither one of them nor inside one"},
		"sbx prod environment": {"fedramp_sbx_default", "prod", "sbx-app", "sbx.example.internal", "allows environments"},
		"prod sbx zone":        {"fedramp_prod_restricted", "prod", "prod-app", "sbx.example.internal", "DNS zone"},
	} {
		t.Run(name, func(t *testing.T) {
			deny, err := DenyOPA(context.Background(), string(files[filepath.Join(c.bundle, "opa", "sas.rego")]), plan(c.env, c.network, c.zone))
			if err != nil {
				t.Fatal(err)
			}
			if (c.deny == "") != (len(deny) == 0) || (c.deny != "" && !strings.Contains(strings.Join(deny, "\n"), c.deny)) {
				t.Fatalf("deny = %q; want %q", deny, c.deny)
			}
		})
	}
}

// The OPA sets govern Calm apps' profiles as the gateway does: a profile
// the bundle does not declare for the blueprint (none named means Default)
// is denied, and the profile's VMs times each VM's size stay within the
// per-app totals.
func TestOPASetsGovernCalmProfiles(t *testing.T) {
	files := generated(t)
	plan := func(env, blueprint, profile string, vcpus, mem, disk int) []byte {
		after := fmt.Sprintf(`{"network":"%s-app","blueprint":%q,"size":{"vcpus":%d,"memory_gib":%d,"disk_gib":%d}`, env, blueprint, vcpus, mem, disk)
		if profile != "" {
			after += fmt.Sprintf(`,"profile":%q`, profile)
		}
		after += "}"
		return []byte(`{"configuration":{"provider_config":{"sas":{"expressions":{"environment":{"constant_value":"` + env + `"}}}}},
			"resource_changes":[{"address":"sas_calm_app.x","type":"sas_calm_app","change":{"actions":["create"],"after":` + after + `}}]}`)
	}
	for name, c := range map[string]struct {
		bundle, env, blueprint, profile string
		vcpus, mem, disk                int
		deny                            string // "" = allowed
	}{
		"sbx default unnamed":     {"fedramp_sbx_default", "sbx", "linux-vm-sandbox", "", 2, 4, 50, ""},
		"sbx default named":       {"fedramp_sbx_default", "sbx", "web-stack-sandbox", "Default", 2, 4, 40, ""},
		"sbx undeclared profile":  {"fedramp_sbx_default", "sbx", "linux-vm-sandbox", "HA", 1, 2, 20, `allows blueprint linux-vm-sandbox with profiles ["Default"], not "HA"`},
		"sbx two VMs over disk":   {"fedramp_sbx_default", "sbx", "web-stack-sandbox", "", 2, 4, 50, "runs 2 VMs, so size.disk_gib 50 is 100 in all, above bundle fedramp_sbx_default's limit of 80 per app"},
		"dev HA within totals":    {"fedramp_dev_default", "dev", "postgres-dev", "HA", 4, 16, 300, ""},
		"dev HA over vcpus":       {"fedramp_dev_default", "dev", "postgres-dev", "HA", 6, 16, 300, "size.vcpus 6 is 18 in all"},
		"prod HA at three VMs":    {"fedramp_prod_restricted", "prod", "postgres-ha-prod", "HA", 8, 32, 600, ""},
		"prod pool at VM maximum": {"fedramp_prod_restricted", "prod", "postgres-ha-prod", "", 16, 64, 1000, "size.memory_gib 64 is 192 in all"},
	} {
		t.Run(name, func(t *testing.T) {
			deny, err := DenyOPA(context.Background(), string(files[filepath.Join(c.bundle, "opa", "sas.rego")]), plan(c.env, c.blueprint, c.profile, c.vcpus, c.mem, c.disk))
			if err != nil {
				t.Fatal(err)
			}
			if (c.deny == "") != (len(deny) == 0) || (c.deny != "" && !strings.Contains(strings.Join(deny, "\n"), c.deny)) {
				t.Fatalf("deny = %q; want %q", deny, c.deny)
			}
		})
	}
}

// No Sentinel binary is available here, so the Sentinel sets are checked
// for shape: every file sentinel.hcl and the tests name exists, the policy
// imports tfplan/v2 and has a main rule, and every bracket is closed.
func TestSentinelSetsShape(t *testing.T) {
	files := generated(t)
	source := regexp.MustCompile(`source\s*=\s*"([^"]+)"`)
	for p, b := range files {
		if !strings.Contains(p, "sentinel") {
			continue
		}
		s := string(b)
		for _, m := range source.FindAllStringSubmatch(s, -1) {
			if _, ok := files[filepath.Join(filepath.Dir(p), m[1])]; !ok {
				t.Errorf("%s names %s, which is not generated", p, m[1])
			}
		}
		if strings.HasSuffix(p, "sas.sentinel") && (!strings.Contains(s, `import "tfplan/v2" as tfplan`) || !strings.Contains(s, "main = rule {")) {
			t.Errorf("%s: no tfplan/v2 import or main rule", p)
		}
		depth := map[rune]int{}
		inString := false
		for _, r := range s {
			switch {
			case r == '"':
				inString = !inString
			case inString:
			case r == '{' || r == '[' || r == '(':
				depth[r]++
			case r == '}':
				depth['{']--
			case r == ']':
				depth['[']--
			case r == ')':
				depth['(']--
			}
		}
		for open, d := range depth {
			if d != 0 {
				t.Errorf("%s: unbalanced %q (%d)", p, open, d)
			}
		}
	}
}
