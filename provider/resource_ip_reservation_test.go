package provider

import (
	"context"
	"fmt"
	"net"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/terraform-plugin-testing/compare"
	"github.com/hashicorp/terraform-plugin-testing/helper/resource"
	"github.com/hashicorp/terraform-plugin-testing/knownvalue"
	"github.com/hashicorp/terraform-plugin-testing/plancheck"
	"github.com/hashicorp/terraform-plugin-testing/statecheck"
	"github.com/hashicorp/terraform-plugin-testing/terraform"
	"github.com/hashicorp/terraform-plugin-testing/tfjsonpath"
	"github.com/hashicorp/terraform-plugin-testing/tfversion"

	"github.com/sas-platform/terraform-provider-sas/internal/api"
	"github.com/sas-platform/terraform-provider-sas/internal/audit"
	"github.com/sas-platform/terraform-provider-sas/internal/devstack"
	"github.com/sas-platform/terraform-provider-sas/internal/infoblox"
	siminfoblox "github.com/sas-platform/terraform-provider-sas/internal/sim/infoblox"
	"github.com/sas-platform/terraform-provider-sas/internal/vaultsetup"
	"github.com/sas-platform/terraform-provider-sas/server"
)

const sbxBundle = "fedramp_sbx_default"

func ipReservationConfig(hostname, comment string, aliases ...string) string {
	quoted := make([]string, len(aliases))
	for i, a := range aliases {
		quoted[i] = fmt.Sprintf("%q", a)
	}
	return fmt.Sprintf(`
resource "sas_ip_reservation" "test" {
  network  = "sbx-app"
  hostname = %[1]q
  dns_zone = "sbx.example.internal"
  comment  = %[2]q
  aliases  = [%[3]s]
}
`, hostname, comment, strings.Join(quoted, ", "))
}

