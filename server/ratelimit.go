package server

import (
	"fmt"
	"math"
	"net/http"
	"strconv"
	"sync"
	"time"

	"golang.org/x/time/rate"

	"github.com/sas-platform/terraform-provider-sas/internal/api"
)

// callerLimiter is a token bucket per caller identity (Vault entity, else
// the token's owner). It is per replica on purpose: a limit shared through
// the database would add a write to every request; N replicas allow N×.
type callerLimiter struct {
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

func newCallerLimiter(perSecond float64, burst int) *callerLimiter {
	return &callerLimiter{rate: rate.Limit(perSecond), burst: burst, buckets: map[string]*bucket{}}
}

// allow reports whether key may make a request now, and if not, how long to wait.
func (l *callerLimiter) allow(key string, now time.Time) (bool, time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if now.Sub(l.sweep) > time.Minute { // forget idle callers
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
	r := b.lim.ReserveN(now, 1)
	if d := r.DelayFrom(now); d > 0 {
		r.CancelAt(now)
		return false, d
	}
	return true, 0
}

// withRateLimit answers 429 with Retry-After once a caller exceeds its rate.
func (g *Gateway) withRateLimit(next http.Handler) http.Handler {
	if g.limiter == nil {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c := callerFrom(r.Context())
		key := c.EntityID
		if key == "" {
			key = "owner:" + c.Owner
		}
		if ok, wait := g.limiter.allow(key, time.Now()); !ok {
			secs := int(math.Ceil(wait.Seconds()))
			w.Header().Set("Retry-After", strconv.Itoa(secs))
			g.metrics.rateLimited.Inc()
			writeProblem(w, r, api.Problem{Type: api.ProblemRateLimited, Title: "Too many requests", Status: http.StatusTooManyRequests,
				Detail: fmt.Sprintf("%s is over this gateway's limit of %g requests per second; retry after %ds", c.Owner, float64(g.limiter.rate), secs)})
			return
		}
		next.ServeHTTP(w, r)
	})
}
