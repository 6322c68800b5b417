package server

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"github.com/sas-platform/terraform-provider-sas/internal/admission"
	"github.com/sas-platform/terraform-provider-sas/internal/api"
	"github.com/sas-platform/terraform-provider-sas/internal/audit"
	"github.com/sas-platform/terraform-provider-sas/internal/executor"
	"github.com/sas-platform/terraform-provider-sas/internal/executor/all"
	"github.com/sas-platform/terraform-provider-sas/internal/executor/modulerun"
	"github.com/sas-platform/terraform-provider-sas/internal/modules"
	"github.com/sas-platform/terraform-provider-sas/internal/policy"
	"github.com/sas-platform/terraform-provider-sas/internal/store"
	"github.com/sas-platform/terraform-provider-sas/internal/tfrun"
)

// executors are the downstream adapters, by kind (boundary ④). Each reaches
// its system only with credentials its operation's sub-token unlocked.
func (g *Gateway) executors() map[string]executor.Executor {
	return all.Executors(g.modules)
}

// moduleRuns sets up what running catalog modules needs, from the configuration: the
// verified catalog, the runner and the state directory; nil without a catalog.
func (g *Gateway) moduleRuns() (*modulerun.Config, error) {
	c := g.cfg
	if c.ModuleCatalogDir == "" {
		return nil, nil
	}
	catalog, err := modules.Load(c.ModuleCatalogDir)
	if err != nil {
		return nil, err
	}
	for what, p := range map[string]string{"terraform": c.TerraformPath, "module plugin_dir": c.ModulePluginDir} {
		if _, err := os.Stat(p); p == "" || err != nil {
			return nil, fmt.Errorf("module runs: %s %q: %v (set it beside catalog_dir)", what, p, err)
		}
	}
	work := c.ModuleWorkDir
	if work == "" {
		if work, err = os.MkdirTemp("", "sas-module-runs-"); err != nil {
			return nil, err
		}
		g.ownWorkDir = work
	}
	dsn := ""
	if g.store.Driver == store.DriverPostgres {
		dsn = g.store.DSN() // runs keep their state beside the gateway's: Terraform's pg backend
	}
	return &modulerun.Config{
		Catalog: catalog, StateDir: filepath.Join(c.DataDir, "module-state"), PostgresDSN: dsn,
		Runner:    &tfrun.Runner{Terraform: c.TerraformPath, PluginDir: c.ModulePluginDir, WorkRoot: work},
		JudgePlan: g.judgePlan,
	}, nil
}

// judgePlan is boundary ② again, for what a module run would do: its saved
// plan put to the operation's own bundle, and the verdict audited before
// anything is applied.
func (g *Gateway) judgePlan(ctx context.Context, j executor.Job, request any, plan policy.Plan) (api.Decision, error) {
	op := j.Operation
	// Judged by the revision that admitted the operation, never by one
	// loaded since (a revision no longer held denies, failing closed).
	d, err := g.policy.EvaluateAt(ctx, op.Bundle, op.Approval.BundleRevision, policy.Input{Environment: op.Environment, Kind: op.Kind, Action: op.Action,
		// The caller's binding to the bundle was checked when the request was
		// admitted; the operation is judged under that bundle.
		Request: request, Caller: policy.Caller{Owner: op.Owner, EntityID: op.OwnerEntityID, Bundles: []string{op.Bundle}}, Plan: &plan})
	if err != nil {
		d.Allow = false
	}
	rec := audit.Record{RequestID: op.RequestID, OwnerEntityID: op.OwnerEntityID, OwnerName: op.Owner, Bundle: op.Bundle,
		Environment: op.Environment, Kind: op.Kind, Action: op.Action, TargetID: op.ID, Decision: audit.DecisionDeny,
		DecisionID: d.DecisionID, BundleRevision: d.Revision, Violations: d.Violations, ControlIDs: admission.ControlIDs(d.Violations),
		Outcome: fmt.Sprintf("plan judged: %d resource changes", len(plan.ResourceChanges)), UserAgent: "sas-orchestrator"}
	if d.Allow {
		rec.Decision = audit.DecisionAllow
	}
	if _, aerr := g.audit.Append(ctx, rec); aerr != nil {
		return d, fmt.Errorf("audit the plan's decision: %w", aerr) // fail closed: nothing applied unaudited
	}
	return d, err
}
