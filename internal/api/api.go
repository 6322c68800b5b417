// Package api holds the sas gateway's v1 wire types, shared by the gateway
// (server/) and its clients (the provider). Changing a JSON name here is an
// API change.
package api

import "time"

// Request and response headers of the v1 API.
const (
	// HeaderVaultToken carries the caller's Vault token (Authorization: Bearer is also accepted).
	HeaderVaultToken = "X-Vault-Token"
	// HeaderRequestID is echoed on every response and recorded in every audit record.
	HeaderRequestID = "X-Request-Id"
	// HeaderPolicyBundle names the policy bundle a request is made under.
	HeaderPolicyBundle = "X-Sas-Policy-Bundle"
	// HeaderEnvironment names the environment a request targets.
	HeaderEnvironment = "X-Sas-Environment"
	// HeaderIdempotencyKey makes a mutation safe to retry.
	HeaderIdempotencyKey = "Idempotency-Key"
)

// ProblemContentType is the media type of every error response (RFC 9457).
const ProblemContentType = "application/problem+json"

// Problem is an RFC 9457 problem document. Type is stable and meant for
// programs; Title and Detail are for people.
type Problem struct {
	Type       string      `json:"type"`
	Title      string      `json:"title"`
	Status     int         `json:"status"`
	Detail     string      `json:"detail,omitempty"`
	RequestID  string      `json:"request_id,omitempty"`
	Violations []Violation `json:"violations,omitempty"`
	// InvalidParams names each field of a rejected request body.
	InvalidParams []FieldError `json:"invalid_params,omitempty"`
	// DecisionID and Bundle identify the policy decision behind a denial.
	DecisionID     string `json:"decision_id,omitempty"`
	Bundle         string `json:"bundle,omitempty"`
	BundleRevision string `json:"bundle_revision,omitempty"`
}

// Violation is one reason a policy bundle denied a request.
type Violation struct {
	Rule       string   `json:"rule"`
	Message    string   `json:"message"`
	Path       string   `json:"path,omitempty"` // JSON pointer into the request body
	ControlIDs []string `json:"control_ids,omitempty"`
}

// Identity is what GET /v1/identity returns: who the gateway believes the
// caller is, derived from Vault alone — never from fields the client sends.
type Identity struct {
	Owner       string    `json:"owner"`
	EntityID    string    `json:"entity_id,omitempty"`
	EntityName  string    `json:"entity_name,omitempty"`
	DisplayName string    `json:"display_name"`
	Policies    []string  `json:"policies"`
	Bundles     []string  `json:"bundles"`
	Token       TokenInfo `json:"token"`
}

// TokenInfo describes the caller's token without revealing it.
type TokenInfo struct {
	Type       string    `json:"type"`
	ExpireTime time.Time `json:"expire_time"`
	TTLSeconds int64     `json:"ttl_seconds"`
	Renewable  bool      `json:"renewable"`
}

// Health is the body of GET /v1/sys/health.
type Health struct {
	Status  string            `json:"status"` // "ok" or "unavailable"
	Version string            `json:"version"`
	Checks  map[string]string `json:"checks"` // dependency -> "ok" or what is wrong
}