// The whole lifecycle on Terraform 1.5.7 → provider → gateway → Vault →
// Infoblox simulator: create, import, update in place, deleted outside sas,
// re-created, destroyed — the last checked in Infoblox, not in sas.
func TestAccIPReservation_lifecycle(t *testing.T) {
	sim := env.StartInfoblox(t)
	gw := env.StartGateway(t)
	tok := env.Caller(t, vaultsetup.CallerSpec{Entity: "acc-ipr", Bundles: []string{sbxBundle}})
	const name = "sas_ip_reservation.test"
	sameIP := statecheck.CompareValue(compare.ValuesSame())
	inApp := knownvalue.StringRegexp(regexp.MustCompile(`^10\.10\.0\.\d{1,3}$`))

	resource.Test(t, resource.TestCase{
		ProtoV6ProviderFactories: testAccProtoV6ProviderFactories,
		CheckDestroy:             checkSimulatorHoldsNoHosts(sim),
		Steps: []resource.TestStep{
			{
				Config: providerConfig(gw.URL, tok) + ipReservationConfig("web-01", "first"),
				ConfigStateChecks: []statecheck.StateCheck{
					statecheck.ExpectKnownValue(name, tfjsonpath.New("id"), knownvalue.StringRegexp(regexp.MustCompile(`^ipr-`))),
					statecheck.ExpectKnownValue(name, tfjsonpath.New("ip_address"), inApp),
					statecheck.ExpectKnownValue(name, tfjsonpath.New("fqdn"), knownvalue.StringExact("web-01.sbx.example.internal")),
					statecheck.ExpectKnownValue(name, tfjsonpath.New("dns_view"), knownvalue.StringExact("default")),
					statecheck.ExpectKnownValue(name, tfjsonpath.New("ref"), knownvalue.StringRegexp(regexp.MustCompile(`^record:host/`))),
					statecheck.ExpectKnownValue(name, tfjsonpath.New("operation_id"), knownvalue.StringRegexp(regexp.MustCompile(`^op-`))),
					statecheck.ExpectKnownValue(name, tfjsonpath.New("tags"), knownvalue.MapPartial(map[string]knownvalue.Check{
						"owner":       knownvalue.StringExact("acc-ipr"),
						"bundle":      knownvalue.StringExact(sbxBundle),
						"environment": knownvalue.StringExact("sbx"),
						"request_id":  knownvalue.NotNull(),
					})),
					statecheck.ExpectKnownValue(name, tfjsonpath.New("aliases"), knownvalue.ListSizeExact(0)),
					statecheck.ExpectKnownValue(name, tfjsonpath.New("mac"), knownvalue.Null()),
					sameIP.AddStateValue(name, tfjsonpath.New("ip_address")),
				},
				Check: resource.ComposeAggregateTestCheckFunc(
					checkStateHoldsNo(tok),
					checkSimulatorHost(sim, "web-01.sbx.example.internal", "first", nil),
				),
			},
			{
				ResourceName:      name,
				ImportState:       true,
				ImportStateVerify: true,
			},
			{
				Config: providerConfig(gw.URL, tok) + ipReservationConfig("web-01", "second", "www.sbx.example.internal"),
				ConfigPlanChecks: resource.ConfigPlanChecks{PreApply: []plancheck.PlanCheck{
					plancheck.ExpectResourceAction(name, plancheck.ResourceActionUpdate),
				}},
				ConfigStateChecks: []statecheck.StateCheck{
					statecheck.ExpectKnownValue(name, tfjsonpath.New("comment"), knownvalue.StringExact("second")),
					statecheck.ExpectKnownValue(name, tfjsonpath.New("aliases"),
						knownvalue.ListExact([]knownvalue.Check{knownvalue.StringExact("www.sbx.example.internal")})),
					sameIP.AddStateValue(name, tfjsonpath.New("ip_address")),
				},
				Check: checkSimulatorHost(sim, "web-01.sbx.example.internal", "second", []string{"www.sbx.example.internal"}),
			},
			{
				// Deleted in Infoblox behind sas's back: the plan re-creates it.
				PreConfig:          func() { deleteHostOutOfBand(t, sim, "web-01.sbx.example.internal") },
				Config:             providerConfig(gw.URL, tok) + ipReservationConfig("web-01", "second", "www.sbx.example.internal"),
				PlanOnly:           true,
				ExpectNonEmptyPlan: true,
				ConfigPlanChecks: resource.ConfigPlanChecks{PostApplyPostRefresh: []plancheck.PlanCheck{
					plancheck.ExpectResourceAction(name, plancheck.ResourceActionCreate),
				}},
			},
			{
				Config: providerConfig(gw.URL, tok) + ipReservationConfig("web-01", "second", "www.sbx.example.internal"),
				ConfigPlanChecks: resource.ConfigPlanChecks{PreApply: []plancheck.PlanCheck{
					plancheck.ExpectResourceAction(name, plancheck.ResourceActionCreate),
				}},
				ConfigStateChecks: []statecheck.StateCheck{
					statecheck.ExpectKnownValue(name, tfjsonpath.New("ip_address"), inApp),
				},
				Check: checkSimulatorHost(sim, "web-01.sbx.example.internal", "second", []string{"www.sbx.example.internal"}),
			},
		},
	})
}

