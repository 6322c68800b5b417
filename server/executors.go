package server

import (
	"github.com/sas-platform/terraform-provider-sas/internal/executor"
	"github.com/sas-platform/terraform-provider-sas/internal/executor/all"
)

// executors are the downstream adapters, by kind (boundary ④). Each reaches
// its system only with credentials its operation's sub-token unlocked.
func (g *Gateway) executors() map[string]executor.Executor {
	return all.Executors(executor.Env{NetworkCIDR: g.networkCIDR, Resource: g.ops.GetResource})
}

// networkCIDR resolves a network name through the bundle that allowed it.
func (g *Gateway) networkCIDR(bundle, name string) (string, bool) {
	b, ok := g.policy.Bundle(bundle)
	if !ok {
		return "", false
	}
	n, ok := b.Spec.Networks[name]
	return n.CIDR, ok && n.CIDR != ""
}
