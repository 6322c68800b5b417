package api

import (
	"encoding/json"
	"time"
)

// Environments a request may target. A bundle allows a subset.
const (
	EnvSandbox = "sbx"
	EnvDev     = "dev"
	EnvProd    = "prod"
)

// Environments lists every environment, in escalation order.
var Environments = []string{EnvSandbox, EnvDev, EnvProd}

// Kinds of provisioning resource, as they appear in /v1/<kind> and in
// policy input.
const (
	KindIPReservation = "ip_reservation"
	KindCalmApp       = "calm_app"
	KindModuleRun     = "module_run"
)

// Kinds lists every provisioning kind (from KindTable).
var Kinds = func() []string {
	out := make([]string, len(KindTable))
	for i, k := range KindTable {
		out[i] = k.Name
	}
	return out
}()

// KindPaths maps a kind to its collection path under /v1 (from KindTable).
var KindPaths = func() map[string]string {
	out := make(map[string]string, len(KindTable))
	for _, k := range KindTable {
		out[k.Name] = k.Path
	}
	return out
}()

// Actions a request performs on a kind.
const (
	ActionCreate = "create"
	ActionRead   = "read"
	ActionUpdate = "update"
	ActionDelete = "delete"
	// ActionCancel is asked of an operation, not a resource kind.
	ActionCancel = "cancel"
)

// Actions lists every action.
var Actions = []string{ActionCreate, ActionRead, ActionUpdate, ActionDelete}

// IPReservationRequest creates an Infoblox host record with the next free
// address in Network and its DNS name.
type IPReservationRequest struct {
	Network      string   `json:"network"`            // CIDR (10.10.0.0/24) or a network name the bundle allows
	Hostname     string   `json:"hostname"`           // host label, e.g. "web-01"
	DNSZone      string   `json:"dns_zone"`           // e.g. "sbx.example.internal"
	DNSView      string   `json:"dns_view,omitempty"` // default "default"
	MAC          string   `json:"mac,omitempty"`      // aa:bb:cc:dd:ee:ff
	Aliases      []string `json:"aliases,omitempty"`  // extra FQDNs
	Comment      string   `json:"comment,omitempty"`
	ChangeTicket string   `json:"change_ticket,omitempty"` // required in prod by fedramp_prod_restricted
}

// IPReservationUpdate changes the mutable fields of a reservation.
type IPReservationUpdate struct {
	MAC          *string   `json:"mac,omitempty"`
	Aliases      *[]string `json:"aliases,omitempty"`
	Comment      *string   `json:"comment,omitempty"`
	ChangeTicket string    `json:"change_ticket,omitempty"`
}

// DeleteRequest is the optional body of a DELETE: bundles that require
// change tickets (fedramp_prod_restricted) need one here too.
type DeleteRequest struct {
	ChangeTicket string `json:"change_ticket,omitempty"`
}

// CalmAppRequest launches a Nutanix Calm application from a blueprint.
type CalmAppRequest struct {
	Name          string            `json:"name"`
	Project       string            `json:"project"`
	Blueprint     string            `json:"blueprint"`         // catalog blueprint name
	Profile       string            `json:"profile,omitempty"` // blueprint app profile, default "Default"
	Network       string            `json:"network,omitempty"` // network name or CIDR for its NICs
	IPReservation string            `json:"ip_reservation,omitempty"`
	Size          MachineSize       `json:"size"`
	Variables     map[string]string `json:"variables,omitempty"`
	// SecretVariables hold keyed digests once the gateway has them: the
	// clear values travel to the executor through Vault only.
	SecretVariables map[string]string `json:"secret_variables,omitempty"`
	PowerState      string            `json:"power_state,omitempty"`
	ChangeTicket    string            `json:"change_ticket,omitempty"`
}

// CalmAppUpdate changes a Calm app in place: its power state.
type CalmAppUpdate struct {
	PowerState   *string `json:"power_state,omitempty"`
	ChangeTicket string  `json:"change_ticket,omitempty"`
}

