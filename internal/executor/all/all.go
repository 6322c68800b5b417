// Package all binds each kind of the kinds table (internal/api) to its
// executor package: the one place a new kind's executor is added.
package all

import (
	"github.com/sas-platform/terraform-provider-sas/internal/api"
	"github.com/sas-platform/terraform-provider-sas/internal/executor"
	"github.com/sas-platform/terraform-provider-sas/internal/executor/calmapp"
	"github.com/sas-platform/terraform-provider-sas/internal/executor/ipreservation"
	"github.com/sas-platform/terraform-provider-sas/internal/executor/modulerun"
)

// Executors returns the executor of every kind that has one. A kind without
// one is still decided by policy, then answered 501. Module runs need the
// operator's catalog and a Terraform (nil: none here). Executors get
// nothing else from the gateway: what a bundle approved is on the
// operation (executor.Job.Operation.Approval).
func Executors(moduleRuns *modulerun.Config) map[string]executor.Executor {
	execs := map[string]executor.Executor{
		api.KindIPReservation: &ipreservation.Executor{},
		api.KindCalmApp:       &calmapp.Executor{},
	}
	if moduleRuns != nil { // a gateway with a module catalog and a Terraform to run it
		execs[api.KindModuleRun] = &modulerun.Executor{Config: *moduleRuns}
	}
	return execs
}
