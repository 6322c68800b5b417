package server

import (
	"context"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/sas-platform/terraform-provider-sas/internal/api"
	"github.com/sas-platform/terraform-provider-sas/internal/audit"
)

// auditEvent accumulates what the layers learn about a request; it becomes
// the request's one audit record.
type auditEvent struct {
	mu         sync.Mutex
	rec        audit.Record
	recorded   bool
	suppressed bool // counted in a flood summary instead (see addressGuard)
	err        error
}

const auditKey ctxKey = 100

func auditFrom(ctx context.Context) *auditEvent {
	ev, _ := ctx.Value(auditKey).(*auditEvent)
	return ev
}

// note lets a layer fill in fields; it is a no-op for unaudited routes.
func note(r *http.Request, fill func(*audit.Record)) {
	if ev := auditFrom(r.Context()); ev != nil {
		ev.mu.Lock()
		fill(&ev.rec)
		ev.mu.Unlock()
	}
}

// suppressAudit marks a request as counted, not recorded on its own.
func suppressAudit(r *http.Request) {
	if ev := auditFrom(r.Context()); ev != nil {
		ev.mu.Lock()
		ev.suppressed = true
		ev.mu.Unlock()
	}
}

// withAudit gives the request an audit event and makes sure it is written
// before the first byte of the response — or, for mutations, explicitly by
// the handler before any side effect (commitAudit). If the write fails the
// client gets 503 and the handler's response is discarded.
func (g *Gateway) withAudit(rt route, next http.Handler) http.Handler {
	if rt.unaudited {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ip, _, err := net.SplitHostPort(r.RemoteAddr)
		if err != nil {
			ip = r.RemoteAddr
		}
		ev := &auditEvent{rec: audit.Record{
			RequestID: requestIDFrom(r.Context()),
			Kind:      rt.kind,
			Action:    rt.action,
			Decision:  audit.DecisionRefused,
			ClientIP:  ip,
			UserAgent: truncate(r.UserAgent(), 256),
		}}
		r = r.WithContext(context.WithValue(r.Context(), auditKey, ev))
		aw := &auditingWriter{ResponseWriter: w, g: g, r: r, ev: ev}
		next.ServeHTTP(aw, r)
		if !aw.wroteHeader {
			aw.WriteHeader(http.StatusOK)
		}
	})
}

// commitAudit writes the request's record now, with the status the handler
// is about to answer. Handlers with side effects call it first and stop if
// it fails.
func (g *Gateway) commitAudit(r *http.Request, status int, outcome string) error {
	ev := auditFrom(r.Context())
	if ev == nil {
		return nil
	}
	ev.mu.Lock()
	defer ev.mu.Unlock()
	if ev.recorded {
		return ev.err
	}
	ev.recorded = true
	if ev.suppressed {
		return nil
	}
	ev.rec.StatusCode = status
	if outcome != "" {
		ev.rec.Outcome = outcome
	}
	if ev.rec.Outcome == "" {
		ev.rec.Outcome = http.StatusText(status)
	}
	// Detached: a client that hangs up must not cancel the record of what
	// it asked for (as Vault's audit broker builds its own context).
	ctx, cancel := detached(r.Context())
	defer cancel()
	if _, err := g.audit.Append(ctx, ev.rec); err != nil {
		g.metrics.auditFailure.Inc()
		g.cfg.Logger.Error("audit write failed; request refused", "request_id", ev.rec.RequestID, "error", err)
		ev.err = err
	}
	return ev.err
}

// auditWriteTimeout bounds writes detached from their request.
const auditWriteTimeout = 15 * time.Second

// detached is ctx's values without its cancellation, bounded by
// auditWriteTimeout: for the writes a request's allow commits it to.
func detached(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.WithoutCancel(ctx), auditWriteTimeout)
}

// auditFollowUp appends one more record for a request already audited:
// what became of it after its allow (stored by a concurrent request, or
// not stored at all). The chain then never holds an allow with no ending.
func (g *Gateway) auditFollowUp(ctx context.Context, r *http.Request, status int, outcome string) {
	ev := auditFrom(r.Context())
	if ev == nil {
		return
	}
	ev.mu.Lock()
	rec := ev.rec
	ev.mu.Unlock()
	rec.StatusCode, rec.Outcome = status, outcome
	if _, err := g.audit.Append(ctx, rec); err != nil {
		g.metrics.auditFailure.Inc()
		g.cfg.Logger.Error("audit follow-up write failed", "request_id", rec.RequestID, "outcome", outcome, "error", err)
	}
}

// auditUnavailable is the answer when the audit record could not be written.
func auditUnavailable() api.Problem {
	return api.Problem{Type: api.ProblemAuditFailed, Title: "Audit unavailable", Status: http.StatusServiceUnavailable,
		Detail: "the gateway could not write the audit record for this request, so it did nothing; retry shortly"}
}

type auditingWriter struct {
	http.ResponseWriter
	g           *Gateway
	r           *http.Request
	ev          *auditEvent
	wroteHeader bool
	swallow     bool
}

func (a *auditingWriter) WriteHeader(code int) {
	if a.wroteHeader {
		return
	}
	a.wroteHeader = true
	if err := a.g.commitAudit(a.r, code, ""); err != nil {
		a.swallow = true
		writeProblemTo(a.ResponseWriter, a.r, auditUnavailable())
		return
	}
	a.ResponseWriter.WriteHeader(code)
}

func (a *auditingWriter) Write(b []byte) (int, error) {
	if !a.wroteHeader {
		a.WriteHeader(http.StatusOK)
	}
	if a.swallow {
		return len(b), nil
	}
	return a.ResponseWriter.Write(b)
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}
