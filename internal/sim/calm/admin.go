package calm

import (
	"fmt"
	"sort"
	"time"
)

// --- admin view (tests, demos, drift) -----------------------------------------
//
// These reach past the API, as an operator in Prism would, so tests can see
// what Calm holds and change it behind a client's back. Clients must use
// the API.

// AppSnapshot is an app as Calm holds it. Secrets appear only as hashes.
type AppSnapshot struct {
	UUID          string
	Name          string
	Description   string
	Project       string
	ProjectUUID   string
	Blueprint     string
	BlueprintUUID string
	Profile       string
	Owner         string
	State         string
	Created       time.Time
	// Variables are the non-secret variables and their values.
	Variables map[string]string
	// SecretHashes maps each SECRET variable sent at launch to the
	// SecretSHA256 of its value.
	SecretHashes map[string]string
	VMs          []VMSnapshot
	// SoftDeleted is set on apps deleted with ?type=soft: gone from Calm,
	// VMs left alone.
	SoftDeleted bool
}

// VMSnapshot is one VM of an app.
type VMSnapshot struct {
	Name       string
	UUID       string
	Deployment string
	Address    string
	MAC        string
	PowerState string // ON or OFF
	VCPUs      int
	MemoryGiB  int
	DiskGiB    int
	// Exists is false once a hard delete has finished (the VM is gone).
	Exists bool
}

// Apps returns every app that exists now (deleted ones included, vanished
// ones not), oldest first.
func (s *Server) Apps() []AppSnapshot {
	s.mu.RLock()
	defer s.mu.RUnlock()
	now := s.now()
	out := []AppSnapshot{}
	for _, a := range s.st.Apps {
		if !a.visible(now) {
			continue
		}
		snap := AppSnapshot{UUID: a.UUID, Name: a.Name, Description: a.Description, ProjectUUID: a.ProjectUUID,
			BlueprintUUID: a.BlueprintUUID, Owner: a.Owner, State: a.stateAt(now), Created: a.Visible,
			Variables: map[string]string{}, SecretHashes: map[string]string{}, SoftDeleted: a.SoftDeleted}
		if p := s.st.project(a.ProjectUUID); p != nil {
			snap.Project = p.Name
		}
		if b := s.st.blueprint(a.BlueprintUUID); b != nil {
			snap.Blueprint = b.Name
			if p := b.profile(a.ProfileUUID, ""); p != nil {
				snap.Profile = p.Name
			}
		}
		for _, v := range a.Variables {
			if v.Type == "SECRET" {
				if v.SecretSHA256 != "" {
					snap.SecretHashes[v.Name] = v.SecretSHA256
				}
				continue
			}
			snap.Variables[v.Name] = v.Value
		}
		exists := a.holdsAddresses(now)
		for _, v := range a.VMs {
			snap.VMs = append(snap.VMs, VMSnapshot{Name: v.Name, UUID: v.UUID, Deployment: v.Deployment, Address: v.Address,
				MAC: v.MAC, PowerState: a.power(now, v), VCPUs: v.VCPUs, MemoryGiB: v.MemoryGiB, DiskGiB: v.DiskGiB, Exists: exists})
		}
		out = append(out, snap)
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Created.Before(out[j].Created) })
	return out
}

// appStates are the states SetAppState accepts: the settled ones Calm
// reports, including those the simulator never reaches on its own.
var appStates = map[string]bool{"provisioning": true, "running": true, "stopped": true, "error": true,
	"deleting": true, "deleted": true, "starting": true, "stopping": true, "restarting": true,
	"busy": true, "timeout": true, "updating": true}

// SetAppState pins an app's state (ending whatever it was doing), as if
// something outside the client had moved it.
func (s *Server) SetAppState(uuid, state string) error {
	if !appStates[state] {
		return fmt.Errorf("calm simulator: %q is not an app state", state)
	}
	return s.adminChange(uuid, func(st *store, a *app, now time.Time) {
		st.abort(a, now)
		a.Current = nil
		a.State = state
		a.Updated = now
	})
}

