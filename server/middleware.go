package server

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/http"
	"runtime/debug"
	"strings"
	"time"

	"github.com/sas-platform/terraform-provider-sas/internal/api"
	"github.com/sas-platform/terraform-provider-sas/internal/audit"
	"github.com/sas-platform/terraform-provider-sas/internal/caller"
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
		var b [16]byte
		_, _ = rand.Read(b[:])
		id := hex.EncodeToString(b[:])
		w.Header().Set(api.HeaderRequestID, id)
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), requestIDKey, id)))
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
// Vault itself vouches for, that is ephemeral and within the TTL ceiling.
// If Vault cannot answer, the request fails closed with 503.
func (g *Gateway) withCaller(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		token := tokenFrom(r)
		if refusal := caller.CheckFormat(token); refusal != nil {
			g.metrics.refusals.WithLabelValues(refusal.Type).Inc()
			writeError(w, r, refusal)
			return
		}
		c, err := g.verifyCaller(r.Context(), token)
		if err != nil {
			g.cfg.Logger.Info("caller refused", "request_id", requestIDFrom(r.Context()), "reason", err.Error())
			p := problemFor(err)
			g.metrics.refusals.WithLabelValues(p.Type).Inc()
			writeProblem(w, r, p)
			return
		}
		note(r, func(rec *audit.Record) {
			rec.OwnerEntityID, rec.OwnerName, rec.TokenAccessor = c.EntityID, c.Owner, c.Accessor()
			rec.Decision = audit.DecisionAllow // a read this identity may make; policy paths overwrite it
		})
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), callerKey, c)))
	})
}

// tokenFrom reads X-Vault-Token, else Authorization: Bearer.
func tokenFrom(r *http.Request) string {
	if t := r.Header.Get(api.HeaderVaultToken); t != "" {
		return t
	}
	if a := r.Header.Get("Authorization"); len(a) > 7 && strings.EqualFold(a[:7], "bearer ") {
		return strings.TrimSpace(a[7:])
	}
	return ""
}

func callerFrom(ctx context.Context) caller.Caller {
	c, _ := ctx.Value(callerKey).(caller.Caller)
	return c
}
