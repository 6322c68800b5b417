package calm

import (
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"strings"
	"time"
)

// The shapes below follow what Calm returns and what its clients read:
// nutanix/calm-dsl (calm/dsl/cli/apps.py, bps.py, projects) and the
// Terraform provider's selfservice package (sdks/v3/selfservice,
// services/selfservice flattenVM, flattenAppSummary).

func ref(kind, name, uuid string) map[string]any {
	r := map[string]any{"kind": kind, "uuid": uuid}
	if name != "" {
		r["name"] = name
	}
	return r
}

// derivedUUID is a stable uuid for a sub-entity (substrate, service,
// action) that need not be stored: a hash of its parent and role.
func derivedUUID(parts ...string) string {
	h := sha256.Sum256([]byte(strings.Join(parts, "\x00")))
	b := h[:16]
	b[6] = b[6]&0x0f | 0x50 // version 5-like: name based
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

const seedOwner = "admin"

func owner(name string) map[string]any {
	if name == "" {
		name = seedOwner
	}
	return ref("user", name, derivedUUID("user", name))
}

func metadata(kind, uuid, name string, created, updated time.Time) map[string]any {
	return map[string]any{
		"kind":             kind,
		"uuid":             uuid,
		"name":             name,
		"spec_version":     0,
		"creation_time":    usecs(created),
		"last_update_time": usecs(updated),
		"categories":       map[string]any{},
		"owner_reference":  owner(""),
	}
}

var clusterRef = ref("cluster", "sim-cluster-01", derivedUUID("cluster", "sim-cluster-01"))

func (st *store) renderProject(p *project) map[string]any {
	envs := []any{}
	for _, e := range st.Environments {
		if e.ProjectUUID == p.UUID {
			envs = append(envs, ref("environment", e.Name, e.UUID))
		}
	}
	res := map[string]any{"environment_reference_list": envs}
	if len(envs) > 0 {
		res["default_environment_reference"] = envs[0]
	}
	return map[string]any{
		"metadata": metadata("project", p.UUID, p.Name, p.Created, p.Created),
		"spec":     map[string]any{"name": p.Name, "description": p.Description, "resources": res},
		"status": map[string]any{"name": p.Name, "description": p.Description, "state": "COMPLETE",
			"uuid": p.UUID, "resources": res},
	}
}

func (st *store) projectRef(uuid string) map[string]any {
	name := ""
	if p := st.project(uuid); p != nil {
		name = p.Name
	}
	return ref("project", name, uuid)
}

func (st *store) renderEnvironment(e *environment) map[string]any {
	md := metadata("environment", e.UUID, e.Name, e.Created, e.Created)
	md["project_reference"] = st.projectRef(e.ProjectUUID)
	return map[string]any{
		"metadata": md,
		"spec":     map[string]any{"name": e.Name, "description": "", "resources": map[string]any{}},
		"status":   map[string]any{"name": e.Name, "description": "", "state": "ACTIVE", "uuid": e.UUID, "resources": map[string]any{}},
	}
}

// renderBlueprint is a blueprint as GET shows it (full) or as a list entry
// (brief: the profiles' names and uuids, no variables or substrates).
func (st *store) renderBlueprint(b *blueprint, now time.Time, full bool) map[string]any {
	md := metadata("blueprint", b.UUID, b.Name, b.Created, b.Created)
	md["project_reference"] = st.projectRef(b.ProjectUUID)
	count := 0
	for _, a := range st.Apps {
		if a.BlueprintUUID == b.UUID && a.visible(now) && a.stateAt(now) != "deleted" {
			count++
		}
	}
	var res map[string]any
	spec := map[string]any{"name": b.Name, "description": b.Description}
	if full {
		res = blueprintResources(b)
		spec["resources"] = res
	} else {
		profiles := []any{}
		for _, p := range b.Profiles {
			profiles = append(profiles, map[string]any{"name": p.Name, "uuid": p.UUID})
		}
		res = map[string]any{"app_profile_list": profiles}
	}
	return map[string]any{
		"metadata": md,
		"spec":     spec,
		"status": map[string]any{"name": b.Name, "description": b.Description, "state": b.State, "uuid": b.UUID,
			"application_count": count, "resources": res, "message_list": []any{}},
	}
}

func blueprintResources(b *blueprint) map[string]any {
	profiles := []any{}
	services := []any{}
	substrates := []any{}
	for _, p := range b.Profiles {
		vars := []any{}
		for _, v := range p.Variables {
			vars = append(vars, renderBlueprintVariable(v))
		}
		deps := []any{}
		for _, d := range p.Deployments {
			sub := derivedUUID(d.UUID, "substrate")
			svc := derivedUUID(d.UUID, "service")
			deps = append(deps, map[string]any{
				"uuid": d.UUID, "name": d.Name, "min_replicas": fmt.Sprint(d.Replicas), "max_replicas": fmt.Sprint(d.Replicas),
				"substrate_local_reference":    ref("app_substrate", "", sub),
				"service_local_reference_list": []any{ref("app_service", "", svc)},
			})
			services = append(services, map[string]any{"uuid": svc, "name": d.Name, "description": ""})
			substrates = append(substrates, map[string]any{
				"uuid": sub, "name": p.Name + "-" + d.Name, "type": "AHV_VM", "os_type": "Linux",
				"create_spec": map[string]any{"resources": map[string]any{
					"disk_list": []any{map[string]any{"data_source_reference": ref("image", d.Image, derivedUUID("image", d.Image))}},
				}, "cluster_reference": clusterRef},
			})
		}
		actions := []any{}
		for _, name := range systemActions {
			actions = append(actions, map[string]any{"name": name, "uuid": derivedUUID(p.UUID, name), "type": "system"})
		}
		profiles = append(profiles, map[string]any{"uuid": p.UUID, "name": p.Name, "description": "",
			"variable_list": vars, "deployment_create_list": deps, "action_list": actions})
	}
	return map[string]any{"type": "USER", "app_profile_list": profiles,
		"service_definition_list": services, "substrate_definition_list": substrates}
}

// renderBlueprintVariable is a profile variable as a blueprint shows it.
// A SECRET's value is always empty, as Calm masks it.
func renderBlueprintVariable(v *variable) map[string]any {
	out := map[string]any{
		"uuid": v.UUID, "name": v.Name, "type": v.Type, "value_type": v.ValueType, "data_type": "BASE",
		"label": v.Label, "description": v.Description, "value": v.Value, "is_hidden": false, "is_mandatory": false,
		"editables": map[string]any{"value": v.Runtime},
	}
	if v.Type == "SECRET" {
		out["value"] = ""
		out["attrs"] = map[string]any{"is_secret_modified": false}
	}
	return out
}

func variableContext(p *profile) string { return "app_profile." + p.Name + ".variable" }

// renderEditables is GET runtime_editables: per profile, the runtime
// editable variables with value as {"value": ...}.
func renderEditables(b *blueprint) map[string]any {
	res := []any{}
	for _, p := range b.Profiles {
		vars := []any{}
		for _, v := range p.Variables {
			if !v.Runtime {
				continue
			}
			value := v.Value
			if v.Type == "SECRET" {
				value = ""
			}
			vars = append(vars, map[string]any{
				"uuid": v.UUID, "name": v.Name, "context": variableContext(p), "type": v.Type,
				"description": v.Description, "value": map[string]any{"value": value},
				"editables": map[string]any{"value": true},
			})
		}
		res = append(res, map[string]any{
			"app_profile_reference": ref("app_profile", p.Name, p.UUID),
			"runtime_editables":     map[string]any{"variable_list": vars},
		})
	}
	return map[string]any{"resources": res}
}

var systemActions = []string{"action_create", "action_start", "action_stop", "action_restart", "action_delete", "action_soft_delete"}

func (st *store) renderApp(a *app, now time.Time) map[string]any {
	state := a.stateAt(now)
	bp := st.blueprint(a.BlueprintUUID)
	bpName, profName := "", ""
	var prof *profile
	if bp != nil {
		bpName = bp.Name
		if prof = bp.profile(a.ProfileUUID, ""); prof != nil {
			profName = prof.Name
		}
	}
	md := metadata("app", a.UUID, a.Name, a.Visible, a.lastUpdate(now))
	md["project_reference"] = st.projectRef(a.ProjectUUID)
	md["owner_reference"] = owner(a.Owner)
	profRef := ref("app_profile", profName, a.ProfileUUID)
	bpRef := ref("blueprint", bpName, a.BlueprintUUID)

	vars := []any{}
	for _, v := range a.Variables {
		rv := map[string]any{"uuid": v.UUID, "name": v.Name, "type": v.Type, "value": v.Value,
			"label": v.Label, "value_type": v.ValueType, "data_type": "BASE"}
		if v.Type == "SECRET" {
			rv["value"] = "" // masked, as Calm does
			rv["attrs"] = map[string]any{"is_secret_modified": v.SecretSHA256 != ""}
		}
		vars = append(vars, rv)
	}
	actions := []any{}
	for _, name := range systemActions {
		actions = append(actions, map[string]any{"name": name, "uuid": derivedUUID(a.UUID, name), "type": "system",
			"description": strings.ReplaceAll(strings.TrimPrefix(name, "action_"), "_", " ")})
	}
	resources := map[string]any{
		"app_profile_config_reference": profRef,
		"app_blueprint_reference":      bpRef,
		"deployment_list":              st.renderDeployments(a, prof, state, now),
		"variable_list":                vars,
		"action_list":                  actions,
		"patch_list":                   []any{},
		"snapshot_config_list":         []any{},
	}
	return map[string]any{
		"metadata": md,
		"spec": map[string]any{"name": a.Name, "description": a.Description, "resources": map[string]any{
			"app_profile_config_reference": profRef, "app_blueprint_reference": bpRef}},
		"status": map[string]any{"name": a.Name, "description": a.Description, "uuid": a.UUID, "state": state,
			"resources": resources},
	}
}

func (st *store) renderDeployments(a *app, prof *profile, state string, now time.Time) []any {
	var order []string
	byDep := map[string][]*vm{}
	for _, v := range a.VMs {
		if _, ok := byDep[v.Deployment]; !ok {
			order = append(order, v.Deployment)
		}
		byDep[v.Deployment] = append(byDep[v.Deployment], v)
	}
	gone := state == "deleted" && !a.SoftDeleted
	out := []any{}
	for _, dep := range order {
		depUUID := derivedUUID(a.UUID, "deployment", dep)
		elements := []any{}
		platform := []any{}
		svcElements := []any{}
		for _, v := range byDep[dep] {
			if gone {
				break
			}
			pd := platformData(a, v, now)
			raw, _ := json.Marshal(pd)
			platform = append(platform, pd)
			elements = append(elements, map[string]any{
				"uuid":          derivedUUID(v.UUID, "element"),
				"name":          v.Name,
				"instance_name": v.Name,
				"instance_id":   v.UUID,
				"address":       v.Address,
				"platform_data": string(raw),
				"state":         strings.ToUpper(elementState(state)),
				"create_spec":   vmCreateSpec(a, v, now),
				"variable_list": []any{map[string]any{"name": "mac_address", "value": v.MAC}},
			})
			svcElements = append(svcElements, map[string]any{"uuid": derivedUUID(v.UUID, "service_element"),
				"name": v.Name, "variable_list": []any{}})
		}
		rawPlatform, _ := json.Marshal(platform)
		out = append(out, map[string]any{
			"uuid":         depUUID,
			"name":         dep,
			"state":        strings.ToUpper(elementState(state)),
			"service_list": []any{map[string]any{"uuid": derivedUUID(depUUID, "service"), "name": dep, "element_list": svcElements}},
			"substrate_configuration": map[string]any{
				"uuid":          derivedUUID(depUUID, "substrate"),
				"name":          dep,
				"type":          "AHV_VM",
				"element_list":  elements,
				"variable_list": []any{map[string]any{"name": "platform_data", "value": string(rawPlatform)}},
				"create_spec": map[string]any{"resources": map[string]any{
					"disk_list": []any{map[string]any{"data_source_reference": imageRef(byDep[dep][0].Image)}},
				}, "cluster_reference": clusterRef},
			},
		})
	}
	return out
}

func elementState(appState string) string {
	switch appState {
	case "provisioning":
		return "provisioning"
	case "error":
		return "error"
	case "deleting", "deleted":
		return appState
	}
	return "running"
}

func imageRef(name string) map[string]any { return ref("image", name, derivedUUID("image", name)) }

func subnetRef(network string) map[string]any {
	name := "subnet-" + strings.ReplaceAll(network, "/", "-")
	return ref("subnet", name, derivedUUID("subnet", network))
}

func vmResources(a *app, v *vm, now time.Time) map[string]any {
	return map[string]any{
		"power_state":          a.power(now, v),
		"num_sockets":          v.VCPUs,
		"num_vcpus_per_socket": 1,
		"memory_size_mib":      v.MemoryGiB * 1024,
		"disk_list": []any{map[string]any{
			"disk_size_mib":         v.DiskGiB * 1024,
			"data_source_reference": imageRef(v.Image),
			"device_properties": map[string]any{"device_type": "DISK",
				"disk_address": map[string]any{"adapter_type": "SCSI", "device_index": 0}},
		}},
		"nic_list": []any{map[string]any{
			"nic_type":         "NORMAL_NIC",
			"mac_address":      v.MAC,
			"subnet_reference": subnetRef(a.Network),
			"ip_endpoint_list": []any{map[string]any{"ip": v.Address, "type": "ASSIGNED"}},
		}},
	}
}

func vmCreateSpec(a *app, v *vm, now time.Time) map[string]any {
	return map[string]any{
		"name":              v.Name,
		"resources":         vmResources(a, v, now),
		"cluster_reference": clusterRef,
		"categories":        map[string]any{},
	}
}

// platformData is the AHV VM as Calm embeds it (a JSON string) in
// element_list[].platform_data.
func platformData(a *app, v *vm, now time.Time) map[string]any {
	return map[string]any{
		"metadata": map[string]any{"kind": "vm", "uuid": v.UUID},
		"status": map[string]any{"name": v.Name, "state": "COMPLETE", "resources": vmResources(a, v, now),
			"cluster_reference": clusterRef},
	}
}

func (st *store) renderRunlog(r *runlog, now time.Time) map[string]any {
	updated := r.Start
	if !now.Before(r.End) || r.Aborted {
		updated = r.End
	}
	appName := ""
	if a := st.app(r.AppUUID); a != nil {
		appName = a.Name
	}
	status := map[string]any{
		"uuid":                  r.UUID,
		"type":                  r.Type,
		"state":                 r.state(now),
		"action_reference":      ref("app_action", r.Action, r.ActionUUID),
		"root_reference":        ref("app_runlog", "", r.RootUUID),
		"parent_reference":      ref("app_runlog", "", r.ParentUUID),
		"application_reference": ref("app", appName, r.AppUUID),
		"userdata_reference":    ref("user", r.User, derivedUUID("user", r.User)),
	}
	if r.Type == "task_runlog" {
		status["task_reference"] = ref("app_task", r.Task, r.TaskUUID)
	}
	md := metadata("app_runlog", r.UUID, "", r.Start, updated)
	delete(md, "name")
	return map[string]any{"metadata": md, "status": status}
}

// runlogOutputLines is what a runlog has printed by now: the first line
// while it runs, all of it once done.
func runlogOutputLines(r *runlog, now time.Time) string {
	if r.state(now) == "RUNNING" && len(r.Output) > 0 {
		return r.Output[0] + "\n"
	}
	if len(r.Output) == 0 {
		return ""
	}
	return strings.Join(r.Output, "\n") + "\n"
}
