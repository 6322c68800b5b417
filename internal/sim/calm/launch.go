package calm

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"time"
)

// launchRequest is the body of POST /blueprints/{uuid}/simple_launch.
type launchRequest struct {
	Spec *struct {
		AppName             string `json:"app_name"`
		AppDescription      string `json:"app_description"`
		AppProfileReference *struct {
			Kind string `json:"kind"`
			Name string `json:"name"`
			UUID string `json:"uuid"`
		} `json:"app_profile_reference"`
		RuntimeEditables *struct {
			VariableList []launchVariable `json:"variable_list"`
		} `json:"runtime_editables"`
	} `json:"spec"`
}

type launchVariable struct {
	UUID    string          `json:"uuid"`
	Name    string          `json:"name"`
	Context string          `json:"context"`
	Value   json.RawMessage `json:"value"`
}

// launchValue reads a variable's value: {"value": "..."} as Calm sends it,
// tolerating a number or bool there (clients built from blueprint JSON
// send them) and a bare string.
func launchValue(raw json.RawMessage) (string, bool) {
	var obj struct {
		Value json.RawMessage `json:"value"`
	}
	if len(raw) > 0 && raw[0] == '{' {
		if json.Unmarshal(raw, &obj) != nil {
			return "", false
		}
		raw = obj.Value
	}
	if len(raw) == 0 {
		return "", true
	}
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return s, true
	}
	var n json.Number
	if json.Unmarshal(raw, &n) == nil {
		return n.String(), true
	}
	var b bool
	if json.Unmarshal(raw, &b) == nil {
		return strconv.FormatBool(b), true
	}
	return "", false
}

// SecretSHA256 is how the simulator keeps a secret: the hex SHA-256 of its
// value. Tests compare it with AppSnapshot.SecretHashes.
func SecretSHA256(value string) string {
	h := sha256.Sum256([]byte(value))
	return hex.EncodeToString(h[:])
}

const defaultFailMessage = "simulated failure"

