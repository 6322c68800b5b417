package server

import (
	"context"
	"crypto/sha256"
	"fmt"
	"math"
	"net/http"
	"net/netip"
	"sort"
	"strconv"
	"sync"
	"time"

	"golang.org/x/time/rate"

	"github.com/sas-platform/terraform-provider-sas/internal/api"
	"github.com/sas-platform/terraform-provider-sas/internal/audit"
)

// Default limits. Both are per replica on purpose: a limit shared through
// the database would add a write to every request; N replicas allow N×.
const (
	// DefaultRateLimit is requests per second per caller identity (Vault
	// entity), after authentication; DefaultRateBurst its burst. Terraform
	// at its default parallelism (10) stays far below it.
	DefaultRateLimit = 50
	DefaultRateBurst = 100
	// DefaultUnauthenticatedRate is refusals per second per client address
	// at the token boundary (missing, malformed, unknown or refused tokens)
	// before the gateway stops asking Vault about that address's tokens.
	DefaultUnauthenticatedRate  = 5
	DefaultUnauthenticatedBurst = 30
)

// keyedLimiter is a token bucket per key.
type keyedLimiter struct {
	rate  rate.Limit
	burst int

	mu      sync.Mutex
	buckets map[string]*bucket
	sweep   time.Time
}

type bucket struct {
	lim  *rate.Limiter
	seen time.Time
}

func newKeyedLimiter(perSecond float64, burst int) *keyedLimiter {
	return &keyedLimiter{rate: rate.Limit(perSecond), burst: burst, buckets: map[string]*bucket{}}
}

// bucketFor returns key's bucket, forgetting idle keys now and then.
// Callers hold l.mu.
func (l *keyedLimiter) bucketFor(key string, now time.Time) *rate.Limiter {
	if now.Sub(l.sweep) > time.Minute {
		for k, b := range l.buckets {
			if now.Sub(b.seen) > 10*time.Minute {
				delete(l.buckets, k)
			}
		}
		l.sweep = now
	}
	b, ok := l.buckets[key]
	if !ok {
		b = &bucket{lim: rate.NewLimiter(l.rate, l.burst)}
		l.buckets[key] = b
	}
	b.seen = now
	return b.lim
}

// take spends one token of key's bucket now; when it is empty, nothing is
// spent and take reports how long to wait.
func (l *keyedLimiter) take(key string, now time.Time) (bool, time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	r := l.bucketFor(key, now).ReserveN(now, 1)
	if d := r.DelayFrom(now); d > 0 {
		r.CancelAt(now)
		return false, d
	}
	return true, 0
}

// peek reports whether key's bucket holds a token now, without spending
// it (spend with take once the request turns out to cost one).
func (l *keyedLimiter) peek(key string, now time.Time) (bool, time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	tokens := l.bucketFor(key, now).TokensAt(now)
	if tokens >= 1 {
		return true, 0
	}
	return false, time.Duration((1 - tokens) / float64(l.rate) * float64(time.Second))
}

// withRateLimit answers 429 with Retry-After once a caller identity
// exceeds its rate.
func (g *Gateway) withRateLimit(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c := callerFrom(r.Context())
		if ok, wait := g.limiter.take(c.EntityID, time.Now()); !ok {
			secs := retryAfter(w, wait)
			g.metrics.rateLimited.Inc()
			writeProblem(w, r, api.Problem{Type: api.ProblemRateLimited, Title: "Too many requests", Status: http.StatusTooManyRequests,
				Detail: fmt.Sprintf("%s is over this gateway's limit of %g requests per second; retry after %ds", c.Owner, float64(g.limiter.rate), secs)})
			return
		}
		next.ServeHTTP(w, r)
	})
}

func retryAfter(w http.ResponseWriter, wait time.Duration) int {
	secs := max(1, int(math.Ceil(wait.Seconds())))
	w.Header().Set("Retry-After", strconv.Itoa(secs))
	return secs
}

// addressGuard bounds what traffic without a valid token costs: every
// refusal at the token boundary spends one token of its client address's
// bucket, and once the bucket is empty the address's requests are refused
// (429) before Vault is asked. (Concurrent requests that all found a token
// may overdraw it by their number; the bound still holds per second.) Requests whose token was admitted recently
// pass without spending (an attacker cannot know such a token), so a flood
// from a shared address stops only callers with fresh tokens, and only
// while it lasts.
//
// Refusals of the limit itself are not recorded one by one: the first one
// from an address is, then the address's further refusals in the next
// window are counted and recorded as one summary record when the
// window ends (or the gateway stops).
type addressGuard struct {
	lim    *keyedLimiter
	window time.Duration

	mu       sync.Mutex
	admitted map[[32]byte]time.Time // digests of recently admitted tokens
	floods   map[string]*flood      // by client address
	ended    []floodSummary         // windows replaced before the flusher saw them
}

// admittedFor is how long an admitted token bypasses the address limit.
const admittedFor = 5 * time.Minute