// Twenty reservations applied with Terraform's default parallelism get
// twenty distinct addresses, and destroy leaves Infoblox empty.
func TestAccIPReservation_count(t *testing.T) {
	sim := env.StartInfoblox(t)
	gw := env.StartGateway(t)
	tok := env.Caller(t, vaultsetup.CallerSpec{Entity: "acc-burst", Bundles: []string{sbxBundle}})
	const n = 20
	config := providerConfig(gw.URL, tok) + fmt.Sprintf(`
resource "sas_ip_reservation" "burst" {
  count    = %[1]d
  network  = "10.10.1.0/24"
  hostname = "burst-${count.index}"
  dns_zone = %[2]q
}
`, n, "sbx.example.internal")

	resource.Test(t, resource.TestCase{
		ProtoV6ProviderFactories: testAccProtoV6ProviderFactories,
		CheckDestroy:             checkSimulatorHoldsNoHosts(sim),
		Steps: []resource.TestStep{{
			Config: config,
			Check: resource.ComposeAggregateTestCheckFunc(
				checkStateHoldsNo(tok),
				func(*terraform.State) error {
					_, data, _ := net.ParseCIDR("10.10.1.0/24")
					seen := map[string]string{}
					for _, h := range sim.Hosts() {
						if len(h.IPv4Addrs) != 1 {
							return fmt.Errorf("host %s has addresses %v", h.Name, h.IPv4Addrs)
						}
						ip := h.IPv4Addrs[0]
						if !data.Contains(net.ParseIP(ip)) {
							return fmt.Errorf("host %s got %s, outside 10.10.1.0/24", h.Name, ip)
						}
						if other, dup := seen[ip]; dup {
							return fmt.Errorf("%s and %s both hold %s", other, h.Name, ip)
						}
						seen[ip] = h.Name
					}
					if len(seen) != n {
						return fmt.Errorf("want %d distinct addresses in Infoblox, got %d", n, len(seen))
					}
					return nil
				},
			),
		}},
	})
}

// A create that outlives its timeout leaves the operation id in state: the
// resource is tainted, not orphaned, and the next apply replaces it — Infoblox
// ends up with exactly one host.
func TestAccIPReservation_createTimeoutTaints(t *testing.T) {
	// Every grid call takes 3s, so the create (two calls at least) runs
	// for 6s or more, while the request itself is answered well within the
	// 2s timeout even on a loaded machine: the timeout hits the wait.
	sim := env.StartInfoblox(t, func(o *devstack.InfobloxOptions) { o.Latency = 3 * time.Second })
	gw := env.StartGateway(t)
	tok := env.Caller(t, vaultsetup.CallerSpec{Entity: "acc-slow", Bundles: []string{sbxBundle}})
	const name = "sas_ip_reservation.slow"
	config := func(timeout string) string {
		return providerConfig(gw.URL, tok) + fmt.Sprintf(`
resource "sas_ip_reservation" "slow" {
  network  = "sbx-app"
  hostname = "slow-01"
  dns_zone = "sbx.example.internal"
  timeouts {
    create = %[1]q
  }
}
`, timeout)
	}
	resource.Test(t, resource.TestCase{
		ProtoV6ProviderFactories: testAccProtoV6ProviderFactories,
		CheckDestroy:             checkSimulatorHoldsNoHosts(sim),
		Steps: []resource.TestStep{
			{
				Config:      config("2s"),
				ExpectError: wrapped(`Timed Out Waiting for IP Reservation.*operation op-.*saved in state`),
			},
			{
				Config: config("3m"),
				ConfigPlanChecks: resource.ConfigPlanChecks{PreApply: []plancheck.PlanCheck{
					plancheck.ExpectResourceAction(name, plancheck.ResourceActionDestroyBeforeCreate),
				}},
				ConfigStateChecks: []statecheck.StateCheck{
					statecheck.ExpectKnownValue(name, tfjsonpath.New("id"), knownvalue.StringRegexp(regexp.MustCompile(`^ipr-`))),
				},
				Check: func(*terraform.State) error {
					if hosts := sim.Hosts(); len(hosts) != 1 {
						return fmt.Errorf("want exactly 1 host after the tainted create was replaced, got %d", len(hosts))
					}
					return nil
				},
			},
		},
	})
}

