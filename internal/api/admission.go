package api

import (
	"reflect"
	"time"
)

// CancelRequest is the optional body of POST /v1/operations/{id}/cancel: a
// change ticket, where the operation's bundle asks one of the action the
// cancel undoes (cancelling a prod create deletes what it made).
type CancelRequest = DeleteRequest

// Problem types of the admission rules between kinds and operations.
const (
	// ProblemInUse: the resource is referenced by another live resource
	// (an IP reservation a Calm app sits on) and cannot be deleted.
	ProblemInUse = "urn:sas:problem:in-use"
	// ProblemCannotCancel: the operation runs a step its kind cannot stop midway.
	ProblemCannotCancel = "urn:sas:problem:cannot-cancel-now"
	// ProblemTooManyUnfinished: the caller has as many unfinished
	// operations of the kind as it may (Settings.MaxUnfinishedPerCaller).
	ProblemTooManyUnfinished = "urn:sas:problem:too-many-unfinished"
)

// CancelsWhileRunning reports whether a cancel may be accepted while one of
// kind's steps runs (the step's end sees it and compensates), or only
// between steps (Settings.Uninterruptible).
func CancelsWhileRunning(kind string) bool {
	k, ok := KindByName(kind)
	return ok && !k.Settings.Uninterruptible
}

// Referrer is a field of one kind that names resources of another.
type Referrer struct {
	Kind  string // the kind holding the reference
	Field string // its field, as JSON names it
}

// ReferrersOf lists the fields, in every kind's create, that name a
// resource of kind (Field.References): what must be checked before such a
// resource goes away.
func ReferrersOf(kind string) []Referrer {
	var out []Referrer
	for _, name := range Kinds {
		k, _ := KindByName(name)
		for _, f := range k.Create.Fields {
			if f.References == kind {
				out = append(out, Referrer{Kind: name, Field: f.Name})
			}
		}
	}
	return out
}

// Approval is what admission resolved from the bundle revision that
// allowed an operation (and from the gateway's configuration), stored on
// the operation so its executor runs exactly what was approved — a bundle
// or catalog reloaded in between changes nothing.
type Approval struct {
	// BundleRevision is the revision whose decision admitted the operation;
	// anything judged later (a module run's plan) is judged by it.
	BundleRevision string `json:"bundle_revision"`
	// NetworkCIDR is the request's network as that revision resolved it
	// (a name the bundle declares, or a CIDR as given).
	NetworkCIDR string `json:"network_cidr,omitempty"`
	// References are the resources the request names (the kinds table's
	// References), by field, as they were when it was admitted.
	References map[string]ApprovedReference `json:"references,omitempty"`
	// Module is the catalog module version a module run was approved for.
	Module *ApprovedModule `json:"module,omitempty"`
}

// ApprovedReference is a resource a request refers to.
type ApprovedReference struct {
	Kind       string         `json:"kind"`
	ID         string         `json:"id"`
	Attributes map[string]any `json:"attributes,omitempty"`
	// NetworkCIDR is the referenced resource's network, resolved like the
	// request's own (a reservation's network, for the app that sits on it).
	NetworkCIDR string `json:"network_cidr,omitempty"`
}

// ApprovedModule is the catalog entry a module run was admitted for.
type ApprovedModule struct {
	Name    string `json:"name"`
	Version string `json:"version"`
	// SHA256 is the approved source's digest: a source changed since is refused.
	SHA256 string `json:"sha256"`
	// StepTimeout bounds each of its steps (the catalog's per-module limit;
	// zero: the kind's).
	StepTimeout time.Duration `json:"step_timeout,omitempty"`
}

// NetworkRefs lists v's fields that name a network (a bundle's network
// name or a CIDR): what admission resolves to the CIDR the approving
// bundle revision gives it.
func NetworkRefs(kind, action string, v Validator) []string {
	var out []string
	eachField(kind, action, v, func(f Field, fv reflect.Value) {
		if f.Rule == ruleNetwork && fv.Kind() == reflect.String && fv.String() != "" {
			out = append(out, fv.String())
		}
	})
	return out
}
