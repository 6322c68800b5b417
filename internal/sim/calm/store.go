package calm

import (
	"bytes"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"sort"
	"time"
)

// store is Calm's database. It is guarded by Server.mu; nothing in it locks
// on its own. States that change with time (a launch finishing, an app
// going from provisioning to running) are not stored as they happen: each
// entity keeps the timestamps of its transition and the state is worked
// out from them and the clock when asked, so a restart or a fake clock
// sees exactly what a running server would.
type store struct {
	Projects     []*project     `json:"projects"`
	Environments []*environment `json:"environments"`
	Blueprints   []*blueprint   `json:"blueprints"`
	Launches     []*launch      `json:"launches"`
	Apps         []*app         `json:"apps"`
	Runlogs      []*runlog      `json:"runlogs"`
}

type project struct {
	UUID        string    `json:"uuid"`
	Name        string    `json:"name"`
	Description string    `json:"description"`
	Created     time.Time `json:"created"`
}

type environment struct {
	UUID        string    `json:"uuid"`
	Name        string    `json:"name"`
	ProjectUUID string    `json:"project_uuid"`
	Created     time.Time `json:"created"`
}

type blueprint struct {
	UUID        string     `json:"uuid"`
	Name        string     `json:"name"`
	Description string     `json:"description"`
	ProjectUUID string     `json:"project_uuid"`
	State       string     `json:"state"` // ACTIVE, DRAFT, ERROR, DELETED
	Created     time.Time  `json:"created"`
	Profiles    []*profile `json:"profiles"`
	// Simulation knobs, re-read from the seed at every start.
	FailLaunches   bool   `json:"fail_launches,omitempty"`
	FailProvisions bool   `json:"fail_provisions,omitempty"`
	FailMessage    string `json:"fail_message,omitempty"`
}

type profile struct {
	UUID        string        `json:"uuid"`
	Name        string        `json:"name"`
	Deployments []*deployment `json:"deployments"`
	Variables   []*variable   `json:"variables"`
}

type deployment struct {
	UUID     string `json:"uuid"`
	Name     string `json:"name"` // service name, e.g. "web"
	Replicas int    `json:"replicas"`
	Image    string `json:"image"`
}

type variable struct {
	UUID        string `json:"uuid"`
	Name        string `json:"name"`
	Type        string `json:"type"`       // LOCAL or SECRET
	ValueType   string `json:"value_type"` // STRING or INT
	Value       string `json:"value"`      // default; always "" for SECRET
	Label       string `json:"label,omitempty"`
	Description string `json:"description,omitempty"`
	Runtime     bool   `json:"runtime"` // runtime editable
}

// launch is a simple_launch request. The app it makes is in Apps from the
// start (so its name and addresses are taken at once) but is visible only
// once the launch has succeeded.
type launch struct {
	RequestID     string    `json:"request_id"`
	BlueprintUUID string    `json:"bp_uuid"`
	AppName       string    `json:"app_name"`
	AppUUID       string    `json:"app_uuid,omitempty"` // empty when the launch fails
	Requested     time.Time `json:"requested"`
	Done          time.Time `json:"done"` // running until then
	Failed        bool      `json:"failed,omitempty"`
	Message       string    `json:"message,omitempty"`
}

func (l *launch) state(now time.Time) string {
	switch {
	case now.Before(l.Done):
		return "running"
	case l.Failed:
		return "failure"
	default:
		return "success"
	}
}

type app struct {
	UUID          string      `json:"uuid"`
	Name          string      `json:"name"`
	Description   string      `json:"description"`
	ProjectUUID   string      `json:"project_uuid"`
	BlueprintUUID string      `json:"bp_uuid"`
	ProfileUUID   string      `json:"profile_uuid"`
	Owner         string      `json:"owner"`
	Visible       time.Time   `json:"visible"` // the launch's success; before it the app does not exist
	Updated       time.Time   `json:"updated"`
	Variables     []*appVar   `json:"variables"`
	VMs           []*vm       `json:"vms"`
	State         string      `json:"state"`             // settled state
	Current       *transition `json:"current,omitempty"` // in flight, or done and not folded yet
	SoftDeleted   bool        `json:"soft_deleted,omitempty"`
	Purged        bool        `json:"purged,omitempty"` // vanished out of band: 404 from now on
	Network       string      `json:"network"`
}