// Values the gateway would refuse fail at validate, on their attribute.
func TestAccIPReservation_invalidValues(t *testing.T) {
	gw := env.StartGateway(t)
	tok := env.Caller(t, vaultsetup.CallerSpec{Entity: "acc-invalid", Bundles: []string{sbxBundle}})
	cases := map[string]struct {
		attrs string
		want  *regexp.Regexp
	}{
		"network not canonical": {`network = "10.10.0.7/24"` + "\n" + `hostname = "a"` + "\n" + `dns_zone = "sbx.example.internal"`,
			wrapped(`Invalid Network.*did you mean 10.10.0.0/24`)},
		"hostname uppercase": {`network = "sbx-app"` + "\n" + `hostname = "Web_01"` + "\n" + `dns_zone = "sbx.example.internal"`,
			wrapped(`hostname.*must be a DNS label`)},
		"mac": {`network = "sbx-app"` + "\n" + `hostname = "a"` + "\n" + `dns_zone = "sbx.example.internal"` + "\n" + `mac = "zz"`,
			wrapped(`mac.*must be a MAC address`)},
		"change ticket": {`network = "sbx-app"` + "\n" + `hostname = "a"` + "\n" + `dns_zone = "sbx.example.internal"` + "\n" + `change_ticket = "chg1"`,
			wrapped(`change_ticket.*must be a change ticket id`)},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			resource.Test(t, resource.TestCase{
				ProtoV6ProviderFactories: testAccProtoV6ProviderFactories,
				Steps: []resource.TestStep{{
					Config:      providerConfig(gw.URL, tok) + "resource \"sas_ip_reservation\" \"bad\" {\n" + tc.attrs + "\n}\n",
					PlanOnly:    true,
					ExpectError: tc.want,
				}},
			})
		})
	}
}

// checkSimulatorHoldsNoHosts is CheckDestroy asking Infoblox, not sas.
func checkSimulatorHoldsNoHosts(sim *siminfoblox.Server) resource.TestCheckFunc {
	return func(*terraform.State) error {
		if hosts := sim.Hosts(); len(hosts) > 0 {
			names := make([]string, len(hosts))
			for i, h := range hosts {
				names[i] = h.Name
			}
			return fmt.Errorf("Infoblox still holds %d host record(s) after destroy: %s", len(hosts), strings.Join(names, ", "))
		}
		return nil
	}
}

// checkSimulatorHost checks the host record Infoblox holds for fqdn.
func checkSimulatorHost(sim *siminfoblox.Server, fqdn, comment string, aliases []string) resource.TestCheckFunc {
	return func(s *terraform.State) error {
		for _, h := range sim.Hosts() {
			if h.Name != fqdn {
				continue
			}
			if h.Comment != comment {
				return fmt.Errorf("host %s: comment %q, want %q", fqdn, h.Comment, comment)
			}
			if strings.Join(h.Aliases, ",") != strings.Join(aliases, ",") {
				return fmt.Errorf("host %s: aliases %v, want %v", fqdn, h.Aliases, aliases)
			}
			if got := s.RootModule().Resources["sas_ip_reservation.test"].Primary.Attributes["ip_address"]; len(h.IPv4Addrs) != 1 || h.IPv4Addrs[0] != got {
				return fmt.Errorf("host %s holds %v, state says %s", fqdn, h.IPv4Addrs, got)
			}
			if h.EAs[infoblox.AttrOwner] != "acc-ipr" {
				return fmt.Errorf("host %s: owner tag %q", fqdn, h.EAs[infoblox.AttrOwner])
			}
			return nil
		}
		return fmt.Errorf("Infoblox holds no host %s", fqdn)
	}
}

// deleteHostOutOfBand deletes a host as an Infoblox admin would, behind sas's back.
func deleteHostOutOfBand(t *testing.T, sim *siminfoblox.Server, fqdn string) {
	t.Helper()
	kv, err := env.Admin().KVv2(vaultsetup.KVMount).Get(t.Context(), "sbx/infoblox")
	if err != nil {
		t.Fatal(err)
	}
	admin, err := infoblox.New(infoblox.Config{URL: sim.URL(), Credentials: infoblox.Credentials{
		Username: kv.Data["username"].(string), Password: kv.Data["password"].(string)}})
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close(t.Context())
	h, err := admin.FindHostByName(t.Context(), fqdn, "default")
	if err != nil {
		t.Fatal(err)
	}
	if err := admin.DeleteHost(t.Context(), h.Ref); err != nil {
		t.Fatal(err)
	}
}