func (s *Server) simpleLaunch(w http.ResponseWriter, bpUUID string, body []byte, user string) {
	var req launchRequest
	if err := decodeBody("blueprint", body, &req); err != nil {
		writeError(w, err)
		return
	}
	var requestID, appName string
	err := s.change(func(st *store, now time.Time) *apiError {
		b := st.blueprint(bpUUID)
		if b == nil {
			return errNotFound("blueprint", bpUUID)
		}
		if b.State != "ACTIVE" {
			return errState("blueprint", "Blueprint %s (%s) is in %s state; only ACTIVE blueprints can be launched",
				b.Name, b.UUID, b.State).withField("state")
		}
		spec := req.Spec
		if spec == nil {
			return errUnprocessable("blueprint", "spec is required").withField("spec")
		}
		appName = strings.TrimSpace(spec.AppName)
		if appName == "" {
			return errUnprocessable("blueprint", "spec.app_name must not be empty").withField("spec.app_name")
		}
		pr := spec.AppProfileReference
		if pr == nil || (pr.UUID == "" && pr.Name == "") {
			return errUnprocessable("blueprint", "spec.app_profile_reference needs the name or uuid of an app profile").
				withField("spec.app_profile_reference")
		}
		prof := b.profile(pr.UUID, pr.Name)
		if prof == nil {
			return errUnprocessable("blueprint", "blueprint %s has no app profile %s", b.Name, describeRef(pr.Name, pr.UUID)).
				withField("spec.app_profile_reference")
		}

		values := map[string]string{}
		secrets := map[string]string{}
		for _, v := range prof.Variables {
			if v.Type != "SECRET" {
				values[v.Name] = v.Value
			}
		}
		if spec.RuntimeEditables != nil {
			for i, lv := range spec.RuntimeEditables.VariableList {
				field := fmt.Sprintf("spec.runtime_editables.variable_list[%d]", i)
				v, aerr := matchVariable(b, prof, lv)
				if aerr != nil {
					return aerr.withField(field)
				}
				val, ok := launchValue(lv.Value)
				if !ok {
					return errUnprocessable("blueprint", "variable %s: value must be {\"value\": \"...\"}", v.Name).withField(field + ".value")
				}
				if v.Type == "SECRET" {
					if val != "" {
						secrets[v.Name] = SecretSHA256(val)
					}
					continue
				}
				if msg := checkValue(v, val); msg != "" {
					return errUnprocessable("blueprint", "variable %s", msg).withField(field + ".value")
				}
				values[v.Name] = val
			}
		}
		for _, v := range prof.Variables { // defaults were checked at seeding; an empty INT default is not
			if msg := checkValue(v, values[v.Name]); msg != "" && v.Type != "SECRET" && v.Runtime {
				return errUnprocessable("blueprint", "variable %s (set it at launch)", msg)
			}
		}
		if other := st.liveAppNamed(b.ProjectUUID, appName, now); other != "" {
			return errConflict("blueprint", "An application named %q already exists in project %s (%s); app names must be unique",
				appName, st.projectRef(b.ProjectUUID)["name"], other).withField("spec.app_name")
		}

		vcpus, _ := strconv.Atoi(values[VarVCPUs])
		mem, _ := strconv.Atoi(values[VarMemoryGiB])
		disk, _ := strconv.Atoi(values[VarDiskGiB])
		network := values[VarNetwork]
		if network == "" {
			return errUnprocessable("blueprint", "profile %s has no %s to allocate addresses from", prof.Name, VarNetwork)
		}
		addrs, aerr := st.allocate(network, prof.vmCount(), values[VarIPAddress], now)
		if aerr != nil {
			return aerr
		}

		requestID = newUUID()
		l := &launch{RequestID: requestID, BlueprintUUID: b.UUID, AppName: appName, Requested: now, Done: now.Add(s.launchTime)}
		st.Launches = append(st.Launches, l)
		failLaunch, launchMsg := b.FailLaunches, b.FailMessage
		if len(s.failLaunches) > 0 && !failLaunch {
			failLaunch, launchMsg = true, s.failLaunches[0]
			s.failLaunches = s.failLaunches[1:]
		}
		if !failLaunch && s.chance(s.launchFailRate) {
			failLaunch = true
		}
		if failLaunch {
			l.Failed = true
			l.Message = orString(launchMsg, "Launch of blueprint "+b.Name+" failed: "+defaultFailMessage)
			return nil
		}
		failProv, provMsg := b.FailProvisions, b.FailMessage
		if len(s.failProvisions) > 0 && !failProv {
			failProv, provMsg = true, s.failProvisions[0]
			s.failProvisions = s.failProvisions[1:]
		}

		a := &app{UUID: newUUID(), Name: appName, Description: spec.AppDescription, ProjectUUID: b.ProjectUUID,
			BlueprintUUID: b.UUID, ProfileUUID: prof.UUID, Owner: user, Visible: l.Done, Updated: l.Done,
			State: "provisioning", Network: network}
		l.AppUUID = a.UUID
		for _, v := range prof.Variables {
			av := &appVar{UUID: derivedUUID(a.UUID, "variable", v.Name), Name: v.Name, Type: v.Type, Label: v.Label, ValueType: v.ValueType}
			if v.Type == "SECRET" {
				av.SecretSHA256 = secrets[v.Name]
			} else {
				av.Value = values[v.Name]
			}
			a.Variables = append(a.Variables, av)
		}
		i := 0
		for _, d := range prof.Deployments {
			for r := 0; r < d.Replicas; r++ {
				id := newUUID()
				a.VMs = append(a.VMs, &vm{UUID: id, Name: fmt.Sprintf("%s-%s-%d", appName, d.Name, r), Deployment: d.Name,
					Index: r, Address: addrs[i], MAC: macFor(id), Image: orString(d.Image, values["IMAGE"]),
					VCPUs: vcpus, MemoryGiB: mem, DiskGiB: disk})
				i++
			}
		}
		target := "running"
		lines := []string{fmt.Sprintf("Launching blueprint %s, profile %s, as app %s", b.Name, prof.Name, appName)}
		for _, v := range a.VMs {
			lines = append(lines, fmt.Sprintf("Created VM %s (%s) at %s: %d vCPU, %d GiB memory, %d GiB disk",
				v.Name, v.UUID, v.Address, v.VCPUs, v.MemoryGiB, v.DiskGiB))
		}
		if failProv {
			target = "error"
			lines = append(lines, "ERROR: "+orString(provMsg, "provisioning failed: "+defaultFailMessage))
		} else {
			lines = append(lines, "App "+appName+" is running")
		}
		root := st.addRunlogs(a, "action_create", "Provision VMs", user, l.Done, l.Done.Add(s.provisionTime), failProv, lines)
		a.Current = &transition{Action: "action_create", Transient: "provisioning", Target: target,
			Start: l.Done, End: l.Done.Add(s.provisionTime), RunlogUUID: root}
		st.Apps = append(st.Apps, a)
		return nil
	})
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{
		"api_version":     APIVersion,
		"app_name":        appName,
		"app_description": req.Spec.AppDescription,
		"metadata":        map[string]any{"kind": "blueprint", "uuid": bpUUID},
		"status":          map[string]any{"request_id": requestID},
	})
}