// DefaultCalmProfile is the app profile a launch without one uses.
const DefaultCalmProfile = "Default"

// MachineSize is what a Calm app's VMs get.
type MachineSize struct {
	VCPUs     int `json:"vcpus"`
	MemoryGiB int `json:"memory_gib"`
	DiskGiB   int `json:"disk_gib"`
}

// ModuleRunRequest runs a Terraform module from the catalog.
type ModuleRunRequest struct {
	Name    string         `json:"name"`
	Module  string         `json:"module"` // catalog module name
	Version string         `json:"version"`
	Inputs  map[string]any `json:"inputs,omitempty"`
	// SecretInputs hold keyed digests once the gateway has them.
	SecretInputs map[string]string `json:"secret_inputs,omitempty"`
	ChangeTicket string            `json:"change_ticket,omitempty"`
}

// ModuleRunUpdate re-runs a module with another version or other inputs
// (inputs, when sent, replace the previous ones whole).
//
// A nil map is a field not sent: the run keeps what it had. An empty one
// is sent, and replaces what the run had with nothing ({} removes every
// input). omitzero, not omitempty, keeps the two apart where the update
// is stored and read back (its JSON): only a nil map is left out.
type ModuleRunUpdate struct {
	Version      string            `json:"version,omitempty"`
	Inputs       map[string]any    `json:"inputs,omitzero"`
	SecretInputs map[string]string `json:"secret_inputs,omitzero"`
	ChangeTicket string            `json:"change_ticket,omitempty"`
}

// LayOver is the run this update makes of spec, the run's stored spec: a
// version sent replaces spec's; inputs or secret inputs sent (even empty)
// replace spec's whole; the change ticket stays spec's (it is the
// update's own). The executor runs it and admission checks it, so the two
// cannot disagree.
func (u *ModuleRunUpdate) LayOver(spec ModuleRunRequest) ModuleRunRequest {
	if u.Version != "" {
		spec.Version = u.Version
	}
	if u.Inputs != nil {
		spec.Inputs = u.Inputs
	}
	if u.SecretInputs != nil {
		spec.SecretInputs = u.SecretInputs
	}
	return spec
}

// DecisionRequest is the body of POST /v1/decisions: what would happen if
// this request were made. Request is the body the caller would send; the
// bundle and environment come from the same headers as every request.
type DecisionRequest struct {
	Kind     string `json:"kind"`
	Action   string `json:"action"`
	TargetID string `json:"target_id,omitempty"`
	// Request is kept as sent and decoded by the mutation's own decoder.
	Request json.RawMessage `json:"request,omitempty"`
}

// OperationLog is what an operation's steps printed (GET /v1/operations/{id}/log),
// secrets redacted.
type OperationLog struct {
	OperationID string             `json:"operation_id"`
	Steps       []OperationLogStep `json:"steps"`
}

// OperationLogStep is one step's output.
type OperationLogStep struct {
	Attempt int       `json:"attempt"`
	At      time.Time `json:"at"`
	Text    string    `json:"text"`
}

// Operation is a long-running provisioning request (GET /v1/operations/{id}).
type Operation struct {
	ID          string         `json:"id"`
	Kind        string         `json:"kind"`
	Action      string         `json:"action"`
	TargetID    string         `json:"target_id,omitempty"`
	State       string         `json:"state"` // pending, running, succeeded, failed, cancelled
	Attempts    int            `json:"attempts"`
	Owner       string         `json:"owner"`
	Bundle      string         `json:"bundle"`
	Environment string         `json:"environment"`
	RequestID   string         `json:"request_id"`
	DecisionID  string         `json:"decision_id"`
	CreatedAt   time.Time      `json:"created_at"`
	UpdatedAt   time.Time      `json:"updated_at"`
	Result      map[string]any `json:"result,omitempty"`
	Error       string         `json:"error,omitempty"`
	// Progress is what a long-running operation last reported while it
	// waits on its downstream system ("launch running, 3 of 5 VMs up").
	Progress string `json:"progress,omitempty"`
	// CancelRequested: a cancel was asked for; it takes effect at the next step.
	CancelRequested bool `json:"cancel_requested,omitempty"`
	// BundleRevision is the bundle revision that admitted the operation:
	// the one it is executed and judged by.
	BundleRevision string `json:"bundle_revision,omitempty"`
}