// A network outside the bundle fails at plan, on the network attribute,
// with the bundle, rule, controls and decision id — before anything is applied.
func TestAccIPReservation_deniedAtPlan(t *testing.T) {
	sim := env.StartInfoblox(t)
	gw := env.StartGateway(t)
	tok := env.Caller(t, vaultsetup.CallerSpec{Entity: "planner", Bundles: []string{"fedramp_sbx_default"}})
	resource.Test(t, resource.TestCase{
		ProtoV6ProviderFactories: testAccProtoV6ProviderFactories,
		Steps: []resource.TestStep{{
			Config: providerConfig(gw.URL, tok) + `
resource "sas_ip_reservation" "prod" {
  network  = "10.30.0.0/24"
  hostname = "db-01"
  dns_zone = "sbx.example.internal"
}
`,
			PlanOnly:    true,
			ExpectError: wrapped(`Denied by Policy Bundle fedramp_sbx_default.*with sas_ip_reservation.prod,.*network = "10.30.0.0/24".*"10.30.0.0/24" is neither one of them nor inside one.*Rule: network_not_allowed.*Controls: AC-3, SC-7.*Decision: `),
		}},
	})
	// The denial came from the gateway's policy at plan time: the trail holds
	// the dry run's deny, and nothing was submitted.
	recs, _, err := gw.Gateway.AuditChain().Query(context.Background(), audit.Filter{Limit: 100})
	if err != nil {
		t.Fatal(err)
	}
	dryRunDenials, mutations := 0, 0
	for _, r := range recs {
		if r.Kind == api.KindIPReservation && r.Outcome == "dry-run" && r.Decision == audit.DecisionDeny &&
			slices.Contains(r.ControlIDs, "SC-7") && r.Bundle == "fedramp_sbx_default" {
			dryRunDenials++
		}
		if r.Kind == api.KindIPReservation && r.Outcome != "dry-run" {
			mutations++
		}
	}
	if dryRunDenials == 0 || mutations != 0 || len(sim.Hosts()) != 0 {
		t.Fatalf("audit trail: %d dry-run denials (want ≥ 1), %d mutation records and %d hosts (want 0): %+v", dryRunDenials, mutations, len(sim.Hosts()), recs)
	}
}

// Many reservations at Terraform's default parallelism (10), applied again
// and again — create, update every one in place, shrink, grow — in one
// provider process. Under -race (make test) any state the concurrent RPCs
// share without a lock fails the test; without -race such sharing crashed
// the provider ("concurrent map writes" in the logging path) every few
// applies and orphaned the reservations in flight.
func TestAccIPReservation_parallel(t *testing.T) {
	sim := env.StartInfoblox(t)
	gw := env.StartGateway(t, func(c *server.Config) { c.WorkersPerKind = 10 })
	tok := env.Caller(t, vaultsetup.CallerSpec{Entity: "acc-parallel", Bundles: []string{sbxBundle}})
	config := func(n int, comment string) string {
		return providerConfig(gw.URL, tok) + fmt.Sprintf(`
resource "sas_ip_reservation" "p" {
  count    = %[1]d
  network  = count.index %% 2 == 0 ? "sbx-app" : "sbx-data"
  hostname = format("par-%%03d", count.index)
  dns_zone = "sbx.example.internal"
  comment  = %[2]q
}
`, n, comment)
	}
	step := func(n int, comment string, action plancheck.ResourceActionType) resource.TestStep {
		return resource.TestStep{
			Config: config(n, comment),
			ConfigPlanChecks: resource.ConfigPlanChecks{PreApply: []plancheck.PlanCheck{
				plancheck.ExpectResourceAction("sas_ip_reservation.p[0]", action),
			}},
			Check: resource.ComposeAggregateTestCheckFunc(
				checkStateHoldsNo(tok),
				checkSimulatorHolds(sim, n, comment),
			),
		}
	}
	resource.Test(t, resource.TestCase{
		ProtoV6ProviderFactories: testAccProtoV6ProviderFactories,
		CheckDestroy:             checkSimulatorHoldsNoHosts(sim),
		Steps: []resource.TestStep{
			step(60, "first", plancheck.ResourceActionCreate),
			step(60, "second", plancheck.ResourceActionUpdate),
			step(30, "third", plancheck.ResourceActionUpdate),
			step(60, "fourth", plancheck.ResourceActionUpdate),
		},
	})
}

