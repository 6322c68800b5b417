// Command terraform-provider-sas serves the sas Terraform provider.
package main

import (
	"context"
	"flag"
	"log"

	"github.com/hashicorp/terraform-plugin-framework/providerserver"

	"github.com/sas-platform/terraform-provider-sas/provider"
)

// Run "go generate" to regenerate docs/ from the schema, examples/ and templates/.
//go:generate make docs

// version is set at link time by the GNUmakefile (-ldflags "-X main.version=…").
var version = "dev"

func main() {
	var debug bool
	flag.BoolVar(&debug, "debug", false, "set to true to run the provider with support for debuggers like delve")
	flag.Parse()

	err := providerserver.Serve(context.Background(), provider.New(version), providerserver.ServeOpts{
		Address: "registry.terraform.io/sas-platform/sas",
		Debug:   debug,
	})
	if err != nil {
		log.Fatal(err.Error())
	}
}
