package provider

import (
	"fmt"
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/hashicorp/terraform-plugin-framework/providerserver"
	"github.com/hashicorp/terraform-plugin-go/tfprotov6"
	"github.com/hashicorp/terraform-plugin-testing/helper/resource"
	"github.com/hashicorp/terraform-plugin-testing/terraform"

	"github.com/sas-platform/terraform-provider-sas/internal/devvault"
	"github.com/sas-platform/terraform-provider-sas/internal/testenv"
)

// env is this package's one real Vault; each test starts its own gateway.
var env *testenv.Env

func TestMain(m *testing.M) {
	// Acceptance tests run the Terraform CLI that `make tools` built, never
	// one found on PATH and never a download.
	if os.Getenv("TF_ACC_TERRAFORM_PATH") == "" {
		tf, err := devvault.FindRepoTool("terraform")
		if err == nil {
			_, err = os.Stat(tf)
		}
		if err != nil {
			fmt.Fprintf(os.Stderr, "provider tests need ./bin/terraform (run `make tools`): %v\n", err)
			os.Exit(1)
		}
		os.Setenv("TF_ACC_TERRAFORM_PATH", tf)
	}
	os.Setenv("CHECKPOINT_DISABLE", "1")
	// A CLI config that does not exist only adds a warning to every run.
	if f := os.Getenv("TF_CLI_CONFIG_FILE"); f != "" {
		if _, err := os.Stat(f); err != nil {
			os.Unsetenv("TF_CLI_CONFIG_FILE")
		}
	}
	testenv.Main(m, &env)
}

// testAccProtoV6ProviderFactories serves the provider in-process.
var testAccProtoV6ProviderFactories = map[string]func() (tfprotov6.ProviderServer, error){
	"sas": providerserver.NewProtocol6WithError(New("test")()),
}

// providerConfig is a provider block pointing at a test gateway.
func providerConfig(address, token string) string {
	return fmt.Sprintf(`
provider "sas" {
  address       = %[1]q
  token         = %[2]q
  policy_bundle = "fedramp_sbx_default"
  environment   = "sbx"
}
`, address, token)
}

// wrapped matches a diagnostic however Terraform wraps its lines: every
// space in pattern matches any run of whitespace.
func wrapped(pattern string) *regexp.Regexp {
	return regexp.MustCompile(`(?s)` + strings.ReplaceAll(pattern, " ", `\s+`))
}

// checkStateHoldsNo fails if any attribute in state contains secret.
func checkStateHoldsNo(secret string) resource.TestCheckFunc {
	return func(s *terraform.State) error {
		for _, m := range s.Modules {
			for name, rs := range m.Resources {
				for k, v := range rs.Primary.Attributes {
					if strings.Contains(v, secret) {
						return fmt.Errorf("%s.%s holds the Vault token in state", name, k)
					}
				}
			}
		}
		return nil
	}
}