// DefaultFloodWindow is how long refusals of one address by the
// pre-authentication limit are aggregated into one summary record.
const DefaultFloodWindow = time.Minute

type flood struct {
	opened, last time.Time
	suppressed   int
}

func newAddressGuard(perSecond float64, burst int, window time.Duration) *addressGuard {
	return &addressGuard{lim: newKeyedLimiter(perSecond, burst), window: window, admitted: map[[32]byte]time.Time{}, floods: map[string]*flood{}}
}

// known reports whether token was admitted within admittedFor.
func (a *addressGuard) known(token string, now time.Time) bool {
	if token == "" {
		return false
	}
	k := sha256.Sum256([]byte(token))
	a.mu.Lock()
	defer a.mu.Unlock()
	t, ok := a.admitted[k]
	return ok && now.Sub(t) < admittedFor
}

func (a *addressGuard) admit(token string, now time.Time) {
	k := sha256.Sum256([]byte(token))
	a.mu.Lock()
	defer a.mu.Unlock()
	if len(a.admitted) > 50000 {
		for key, t := range a.admitted {
			if now.Sub(t) >= admittedFor {
				delete(a.admitted, key)
			}
		}
	}
	a.admitted[k] = now
}

// limited notes one refusal by the limit and reports whether it must be
// recorded on its own (the first of a window).
func (a *addressGuard) limited(addr string, now time.Time) (record bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	f, ok := a.floods[addr]
	if ok && now.Sub(f.opened) < a.window {
		f.suppressed++
		f.last = now
		return false
	}
	if ok && f.suppressed > 0 { // its count must still reach the trail
		a.ended = append(a.ended, floodSummary{addr: addr, windowOpened: f.opened, last: f.last, suppressed: f.suppressed})
	}
	a.floods[addr] = &flood{opened: now, last: now}
	return true
}

// floodSummary is one address's suppressed refusals in a window.
type floodSummary struct {
	addr         string
	windowOpened time.Time
	last         time.Time
	suppressed   int
}

// closed removes and returns windows that ended by now (all when final).
func (a *addressGuard) closed(now time.Time, final bool) []floodSummary {
	a.mu.Lock()
	defer a.mu.Unlock()
	out := a.ended
	a.ended = nil
	for addr, f := range a.floods {
		if !final && now.Sub(f.opened) < a.window {
			continue
		}
		delete(a.floods, addr)
		if f.suppressed > 0 {
			out = append(out, floodSummary{addr: addr, windowOpened: f.opened, last: f.last, suppressed: f.suppressed})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].addr < out[j].addr })
	return out
}

// refuseFlood answers a request its address may not make now.
func (g *Gateway) refuseFlood(w http.ResponseWriter, r *http.Request, addr string, wait time.Duration) {
	secs := retryAfter(w, wait)
	g.metrics.rateLimited.Inc()
	outcome := api.ProblemRateLimited
	if !g.guard.limited(addr, time.Now()) {
		suppressAudit(r)
	} else {
		outcome = fmt.Sprintf("%s: refused before authentication; further refusals from %s in the next %s are counted and recorded as one summary",
			api.ProblemRateLimited, addr, g.guard.window)
	}
	note(r, func(rec *audit.Record) { rec.Outcome = outcome })
	writeProblemTo(w, r, api.Problem{Type: api.ProblemRateLimited, Title: "Too many refused requests", Status: http.StatusTooManyRequests,
		Detail: fmt.Sprintf("requests from %s without a valid Vault token are over this gateway's limit of %g per second; retry after %ds with a valid token",
			addr, float64(g.guard.lim.rate), secs)})
}

// recordFloods writes one summary record per ended flood window.
func (g *Gateway) recordFloods(ctx context.Context, final bool) {
	for _, f := range g.guard.closed(time.Now(), final) {
		rec := audit.Record{RequestID: newRequestID(), Time: f.last, Decision: audit.DecisionRefused, StatusCode: http.StatusTooManyRequests,
			ClientIP: f.addr, Outcome: fmt.Sprintf("%s: %d more requests from %s refused before authentication between %s and %s, not recorded one by one",
				api.ProblemRateLimited, f.suppressed, f.addr, f.windowOpened.UTC().Format(time.RFC3339), f.last.UTC().Format(time.RFC3339))}
		if _, err := g.audit.Append(ctx, rec); err != nil {
			g.metrics.auditFailure.Inc()
			g.cfg.Logger.Error("audit write of a flood summary failed", "client_ip", f.addr, "suppressed", f.suppressed, "error", err)
		}
	}
}

// clientAddr is the request's TCP peer. No forwarding header is trusted:
// behind a proxy, every caller shares the proxy's address.
func clientAddr(r *http.Request) netip.Addr {
	ap, err := netip.ParseAddrPort(r.RemoteAddr)
	if err != nil {
		return netip.Addr{}
	}
	return ap.Addr().Unmap()
}
