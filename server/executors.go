package server

import (
	"github.com/sas-platform/terraform-provider-sas/internal/orchestrator"
)

// executors are the downstream adapters, by kind (boundary ④). Each reaches
// its system only with credentials its operation's sub-token unlocked.
func executors() map[string]orchestrator.Executor {
	return map[string]orchestrator.Executor{}
}