func describeRef(name, uuid string) string {
	switch {
	case name != "" && uuid != "":
		return fmt.Sprintf("%q (%s)", name, uuid)
	case name != "":
		return fmt.Sprintf("%q", name)
	}
	return uuid
}

func orString(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// matchVariable finds the profile variable a launch names (by uuid or
// name; both must agree when both are given) and checks it may be set.
func matchVariable(b *blueprint, p *profile, lv launchVariable) (*variable, *apiError) {
	var v *variable
	switch {
	case lv.UUID != "":
		v = p.variableByUUID(lv.UUID)
		if v == nil || (lv.Name != "" && v.Name != lv.Name) {
			return nil, errUnprocessable("blueprint", "variable %s is not a variable of profile %s of blueprint %s",
				describeRef(lv.Name, lv.UUID), p.Name, b.Name)
		}
	case lv.Name != "":
		if v = p.variable(lv.Name); v == nil {
			return nil, errUnprocessable("blueprint", "variable %q is not a variable of profile %s of blueprint %s",
				lv.Name, p.Name, b.Name)
		}
	default:
		return nil, errUnprocessable("blueprint", "a variable needs a name or a uuid")
	}
	if !v.Runtime {
		return nil, errUnprocessable("blueprint", "variable %s of profile %s is not runtime editable", v.Name, p.Name)
	}
	if lv.Context != "" && lv.Context != variableContext(p) {
		return nil, errUnprocessable("blueprint", "variable %s: context %q is not %q", v.Name, lv.Context, variableContext(p))
	}
	return v, nil
}

// liveAppNamed returns the uuid of an app (or launch in flight) called
// name in the project that is not deleted, or "".
func (st *store) liveAppNamed(projectUUID, name string, now time.Time) string {
	for _, a := range st.Apps {
		if a.ProjectUUID == projectUUID && a.Name == name && !a.Purged && a.stateAt(now) != "deleted" {
			return a.UUID
		}
	}
	for _, l := range st.Launches {
		if b := st.blueprint(l.BlueprintUUID); b != nil && b.ProjectUUID == projectUUID &&
			l.AppName == name && now.Before(l.Done) {
			return "pending launch " + l.RequestID
		}
	}
	return ""
}

// addRunlogs records an action: a root action runlog and one task under
// it, both running from start to end. It returns the root's uuid.
func (st *store) addRunlogs(a *app, action, task, user string, start, end time.Time, failed bool, lines []string) string {
	root := &runlog{UUID: newUUID(), AppUUID: a.UUID, Type: "action_runlog", Action: action,
		ActionUUID: derivedUUID(a.UUID, action), User: user, Start: start, End: end, Failed: failed, Output: lines}
	root.RootUUID, root.ParentUUID = root.UUID, a.UUID
	child := &runlog{UUID: newUUID(), AppUUID: a.UUID, RootUUID: root.UUID, ParentUUID: root.UUID, Type: "task_runlog",
		Action: action, ActionUUID: root.ActionUUID, Task: task, TaskUUID: derivedUUID(a.UUID, action, task),
		User: user, Start: start, End: end, Failed: failed, Output: lines}
	st.Runlogs = append(st.Runlogs, root, child)
	return root.UUID
}

// abort ends the runlogs of an app's transition in flight (a delete
// overtaking it).
func (st *store) abort(a *app, now time.Time) {
	if a.Current == nil || !now.Before(a.Current.End) {
		return
	}
	for _, r := range st.Runlogs {
		if r.RootUUID == a.Current.RunlogUUID {
			r.Aborted, r.End = true, now
			r.Output = append(r.Output, "ABORTED: overtaken by a delete")
		}
	}
}

func (s *Server) pendingLaunch(w http.ResponseWriter, bpUUID, requestID string) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	now := s.now()
	l := s.st.launch(requestID)
	if l == nil || l.BlueprintUUID != bpUUID {
		writeError(w, newError(http.StatusNotFound, "blueprint", ReasonNotFound,
			"launch request %s not found for blueprint %s", requestID, bpUUID))
		return
	}
	bpName := ""
	if b := s.st.blueprint(bpUUID); b != nil {
		bpName = b.Name
	}
	state := l.state(now)
	status := map[string]any{"state": state, "request_id": l.RequestID, "app_name": l.AppName,
		"bp_uuid": l.BlueprintUUID, "bp_name": bpName}
	switch state {
	case "success":
		status["application_uuid"] = l.AppUUID
	case "failure":
		status["message_list"] = []any{map[string]any{"message": l.Message, "reason": "LAUNCH_FAILED", "details": map[string]any{}}}
	}
	writeJSON(w, http.StatusOK, map[string]any{"api_version": APIVersion, "status": status})
}

