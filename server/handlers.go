package server

import (
	"context"
	"net/http"
	"sync"
	"time"

	"github.com/sas-platform/terraform-provider-sas/internal/api"
)

// health reports whether the gateway can do its job: Vault answers and the
// store answers. 200 when both do, 503 otherwise (as Vault's own health
// endpoint does when sealed), so a load balancer stops sending traffic.
//
// The answer is shared for healthEvery: the route is public, and a flood of
// health checks must not become a flood of Vault calls.
func (g *Gateway) health(w http.ResponseWriter, r *http.Request) {
	h, status := g.healthy.get(func() (api.Health, int) { return g.checkHealth(r.Context()) })
	writeJSON(w, status, h)
}

const healthEvery = time.Second

// healthMemo is the last health answer; concurrent callers wait for one check.
type healthMemo struct {
	mu     sync.Mutex
	at     time.Time
	h      api.Health
	status int
}

func (m *healthMemo) get(check func() (api.Health, int)) (api.Health, int) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if time.Since(m.at) >= healthEvery {
		m.h, m.status = check()
		m.at = time.Now()
	}
	return m.h, m.status
}

func (g *Gateway) checkHealth(ctx context.Context) (api.Health, int) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 3*time.Second)
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
	return h, status
}

// identity answers "who does the gateway think I am" — the owner every
// audit record and every tag will carry.
func (g *Gateway) identity(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, callerFrom(r.Context()).Identity())
}