type appVar struct {
	UUID  string `json:"uuid"`
	Name  string `json:"name"`
	Type  string `json:"type"`
	Value string `json:"value,omitempty"` // never set for SECRET
	// SecretSHA256 is the hex SHA-256 of a SECRET's value as sent at
	// launch ("" when none was sent): enough to check it arrived, useless
	// to recover it.
	SecretSHA256 string `json:"secret_sha256,omitempty"`
	Label        string `json:"label,omitempty"`
	ValueType    string `json:"value_type,omitempty"`
}

type vm struct {
	UUID       string `json:"uuid"`
	Name       string `json:"name"`
	Deployment string `json:"deployment"`
	Index      int    `json:"index"`
	Address    string `json:"address"`
	MAC        string `json:"mac"`
	Image      string `json:"image"`
	VCPUs      int    `json:"vcpus"`
	MemoryGiB  int    `json:"memory_gib"`
	DiskGiB    int    `json:"disk_gib"`
	// PowerOverride pins the power state: set out of band (someone used
	// Prism directly; the next action clears it) or frozen when a delete
	// starts.
	PowerOverride string `json:"power_override,omitempty"`
}

// transition is an app moving from one state to another: Transient until
// End, then Target.
type transition struct {
	Action     string    `json:"action"`
	Transient  string    `json:"transient"`
	Target     string    `json:"target"`
	Start      time.Time `json:"start"`
	End        time.Time `json:"end"`
	RunlogUUID string    `json:"runlog_uuid"`
}

type runlog struct {
	UUID       string    `json:"uuid"`
	AppUUID    string    `json:"app_uuid"`
	RootUUID   string    `json:"root_uuid"`
	ParentUUID string    `json:"parent_uuid"`
	Type       string    `json:"type"` // action_runlog or task_runlog
	Action     string    `json:"action"`
	ActionUUID string    `json:"action_uuid"`
	Task       string    `json:"task,omitempty"`
	TaskUUID   string    `json:"task_uuid,omitempty"`
	User       string    `json:"user"`
	Start      time.Time `json:"start"`
	End        time.Time `json:"end"`
	Failed     bool      `json:"failed,omitempty"`
	Aborted    bool      `json:"aborted,omitempty"`
	Output     []string  `json:"output"`
}

// stateAt is the app's state at now.
func (a *app) stateAt(now time.Time) string {
	if a.Current != nil {
		if now.Before(a.Current.End) {
			return a.Current.Transient
		}
		return a.Current.Target
	}
	return a.State
}

// fold settles a finished transition, so a new one can start.
func (a *app) fold(now time.Time) {
	if a.Current != nil && !now.Before(a.Current.End) {
		a.State = a.Current.Target
		a.Current = nil
	}
}

// visible reports whether the app exists at now: its launch has succeeded
// and it has not vanished.
func (a *app) visible(now time.Time) bool { return !a.Purged && !now.Before(a.Visible) }

// lastUpdate is when the app last changed, counting a transition that
// finished on its own.
func (a *app) lastUpdate(now time.Time) time.Time {
	t := a.Updated
	if a.Current != nil {
		if !now.Before(a.Current.End) && a.Current.End.After(t) {
			t = a.Current.End
		} else if !now.Before(a.Current.Start) && a.Current.Start.After(t) {
			t = a.Current.Start
		}
	}
	return t
}

// power is vm's power state at now.
func (a *app) power(now time.Time, v *vm) string {
	if v.PowerOverride != "" {
		return v.PowerOverride
	}
	switch a.stateAt(now) {
	case "running", "stopping", "restarting":
		return "ON"
	}
	return "OFF"
}

