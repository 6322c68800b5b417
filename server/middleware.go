package server

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"net/http"
	"runtime/debug"
	"strings"
	"time"

	"github.com/sas-platform/terraform-provider-sas/internal/api"
	"github.com/sas-platform/terraform-provider-sas/internal/audit"
	"github.com/sas-platform/terraform-provider-sas/internal/caller"
	"github.com/sas-platform/terraform-provider-sas/internal/vault"
)

type ctxKey int

const (
	requestIDKey ctxKey = iota
	callerKey
)

// withRequestID gives every request an id the gateway chose; a client's
// own X-Request-Id is not trusted for the audit trail.
func withRequestID(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id := newRequestID()
		w.Header().Set(api.HeaderRequestID, id)
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), requestIDKey, id)))
	})
}

func newRequestID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// withSecurityHeaders sets what every answer carries: no content sniffing,
// no caching of answers that name owners and resources, and HSTS when the
// request came over TLS (browsers must never fall back to plain HTTP).
func withSecurityHeaders(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Cache-Control", "no-store")
		if r.TLS != nil {
			h.Set("Strict-Transport-Security", "max-age=63072000; includeSubDomains")
		}
		next.ServeHTTP(w, r)
	})
}

func requestIDFrom(ctx context.Context) string {
	id, _ := ctx.Value(requestIDKey).(string)
	return id
}

type statusRecorder struct {
	http.ResponseWriter
	status int
	wrote  bool
}

func (s *statusRecorder) WriteHeader(code int) {
	if !s.wrote {
		s.status, s.wrote = code, true
	}
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusRecorder) Write(b []byte) (int, error) {
	s.wrote = true
	return s.ResponseWriter.Write(b)
}

// withMetrics counts and times requests by route, and logs each at debug
// level — method, path, status, duration; never headers, which carry tokens.
func (g *Gateway) withMetrics(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		rec := &statusRecorder{ResponseWriter: w, status: http.StatusOK}
		next.ServeHTTP(rec, r)
		took := time.Since(start)
		g.metrics.observe(r, rec.status, took)
		g.cfg.Logger.Debug("request", "request_id", requestIDFrom(r.Context()), "method", r.Method,
			"path", r.URL.Path, "status", rec.status, "duration", took.String())
	})
}

func (g *Gateway) withRecover(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer func() {
			if v := recover(); v != nil {
				g.cfg.Logger.Error("panic in handler", "request_id", requestIDFrom(r.Context()), "panic", v, "stack", string(debug.Stack()))
				writeProblem(w, r, problemFor(nil))
			}
		}()
		next.ServeHTTP(w, r)
	})
}

func (g *Gateway) withBodyLimit(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		r.Body = http.MaxBytesReader(w, r.Body, g.cfg.MaxBodyBytes)
		next.ServeHTTP(w, r)
	})
}

// withCaller is trust boundary ①: it admits only requests whose Vault token
// Vault itself vouches for and would accept from this client, that is
// ephemeral and within the TTL ceiling. If Vault cannot answer, the request
// fails closed with 503. Before Vault is asked, the client address's budget
// for refused requests is checked, so a flood of bad tokens costs Vault and
// the audit trail a bounded amount.
func (g *Gateway) withCaller(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		token, refusal := tokenFrom(r)
		addr, now := clientAddr(r).String(), time.Now()
		if !g.guard.known(token, now) {
			if ok, wait := g.guard.lim.peek(addr, now); !ok {
				g.refuseFlood(w, r, addr, wait)
				return
			}
		}
		if refusal == nil {
			refusal = caller.CheckFormat(token)
		}
		if refusal != nil {
			g.guard.lim.take(addr, now)
			g.metrics.refusals.WithLabelValues(refusal.Type).Inc()
			writeError(w, r, refusal)
			return
		}
		c, err := g.verifyCaller(r.Context(), token, clientAddr(r))
		if err != nil {
			var unavailable *vault.UnavailableError
			if !errors.As(err, &unavailable) { // Vault's outage is not the caller's refusal
				g.guard.lim.take(addr, now)
			}
			g.cfg.Logger.Info("caller refused", "request_id", requestIDFrom(r.Context()), "reason", err.Error())
			p := problemFor(err)
			g.metrics.refusals.WithLabelValues(p.Type).Inc()
			writeProblem(w, r, p)
			return
		}
		g.guard.admit(token, now)
		note(r, func(rec *audit.Record) {
			rec.OwnerEntityID, rec.OwnerName, rec.TokenAccessor = c.EntityID, c.Owner, c.Accessor()
			rec.Decision = audit.DecisionAllow // a read this identity may make; policy paths overwrite it
		})
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), callerKey, c)))
	})
}

// tokenFrom reads the one credential of a request: X-Vault-Token or
// Authorization: Bearer. A header given twice, or both headers with
// different tokens, is refused — which one a proxy, the policy and Vault
// would each pick is exactly the ambiguity an attacker wants.
func tokenFrom(r *http.Request) (string, *caller.Refusal) {
	vt := r.Header.Values(api.HeaderVaultToken)
	az := r.Header.Values("Authorization")
	if len(vt) > 1 || len(az) > 1 {
		return "", caller.Ambiguous("a token header is repeated")
	}
	var token, bearer string
	if len(vt) == 1 {
		token = strings.TrimSpace(vt[0])
	}
	if len(az) == 1 {
		if a := az[0]; len(a) > 7 && strings.EqualFold(a[:7], "bearer ") {
			bearer = strings.TrimSpace(a[7:])
		}
	}
	switch {
	case token != "" && bearer != "" && token != bearer:
		return "", caller.Ambiguous(api.HeaderVaultToken + " and Authorization: Bearer carry different tokens")
	case token == "":
		token = bearer
	}
	return token, nil
}

func callerFrom(ctx context.Context) caller.Caller {
	c, _ := ctx.Value(callerKey).(caller.Caller)
	return c
}
