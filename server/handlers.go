package server

import (
	"context"
	"net/http"
	"time"

	"github.com/sas-platform/terraform-provider-sas/internal/api"
)

// health reports whether the gateway can do its job: Vault answers and the
// store answers. 200 when both do, 503 otherwise (as Vault's own health
// endpoint does when sealed), so a load balancer stops sending traffic.
func (g *Gateway) health(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 3*time.Second)
	defer cancel()
	h := api.Health{Status: "ok", Version: Version, Checks: map[string]string{"vault": "ok", "store": "ok", "policy": "ok"}}
	if vh, err := g.vault.Client().Sys().HealthWithContext(ctx); err != nil {
		h.Checks["vault"] = "unreachable"
	} else if vh.Sealed {
		h.Checks["vault"] = "sealed"
	}
	if err := g.store.Ping(ctx); err != nil {
		h.Checks["store"] = "unavailable"
	}
	if len(g.policy.Bundles()) == 0 {
		h.Checks["policy"] = "no bundles loaded"
	}
	status := http.StatusOK
	for _, v := range h.Checks {
		if v != "ok" {
			h.Status, status = "unavailable", http.StatusServiceUnavailable
		}
	}
	writeJSON(w, status, h)
}

// identity answers "who does the gateway think I am" — the owner every
// audit record and every tag will carry.
func (g *Gateway) identity(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, callerFrom(r.Context()).Identity())
}
