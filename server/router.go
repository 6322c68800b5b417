package server

import (
	"net/http"

	"github.com/gorilla/mux"
)

// router wires the API. Read it top to bottom as the threat model's trust
// boundaries:
//
//	every request   gets an id, security headers, a bounded body, a panic
//	                guard, metrics, and (unless it carries no identity and
//	                changes nothing) exactly one audit record written before
//	                its response — if that write fails the request fails with
//	                503 (⑤, fail closed)
//	   flood guard   a client address that keeps sending bad tokens is refused
//	                 before Vault is asked (refusals aggregated in the audit)
//	①  caller        exactly one Vault token, that Vault vouches for and would
//	                 accept from this address: an entity that exists and is
//	                 enabled, ephemeral, revocable, under the TTL ceiling
//	   rate limit    per caller identity (Vault entity)
//	②  bundle        X-Sas-Policy-Bundle must be one the token is bound to
//	                 (policy sas-bundle-<name>); X-Sas-Environment a known one
//	②  request       strictly decoded, then the bundle's policy decides (in the handler)
//	③–④             only then an operation is enqueued for the orchestrator
func (g *Gateway) router() http.Handler {
	r := mux.NewRouter()
	r.NotFoundHandler = g.withEvery(http.HandlerFunc(notFound))
	r.MethodNotAllowedHandler = g.withEvery(http.HandlerFunc(methodNotAllowed))

	for _, rt := range g.routes() {
		var h http.Handler = rt.handler
		if rt.bundled {
			h = g.withBundle(h)
		}
		if !rt.public {
			h = g.withCaller(g.withRateLimit(h))
		}
		h = g.withAudit(rt, h)
		r.Handle(rt.path, g.withEvery(h)).Methods(rt.methods...).Name(rt.name)
	}
	return r
}

// withEvery is what every request gets, matched or not.
func (g *Gateway) withEvery(h http.Handler) http.Handler {
	return withRequestID(withSecurityHeaders(g.withMetrics(g.withRecover(g.withBodyLimit(h)))))
}