// --- addresses ---------------------------------------------------------------

func parseNetwork(s string) (netip.Prefix, error) {
	p, err := netip.ParsePrefix(strings.TrimSpace(s))
	if err != nil || !p.Addr().Is4() {
		return netip.Prefix{}, fmt.Errorf("%q is not an IPv4 network in CIDR notation", s)
	}
	if p.Masked() != p {
		return netip.Prefix{}, fmt.Errorf("%q has host bits set; the network is %s", s, p.Masked())
	}
	if p.Bits() > 30 || p.Bits() < 8 {
		return netip.Prefix{}, fmt.Errorf("%q: the prefix length must be between 8 and 30", s)
	}
	return p, nil
}

// allocate takes n addresses of network for a new app: first (when set)
// for the first VM, then the lowest free ones. The network address, the
// gateway (.1) and the broadcast address are never handed out, nor any
// address a live app holds, in any network. Called under the write lock,
// so concurrent launches never get the same address.
func (st *store) allocate(network string, n int, first string, now time.Time) ([]string, *apiError) {
	p, err := parseNetwork(network)
	if err != nil {
		return nil, errUnprocessable("blueprint", "variable %s: %v", VarNetwork, err)
	}
	used := map[netip.Addr]string{}
	for _, a := range st.Apps {
		if a.holdsAddresses(now) {
			for _, v := range a.VMs {
				if ip, err := netip.ParseAddr(v.Address); err == nil {
					used[ip] = a.Name
				}
			}
		}
	}
	lo, hi := bounds(p)
	var out []string
	if first != "" {
		ip, _ := netip.ParseAddr(first)
		u := ip4(ip)
		switch {
		case !p.Contains(ip):
			return nil, errUnprocessable("blueprint", "variable %s: %s is not in %s %s", VarIPAddress, first, VarNetwork, p)
		case u == lo || u == lo+1 || u == hi:
			return nil, errUnprocessable("blueprint", "variable %s: %s is the network, gateway or broadcast address of %s",
				VarIPAddress, first, p)
		case used[ip] != "":
			return nil, errConflict("blueprint", "variable %s: %s is already in use by app %s", VarIPAddress, first, used[ip])
		}
		used[ip] = "this launch"
		out = append(out, ip.String())
	}
	for u := uint64(lo) + 2; u < uint64(hi) && len(out) < n; u++ {
		ip := ip4Addr(uint32(u))
		if used[ip] == "" {
			used[ip] = "this launch"
			out = append(out, ip.String())
		}
	}
	if len(out) < n {
		return nil, errConflict("blueprint", "%s %s has no free address left for %d VM(s)", VarNetwork, p, n)
	}
	return out, nil
}

func ip4(a netip.Addr) uint32 {
	b := a.As4()
	return binary.BigEndian.Uint32(b[:])
}

func ip4Addr(u uint32) netip.Addr {
	var b [4]byte
	binary.BigEndian.PutUint32(b[:], u)
	return netip.AddrFrom4(b)
}

func bounds(p netip.Prefix) (uint32, uint32) {
	first := ip4(p.Addr())
	return first, uint32(uint64(first) + (uint64(1) << (32 - p.Bits())) - 1)
}

// macFor is a stable MAC in Nutanix's 50:6b:8d OUI, from the VM's uuid.
func macFor(id string) string {
	h := sha256.Sum256([]byte(id))
	return fmt.Sprintf("50:6b:8d:%02x:%02x:%02x", h[0], h[1], h[2])
}
