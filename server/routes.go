package server

import (
	"net/http"

	"github.com/sas-platform/terraform-provider-sas/internal/api"
)

// route is one endpoint, declared once: the router serves it and the
// OpenAPI document describes it from the same entry.
type route struct {
	name        string // OpenAPI operationId
	tag         string
	summary     string
	description string
	methods     []string
	path        string
	public      bool // reachable without a token
	unaudited   bool // no audit record: carries no identity and changes nothing
	bundled     bool // needs X-Sas-Policy-Bundle and X-Sas-Environment, bound to the token
	kind        string
	action      string
	headers     []string
	request     any // request body type, for the document
	response    any // success body type
	status      int // success status
	handler     http.HandlerFunc
}

var bundleHeaders = []string{api.HeaderPolicyBundle, api.HeaderEnvironment}

// routes is the whole v1 API.
func (g *Gateway) routes() []route {
	rs := []route{
		{name: "health", tag: "sys", summary: "Gateway health: 200 when Vault, the store and the audit chain answer, 503 otherwise",
			methods: []string{http.MethodGet}, path: "/v1/sys/health", public: true, unaudited: true, response: api.Health{}, status: 200, handler: g.health},
		{name: "openapi", tag: "sys", summary: "This API's OpenAPI 3 description",
			methods: []string{http.MethodGet}, path: "/v1/openapi.json", public: true, unaudited: true, status: 200, handler: g.openapi},

		{name: "identity", tag: "identity", summary: "Who the gateway believes the caller is (from Vault alone)",
			methods: []string{http.MethodGet}, path: "/v1/identity", kind: "identity", action: api.ActionRead, response: api.Identity{}, status: 200, handler: g.identity},
		{name: "listBundles", tag: "policy", summary: "Policy bundles the caller's token is bound to",
			methods: []string{http.MethodGet}, path: "/v1/bundles", kind: "bundle", action: api.ActionRead, response: []api.BundleSummary{}, status: 200, handler: g.listBundles},
		{name: "getBundle", tag: "policy", summary: "One bundle's declaration (environments, networks, zones, catalogs, limits) and revision",
			methods: []string{http.MethodGet}, path: "/v1/bundles/{name}", kind: "bundle", action: api.ActionRead, response: api.BundleDetail{}, status: 200, handler: g.getBundle},
		{name: "catalog", tag: "policy", summary: "What the caller may provision with this bundle in this environment",
			methods: []string{http.MethodGet}, path: "/v1/catalog", bundled: true, headers: bundleHeaders, kind: "catalog", action: api.ActionRead, response: api.Catalog{}, status: 200, handler: g.catalog},
		{name: "decide", tag: "policy", summary: "Dry-run a request against the bound bundle; no side effects (the provider calls it at plan time)",
			methods: []string{http.MethodPost}, path: "/v1/decisions", bundled: true, headers: bundleHeaders, kind: "decision", action: api.ActionCreate, request: api.DecisionRequest{}, response: api.Decision{}, status: 200, handler: g.decide},
		{name: "queryAudit", tag: "audit", summary: "Page through the audit trail (requires Vault policy sas-auditor)",
			description: "Query parameters: owner, request_id, decision, since, until (RFC 3339), after (cursor), limit (≤ 500).",
			methods:     []string{http.MethodGet}, path: "/v1/audit", kind: "audit", action: api.ActionRead, response: api.AuditPage{}, status: 200, handler: g.queryAudit},
		{name: "getOperation", tag: "operations", summary: "A long-running operation's state, timestamps, progress, result and error",
			methods: []string{http.MethodGet}, path: "/v1/operations/{id}", kind: "operation", action: api.ActionRead, response: api.Operation{}, status: 200, handler: g.getOperation},
		{name: "getOperationLog", tag: "operations", summary: "What an operation's steps printed (a Terraform run's output), secrets redacted; the operation's owner only",
			methods: []string{http.MethodGet}, path: "/v1/operations/{id}/log", kind: "operation", action: api.ActionRead, response: api.OperationLog{}, status: 200, handler: g.getOperationLog},
		{name: "cancelOperation", tag: "operations", summary: "Cancel an unfinished operation, judged by its bundle under the rules of the action it stops: its compensation runs and it ends cancelled (audited)",
			methods: []string{http.MethodPost}, path: "/v1/operations/{id}/cancel", kind: "operation", action: api.ActionCancel, request: api.CancelRequest{}, response: api.Operation{}, status: 202, handler: g.cancelOperation},
	}
	for _, kind := range api.Kinds {
		p := "/v1/" + api.KindPaths[kind]
		rs = append(rs,
			route{name: "create_" + kind, tag: kind, summary: "Request a new " + kind + " (answered with an operation)",
				methods: []string{http.MethodPost}, path: p, bundled: true, headers: append(bundleHeaders, api.HeaderIdempotencyKey), kind: kind, action: api.ActionCreate,
				request: api.NewRequestBody(kind, api.ActionCreate), response: api.Operation{}, status: 202, handler: g.mutate(kind, api.ActionCreate)},
			route{name: "list_" + kind, tag: kind, summary: "List the caller's " + kind + "s",
				methods: []string{http.MethodGet}, path: p, bundled: true, headers: bundleHeaders, kind: kind, action: api.ActionRead, response: []api.Resource{}, status: 200, handler: g.listResources(kind)},
			route{name: "get_" + kind, tag: kind, summary: "Read one " + kind,
				methods: []string{http.MethodGet}, path: p + "/{id}", bundled: true, headers: bundleHeaders, kind: kind, action: api.ActionRead, response: api.Resource{}, status: 200, handler: g.getResource(kind)},
			route{name: "delete_" + kind, tag: kind, summary: "Delete a " + kind + " (answered with an operation)",
				methods: []string{http.MethodDelete}, path: p + "/{id}", bundled: true, headers: append(bundleHeaders, api.HeaderIdempotencyKey), kind: kind, action: api.ActionDelete,
				request: api.NewRequestBody(kind, api.ActionDelete), response: api.Operation{}, status: 202, handler: g.mutate(kind, api.ActionDelete)},
		)
		if body := api.NewRequestBody(kind, api.ActionUpdate); body != nil {
			rs = append(rs, route{name: "update_" + kind, tag: kind, summary: "Change a " + kind + "'s mutable fields (answered with an operation)",
				methods: []string{http.MethodPatch}, path: p + "/{id}", bundled: true, headers: append(bundleHeaders, api.HeaderIdempotencyKey), kind: kind, action: api.ActionUpdate,
				request: body, response: api.Operation{}, status: 202, handler: g.mutate(kind, api.ActionUpdate)})
		}
	}
	return rs
}