// holdsAddresses reports whether the app's VMs still exist (and so keep
// their addresses): everything but a finished hard delete or a vanished app.
func (a *app) holdsAddresses(now time.Time) bool {
	if a.Purged {
		return false
	}
	return a.stateAt(now) != "deleted" || a.SoftDeleted
}

func (r *runlog) state(now time.Time) string {
	switch {
	case r.Aborted:
		return "ABORTED"
	case now.Before(r.End):
		return "RUNNING"
	case r.Failed:
		return "FAILURE"
	default:
		return "SUCCESS"
	}
}

// --- state file ------------------------------------------------------------

const stateFormat = 1

type stateFile struct {
	Format int `json:"format"`
	*store
}

func (st *store) marshal() ([]byte, error) {
	return json.MarshalIndent(stateFile{Format: stateFormat, store: st}, "", " ")
}

// loadState reads path; a missing file is an empty Calm.
func loadState(path string) (*store, error) {
	st := &store{}
	raw, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return st, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read state file: %w", err)
	}
	f := stateFile{store: st}
	dec := json.NewDecoder(bytes.NewReader(raw))
	if err := dec.Decode(&f); err != nil {
		return nil, fmt.Errorf("state file %s is not valid: %w", path, err)
	}
	if f.Format != stateFormat {
		return nil, fmt.Errorf("state file %s has format %d, want %d", path, f.Format, stateFormat)
	}
	return st, nil
}

// --- lookups ------------------------------------------------------------

func (st *store) project(uuid string) *project {
	for _, p := range st.Projects {
		if p.UUID == uuid {
			return p
		}
	}
	return nil
}

func (st *store) projectByName(name string) *project {
	for _, p := range st.Projects {
		if p.Name == name {
			return p
		}
	}
	return nil
}

func (st *store) environment(uuid string) *environment {
	for _, e := range st.Environments {
		if e.UUID == uuid {
			return e
		}
	}
	return nil
}

func (st *store) blueprint(uuid string) *blueprint {
	for _, b := range st.Blueprints {
		if b.UUID == uuid {
			return b
		}
	}
	return nil
}

func (st *store) app(uuid string) *app {
	for _, a := range st.Apps {
		if a.UUID == uuid {
			return a
		}
	}
	return nil
}

func (st *store) launch(requestID string) *launch {
	for _, l := range st.Launches {
		if l.RequestID == requestID {
			return l
		}
	}
	return nil
}

func (st *store) runlog(uuid string) *runlog {
	for _, r := range st.Runlogs {
		if r.UUID == uuid {
			return r
		}
	}
	return nil
}

func (b *blueprint) profile(uuid, name string) *profile {
	for _, p := range b.Profiles {
		if (uuid == "" || p.UUID == uuid) && (name == "" || p.Name == name) {
			return p
		}
	}
	return nil
}

func (p *profile) variable(name string) *variable {
	for _, v := range p.Variables {
		if v.Name == name {
			return v
		}
	}
	return nil
}

func (p *profile) variableByUUID(uuid string) *variable {
	for _, v := range p.Variables {
		if v.UUID == uuid {
			return v
		}
	}
	return nil
}

func (p *profile) vmCount() int {
	n := 0
	for _, d := range p.Deployments {
		n += d.Replicas
	}
	return n
}

// newUUID returns a random (version 4) UUID.
func newUUID() string {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(err) // crypto/rand does not fail on supported platforms
	}
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

// isUUID reports whether s has the 8-4-4-4-12 hex shape.
func isUUID(s string) bool {
	if len(s) != 36 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch i {
		case 8, 13, 18, 23:
			if c != '-' {
				return false
			}
		default:
			if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F') {
				return false
			}
		}
	}
	return true
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// usecs is Calm's timestamp format: microseconds since the epoch, as a
// decimal string.
func usecs(t time.Time) string {
	return fmt.Sprintf("%d", t.UnixMicro())
}
