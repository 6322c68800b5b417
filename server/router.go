package server

import (
	"net/http"

	"github.com/gorilla/mux"
)

// router wires the API. Read it top to bottom as the threat model's trust
// boundaries: every request gets an id and a panic guard; only health and
// the API description are reachable without a token; everything else
// passes boundary ① (a Vault-verified, ephemeral caller token) before any
// handler runs.
func (g *Gateway) router() http.Handler {
	r := mux.NewRouter()
	r.NotFoundHandler = http.HandlerFunc(notFound)
	r.MethodNotAllowedHandler = http.HandlerFunc(methodNotAllowed)

	// Every request: an id for the audit trail, a bounded body, no panics leaking.
	r.Use(withRequestID, g.withAccessLog, g.withRecover, g.withBodyLimit)

	// Unauthenticated: what a load balancer and an operator need.
	r.HandleFunc("/v1/sys/health", g.health).Methods(http.MethodGet, http.MethodHead)

	// Boundary ①: the caller's Vault token, verified against Vault on every request.
	authed := r.PathPrefix("/v1").Subrouter()
	authed.Use(g.withCaller)
	authed.HandleFunc("/identity", g.identity).Methods(http.MethodGet)

	return r
}
