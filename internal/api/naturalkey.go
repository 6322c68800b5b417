package api

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
)

// ProblemNaturalKeyConflict: a create names a downstream object (by its
// natural key) that exists already and cannot be adopted by this request.
const ProblemNaturalKeyConflict = "urn:sas:problem:already-exists"

// NaturalKeyed is a create request whose downstream object has a natural
// key: the name its creator gives it (view + FQDN for an IP reservation,
// project + app name for a Calm app). A create that finds its key already
// made for the same owner, bundle and environment with the same spec adopts
// that object instead of making a second one, so an apply re-run after any
// crash converges.
type NaturalKeyed interface {
	Validator
	// NaturalKey names the object the create would make, unique per kind.
	NaturalKey() string
	// ObjectSpec is the request as a description of the object: defaults
	// filled in, without what only authorises the request (change tickets).
	// Two creates with equal specs would make the same object.
	ObjectSpec() any
}

var (
	_ NaturalKeyed     = (*IPReservationRequest)(nil)
	_ NaturalKeyed     = (*CalmAppRequest)(nil)
	_ EnvironmentKeyed = (*ModuleRunRequest)(nil)
)

// EnvironmentKeyed is a NaturalKeyed whose name is the gateway's own, not
// a downstream system's: a module run's name names nothing outside sas
// (its state is kept by resource id). Such names are unique per
// environment, so a caller in one environment can neither take a name
// another environment uses nor learn that it exists there.
type EnvironmentKeyed interface {
	NaturalKeyed
	// KeyedPerEnvironment marks the kind; it does nothing.
	KeyedPerEnvironment()
}

// NaturalKeyIn is the key o is stored and looked up by when made in
// environment: its NaturalKey, prefixed by the environment for an
// EnvironmentKeyed kind ("prod/ledger-window"; environment names and
// module run names hold no '/', so the prefix cannot be forged).
// Downstream names (IP reservations, Calm apps) are one namespace across
// environments, as the downstream system has them.
func NaturalKeyIn(o NaturalKeyed, environment string) string {
	if _, ok := o.(EnvironmentKeyed); ok {
		return environment + "/" + o.NaturalKey()
	}
	return o.NaturalKey()
}

// DefaultDNSView is the Infoblox DNS view a reservation without one goes to.
const DefaultDNSView = "default"

// NaturalKey is the DNS view and FQDN: Infoblox holds one host per name and view.
func (r *IPReservationRequest) NaturalKey() string {
	view := r.DNSView
	if view == "" {
		view = DefaultDNSView
	}
	return view + "/" + r.Hostname + "." + r.DNSZone
}

func (r *IPReservationRequest) ObjectSpec() any {
	s := *r
	s.ChangeTicket = ""
	if s.DNSView == "" {
		s.DNSView = DefaultDNSView
	}
	if len(s.Aliases) == 0 {
		s.Aliases = nil
	}
	return s
}

// NaturalKey is the project and app name: Calm names apps uniquely per project.
func (r *CalmAppRequest) NaturalKey() string { return r.Project + "/" + r.Name }

func (r *CalmAppRequest) ObjectSpec() any {
	s := *r
	// The power state is where the app is now, not which app it is.
	s.ChangeTicket, s.PowerState = "", ""
	if s.Profile == "" {
		s.Profile = DefaultCalmProfile
	}
	return s
}

// NaturalKey is the run's name; it is unique per environment (NaturalKeyIn).
func (r *ModuleRunRequest) NaturalKey() string { return r.Name }

// KeyedPerEnvironment: module run names are unique per environment.
func (r *ModuleRunRequest) KeyedPerEnvironment() {}

func (r *ModuleRunRequest) ObjectSpec() any {
	s := *r
	s.ChangeTicket = ""
	if len(s.Inputs) == 0 {
		s.Inputs = nil
	}
	return s
}

// SpecDiff compares a stored object spec (the create request, with later
// updates laid over it) with a new create request of the same kind, and
// names the fields that differ; none means the request describes that object.
func SpecDiff(kind string, stored []byte, req NaturalKeyed) ([]string, error) {
	prev, ok := NewRequestBody(kind, ActionCreate).(NaturalKeyed)
	if !ok {
		return nil, fmt.Errorf("%s has no natural key", kind)
	}
	if err := json.Unmarshal(stored, prev); err != nil {
		return nil, fmt.Errorf("stored %s spec: %w", kind, err)
	}
	a, err := AsMap(prev.ObjectSpec())
	if err != nil {
		return nil, err
	}
	b, err := AsMap(req.ObjectSpec())
	if err != nil {
		return nil, err
	}
	var diff []string
	for k := range a {
		if _, ok := b[k]; !ok {
			diff = append(diff, k)
		}
	}
	for k, v := range b {
		x, _ := json.Marshal(a[k])
		y, _ := json.Marshal(v)
		if _, ok := a[k]; !ok || !bytes.Equal(x, y) {
			diff = append(diff, k)
		}
	}
	slices.Sort(diff)
	return slices.Compact(diff), nil
}
