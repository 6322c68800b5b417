package api

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

// Kinds lists every provisioning kind.
var Kinds = []string{KindIPReservation, KindCalmApp, KindModuleRun}

// KindPaths maps a kind to its collection path under /v1.
var KindPaths = map[string]string{
	KindIPReservation: "ip-reservations",
	KindCalmApp:       "calm-apps",
	KindModuleRun:     "module-runs",
}

// Actions a request performs on a kind.
const (
	ActionCreate = "create"
	ActionRead   = "read"
	ActionUpdate = "update"
	ActionDelete = "delete"
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

// CalmAppRequest launches a Nutanix Calm application from a blueprint.
type CalmAppRequest struct {
	Name         string            `json:"name"`
	Blueprint    string            `json:"blueprint"`         // catalog blueprint name
	Profile      string            `json:"profile,omitempty"` // blueprint app profile, default "Default"
	Project      string            `json:"project,omitempty"`
	Network      string            `json:"network"` // network name or CIDR for its NICs
	Size         MachineSize       `json:"size"`
	Variables    map[string]string `json:"variables,omitempty"`
	ChangeTicket string            `json:"change_ticket,omitempty"`
}

// MachineSize is what a Calm app's VMs get.
type MachineSize struct {
	VCPUs     int `json:"vcpus"`
	MemoryGiB int `json:"memory_gib"`
	DiskGiB   int `json:"disk_gib"`
}

// ModuleRunRequest runs a Terraform module from the catalog.
type ModuleRunRequest struct {
	Module       string         `json:"module"` // catalog module name
	Version      string         `json:"version,omitempty"`
	Variables    map[string]any `json:"variables,omitempty"`
	ChangeTicket string         `json:"change_ticket,omitempty"`
}

// DecisionRequest is the body of POST /v1/decisions: what would happen if
// this request were made. Request is the body the caller would send.
type DecisionRequest struct {
	Kind        string         `json:"kind"`
	Action      string         `json:"action"`
	Bundle      string         `json:"bundle,omitempty"`      // default: X-Sas-Policy-Bundle
	Environment string         `json:"environment,omitempty"` // default: X-Sas-Environment
	Request     map[string]any `json:"request"`
}

// Decision is a policy bundle's answer.
type Decision struct {
	Allow      bool        `json:"allow"`
	Violations []Violation `json:"violations"`
	Bundle     string      `json:"bundle"`
	Revision   string      `json:"revision"`
	DecisionID string      `json:"decision_id"`
}