// DeleteAppOutOfBand deletes an app at once, VMs and all, as someone in
// Prism would: it is listed as deleted from now on and its addresses are
// free.
func (s *Server) DeleteAppOutOfBand(uuid string) error {
	return s.adminChange(uuid, func(st *store, a *app, now time.Time) {
		st.abort(a, now)
		st.addRunlogs(a, "action_delete", "Delete VMs", "prism-admin", now, now, false,
			[]string{"Deleted in Prism by an administrator"})
		a.Current = nil
		a.State = "deleted"
		a.SoftDeleted = false
		a.Updated = now
	})
}

// PurgeAppOutOfBand makes an app vanish: GET answers 404 and lists leave
// it out, as after a cleanup in Calm's database.
func (s *Server) PurgeAppOutOfBand(uuid string) error {
	return s.adminChange(uuid, func(st *store, a *app, now time.Time) {
		st.abort(a, now)
		a.Purged = true
		a.Updated = now
	})
}

// AppChange is an edit made outside Calm's API. Nil fields are left alone.
type AppChange struct {
	Description *string
	// Variables sets non-secret variable values (a name the app lacks is an error).
	Variables map[string]string
	VCPUs     *int
	MemoryGiB *int
	DiskGiB   *int
	// PowerState pins every VM's power state ("ON" or "OFF") until the
	// next action.
	PowerState *string
}

// ChangeAppOutOfBand applies change to an app, as an edit in Prism would.
func (s *Server) ChangeAppOutOfBand(uuid string, change AppChange) error {
	if change.PowerState != nil && *change.PowerState != "ON" && *change.PowerState != "OFF" {
		return fmt.Errorf("calm simulator: power state %q is not ON or OFF", *change.PowerState)
	}
	for name := range change.Variables {
		if name == "" {
			return fmt.Errorf("calm simulator: a variable has no name")
		}
	}
	var bad string
	err := s.adminChange(uuid, func(_ *store, a *app, now time.Time) {
		byName := map[string]*appVar{}
		for _, v := range a.Variables {
			if v.Type != "SECRET" {
				byName[v.Name] = v
			}
		}
		for _, name := range sortedKeys(change.Variables) {
			if byName[name] == nil {
				bad = name
				return
			}
		}
		for name, val := range change.Variables {
			byName[name].Value = val
		}
		if change.Description != nil {
			a.Description = *change.Description
		}
		for _, v := range a.VMs {
			if change.VCPUs != nil {
				v.VCPUs = *change.VCPUs
			}
			if change.MemoryGiB != nil {
				v.MemoryGiB = *change.MemoryGiB
			}
			if change.DiskGiB != nil {
				v.DiskGiB = *change.DiskGiB
			}
			if change.PowerState != nil {
				v.PowerOverride = *change.PowerState
			}
		}
		a.Updated = now
	})
	if err == nil && bad != "" {
		return fmt.Errorf("calm simulator: app %s has no non-secret variable %s", uuid, bad)
	}
	return err
}

func (s *Server) adminChange(uuid string, fn func(st *store, a *app, now time.Time)) error {
	aerr := s.change(func(st *store, now time.Time) *apiError {
		a := st.app(uuid)
		if a == nil || !a.visible(now) {
			return errNotFound("app", uuid)
		}
		a.fold(now)
		fn(st, a, now)
		return nil
	})
	if aerr != nil {
		return fmt.Errorf("calm simulator: %s", aerr.message)
	}
	return nil
}

// Blueprint returns the uuid and state of the blueprint called name in
// project (tests use it to address a blueprint without listing).
func (s *Server) Blueprint(project, name string) (uuid, state string, ok bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	p := s.st.projectByName(project)
	if p == nil {
		return "", "", false
	}
	for _, b := range s.st.Blueprints {
		if b.ProjectUUID == p.UUID && b.Name == name {
			return b.UUID, b.State, true
		}
	}
	return "", "", false
}