// Operation states.
const (
	OperationPending   = "pending"
	OperationRunning   = "running"
	OperationSucceeded = "succeeded"
	OperationFailed    = "failed"
	OperationCancelled = "cancelled"
)

// Resource is something sas provisioned and manages (GET /v1/<kind>/{id}).
type Resource struct {
	ID          string          `json:"id"`
	Kind        string          `json:"kind"`
	Owner       string          `json:"owner"`
	Bundle      string          `json:"bundle"`
	Environment string          `json:"environment"`
	Spec        json.RawMessage `json:"spec"`       // what was asked for
	Attributes  map[string]any  `json:"attributes"` // what the downstream assigned
	Drift       []Drift         `json:"drift,omitempty"`
	OperationID string          `json:"operation_id"`
	CreatedAt   time.Time       `json:"created_at"`
	UpdatedAt   time.Time       `json:"updated_at"`
}

// Drift is a difference between what sas recorded and what the downstream
// system now holds, changed outside sas.
type Drift struct {
	Field string `json:"field"`
	Want  string `json:"want"`
	Got   string `json:"got"`
}

// BundleSummary is one entry of GET /v1/bundles.
type BundleSummary struct {
	Name        string    `json:"name"`
	Revision    string    `json:"revision"`
	Description string    `json:"description"`
	Signed      bool      `json:"signed"`
	LoadedAt    time.Time `json:"loaded_at"`
	Error       string    `json:"error,omitempty"`
}

// BundleDetail is GET /v1/bundles/{name}: the bundle's declared rules.
type BundleDetail struct {
	BundleSummary
	Data map[string]any `json:"data"`
}

// Catalog is GET /v1/catalog: what this caller may provision with this
// bundle in this environment.
type Catalog struct {
	Bundle      string              `json:"bundle"`
	Revision    string              `json:"revision"`
	Environment string              `json:"environment"`
	Actions     map[string][]string `json:"actions"` // kind -> actions
	Networks    []CatalogNetwork    `json:"networks"`
	DNSZones    []string            `json:"dns_zones"`
	Blueprints  []CatalogEntry      `json:"blueprints"`
	Modules     []CatalogModule     `json:"modules"`
	Limits      map[string]int      `json:"limits"`
	// ChangeTicketRequired: mutations need a change_ticket.
	ChangeTicketRequired bool `json:"change_ticket_required"`
}

// CatalogNetwork is a network the caller may use.
type CatalogNetwork struct {
	Name        string `json:"name"`
	CIDR        string `json:"cidr"`
	Description string `json:"description,omitempty"`
}

// CatalogEntry is a named catalog item.
type CatalogEntry struct {
	Name        string `json:"name"`
	Level       string `json:"level,omitempty"`
	Description string `json:"description,omitempty"`
}

// CatalogModule is a module the caller may run.
type CatalogModule struct {
	Name        string   `json:"name"`
	Versions    []string `json:"versions"`
	Description string   `json:"description,omitempty"`
}

// AuditPage is GET /v1/audit.
type AuditPage struct {
	Records []map[string]any `json:"records"`
	Next    string           `json:"next,omitempty"`
}

// Decision is a policy bundle's answer.
type Decision struct {
	Allow      bool        `json:"allow"`
	Violations []Violation `json:"violations"`
	Bundle     string      `json:"bundle"`
	Revision   string      `json:"revision"`
	DecisionID string      `json:"decision_id"`
}