// checkSimulatorHolds checks Infoblox holds exactly n par-NNN hosts, each
// once, each with its own address and the comment.
func checkSimulatorHolds(sim *siminfoblox.Server, n int, comment string) resource.TestCheckFunc {
	return func(*terraform.State) error {
		names, ips := map[string]bool{}, map[string]string{}
		for _, h := range sim.Hosts() {
			if names[h.Name] {
				return fmt.Errorf("Infoblox holds %s twice", h.Name)
			}
			names[h.Name] = true
			if h.Comment != comment {
				return fmt.Errorf("host %s: comment %q, want %q", h.Name, h.Comment, comment)
			}
			for _, ip := range h.IPv4Addrs {
				if other, dup := ips[ip]; dup {
					return fmt.Errorf("%s and %s both hold %s", other, h.Name, ip)
				}
				ips[ip] = h.Name
			}
		}
		for i := 0; i < n; i++ {
			if fqdn := fmt.Sprintf("par-%03d.sbx.example.internal", i); !names[fqdn] {
				return fmt.Errorf("Infoblox holds no %s", fqdn)
			}
		}
		if len(names) != n {
			return fmt.Errorf("Infoblox holds %d hosts, want %d", len(names), n)
		}
		return nil
	}
}

// An import block (Terraform ≥ 1.5, OpenTofu) imports a reservation with a
// plan that changes nothing, when the configuration matches it.
func TestAccIPReservation_importBlock(t *testing.T) {
	sim := env.StartInfoblox(t)
	gw := env.StartGateway(t)
	tok := env.Caller(t, vaultsetup.CallerSpec{Entity: "acc-import-block", Bundles: []string{sbxBundle}})
	config := providerConfig(gw.URL, tok) + `
resource "sas_ip_reservation" "test" {
  network  = "sbx-app"
  hostname = "imp-01"
  dns_zone = "sbx.example.internal"
  comment  = "to be imported"
}
`
	resource.Test(t, resource.TestCase{
		ProtoV6ProviderFactories: testAccProtoV6ProviderFactories,
		TerraformVersionChecks:   []tfversion.TerraformVersionCheck{tfversion.SkipBelow(tfversion.Version1_5_0)}, // import blocks
		CheckDestroy:             checkSimulatorHoldsNoHosts(sim),
		Steps: []resource.TestStep{
			{Config: config},
			{Config: config, ResourceName: "sas_ip_reservation.test", ImportState: true, ImportStateKind: resource.ImportBlockWithID},
			// terraform plan -generate-config-out: with only the provider in
			// the configuration, the import block's generated resource must
			// plan no change (every written attribute reads back as written).
			{
				Config:          providerConfig(gw.URL, tok),
				ResourceName:    "sas_ip_reservation.test",
				ImportState:     true,
				ImportStateKind: resource.ImportBlockWithID,
				GenerateConfig:  true,
				ImportPlanChecks: resource.ImportPlanChecks{PreApply: []plancheck.PlanCheck{
					plancheck.ExpectResourceAction("sas_ip_reservation.generated", plancheck.ResourceActionNoop),
					plancheck.ExpectKnownValue("sas_ip_reservation.generated", tfjsonpath.New("comment"), knownvalue.StringExact("to be imported")),
				}},
			},
		},
	})
}
