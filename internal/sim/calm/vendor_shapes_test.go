package calm_test

import (
	"encoding/json"
	"strconv"
	"strings"
	"testing"
	"time"
)

// The vendor's Go client (github.com/terraform-providers/terraform-provider-nutanix,
// nutanix/sdks/v3/selfservice) is not served by the module proxy here, so
// this test cannot drive the simulator with it. Instead it checks that
// every JSON path that client, its Terraform resources (flattenVM,
// flattenAppSummary, flattenActions, the launch and runlog pollers) and
// calm-dsl (calm/dsl/cli apps.py, bps.py, api/resource.py) read is in the
// simulator's answers, with the type they expect.

// at resolves a dotted path with [n] indexes and [name=x] list selectors.
func at(v any, path string) (any, bool) {
	for _, part := range strings.Split(path, ".") {
		key, sel, _ := strings.Cut(part, "[")
		if key != "" {
			m, ok := v.(map[string]any)
			if !ok {
				return nil, false
			}
			if v, ok = m[key]; !ok {
				return nil, false
			}
		}
		if sel == "" {
			continue
		}
		sel = strings.TrimSuffix(sel, "]")
		l, ok := v.([]any)
		if !ok {
			return nil, false
		}
		if k, val, isSel := strings.Cut(sel, "="); isSel {
			v = nil
			for _, e := range l {
				if m, _ := e.(map[string]any); m != nil && m[k] == val {
					v = e
				}
			}
			if v == nil {
				return nil, false
			}
			continue
		}
		i, _ := strconv.Atoi(sel)
		if i >= len(l) {
			return nil, false
		}
		v = l[i]
	}
	return v, true
}

// want maps a path to the JSON type expected there: "string", "number",
// "object", "list", "bool", "digits" (a string of decimal digits), "json"
// (a string holding JSON), "any".
func checkShape(t *testing.T, what string, body any, want map[string]string) {
	t.Helper()
	for path, typ := range want {
		v, ok := at(body, path)
		if !ok {
			t.Errorf("%s: %s is missing", what, path)
			continue
		}
		good := false
		switch typ {
		case "string":
			_, good = v.(string)
		case "number":
			_, good = v.(float64)
		case "object":
			_, good = v.(map[string]any)
		case "list":
			_, good = v.([]any)
		case "bool":
			_, good = v.(bool)
		case "digits":
			s, _ := v.(string)
			_, err := strconv.ParseInt(s, 10, 64)
			good = err == nil
		case "json":
			s, _ := v.(string)
			good = json.Valid([]byte(s))
		case "any":
			good = true
		}
		if !good {
			t.Errorf("%s: %s is %T (%v), want %s", what, path, v, v, typ)
		}
	}
}

func TestVendorClientShapes(t *testing.T) {
	e := newEnv(t, nil)
	bp := e.bp("sas-dev", "web-stack-sandbox")

	list := e.call("POST", "/blueprints/list", map[string]any{"filter": "name==web-stack-sandbox;state!=DELETED"}).ok(t)
	checkShape(t, "blueprints/list", list.body, map[string]string{
		"api_version": "string", "metadata.total_matches": "number", "metadata.kind": "string",
		"entities[0].metadata.uuid": "string", "entities[0].metadata.name": "string",
		"entities[0].metadata.project_reference.name": "string", "entities[0].metadata.project_reference.uuid": "string",
		"entities[0].metadata.creation_time": "digits", "entities[0].metadata.last_update_time": "digits",
		"entities[0].metadata.categories": "object",
		"entities[0].status.name":         "string", "entities[0].status.description": "string", "entities[0].status.state": "string",
		"entities[0].status.uuid": "string", "entities[0].status.application_count": "number",
	})
	full := e.call("GET", "/blueprints/"+bp, nil).ok(t)
	checkShape(t, "GET blueprint", full.body, map[string]string{
		"api_version": "string", "metadata.uuid": "string", "metadata.owner_reference.name": "string",
		"metadata.project_reference.name": "string", "metadata.creation_time": "digits",
		"status.state": "string", "status.description": "string",
		"spec.resources.app_profile_list[0].name": "string", "spec.resources.app_profile_list[0].uuid": "string",
		"status.resources.app_profile_list[0].action_list[0].name":                                      "string",
		"status.resources.app_profile_list[0].deployment_create_list[0].substrate_local_reference.uuid": "string",
		"status.resources.substrate_definition_list[0].uuid":                                            "string",
		"status.resources.substrate_definition_list[0].type":                                            "string",
		"status.resources.service_definition_list[0].name":                                              "string",
	})
	ed := e.call("GET", "/blueprints/"+bp+"/runtime_editables", nil).ok(t)
	checkShape(t, "runtime_editables", ed.body, map[string]string{
		"resources[0].app_profile_reference.kind": "string", "resources[0].app_profile_reference.name": "string",
		"resources[0].app_profile_reference.uuid":                     "string",
		"resources[0].runtime_editables.variable_list[0].name":        "string",
		"resources[0].runtime_editables.variable_list[0].uuid":        "string",
		"resources[0].runtime_editables.variable_list[0].context":     "string",
		"resources[0].runtime_editables.variable_list[0].type":        "string",
		"resources[0].runtime_editables.variable_list[0].value":       "object",
		"resources[0].runtime_editables.variable_list[0].value.value": "string",
		"resources[0].runtime_editables.variable_list[0].description": "string",
	})

	// The Terraform provider sends the runtime editables back whole, with
	// the values as raw JSON; the launch must take that.
	editables, _ := at(ed.body, "resources[0].runtime_editables")
	prof, _ := at(ed.body, "resources[0].app_profile_reference")
	launch := e.call("POST", "/blueprints/"+bp+"/simple_launch", map[string]any{"spec": map[string]any{
		"app_name": "vendor-shaped", "app_description": "d", "app_profile_reference": prof, "runtime_editables": editables,
	}}).ok(t)
	checkShape(t, "simple_launch", launch.body, map[string]string{"status.request_id": "string"})
	rid, _ := at(launch.body, "status.request_id")
	poll := e.call("GET", "/blueprints/"+bp+"/pending_launches/"+rid.(string), nil).ok(t)
	checkShape(t, "pending (running)", poll.body, map[string]string{
		"status.state": "string", "status.app_name": "string", "status.bp_uuid": "string", "status.bp_name": "string"})
	e.clock.Advance(time.Second)
	poll = e.call("GET", "/blueprints/"+bp+"/pending_launches/"+rid.(string), nil).ok(t)
	checkShape(t, "pending (success)", poll.body, map[string]string{"status.application_uuid": "string"})
	id := str(poll.body, "status", "application_uuid")
	e.clock.Advance(2 * time.Second)

	app := e.call("GET", "/apps/"+id, nil).ok(t)
	const el = "status.resources.deployment_list[0].substrate_configuration.element_list[0]."
	checkShape(t, "GET app", app.body, map[string]string{
		"api_version": "string", "spec": "object", "metadata": "object",
		"status.state": "string", "status.name": "string", "status.description": "string", "status.uuid": "string",
		"metadata.uuid": "string", "metadata.name": "string", "metadata.project_reference.name": "string",
		"metadata.owner_reference.name": "string", "metadata.creation_time": "digits", "metadata.last_update_time": "digits",
		"status.resources.app_profile_config_reference.name": "string",
		"status.resources.app_blueprint_reference.name":      "string",
		el + "instance_name":                                 "string", el + "address": "string", el + "instance_id": "string",
		el + "platform_data":                                           "json",
		el + "create_spec.resources.num_sockets":                       "number",
		el + "create_spec.resources.num_vcpus_per_socket":              "number",
		el + "create_spec.resources.memory_size_mib":                   "number",
		el + "create_spec.resources.nic_list[0].nic_type":              "string",
		el + "create_spec.resources.nic_list[0].subnet_reference.name": "string",
		el + "create_spec.cluster_reference.name":                      "string",
		el + "create_spec.cluster_reference.uuid":                      "string",
		el + "create_spec.categories":                                  "object",
		el + "variable_list[name=mac_address].value":                   "string",
		"status.resources.deployment_list[0].substrate_configuration.create_spec.resources.disk_list[0].data_source_reference.name": "string",
		"status.resources.deployment_list[0].substrate_configuration.create_spec.resources.disk_list[0].data_source_reference.uuid": "string",
		"status.resources.deployment_list[0].substrate_configuration.variable_list[name=platform_data].value":                       "json",
		"status.resources.deployment_list[0].substrate_configuration.name":                                                          "string",
		"status.resources.deployment_list[0].service_list[0].name":                                                                  "string",
		"status.resources.deployment_list[0].service_list[0].element_list[0].variable_list":                                         "list",
		"status.resources.action_list[0].name":                                                                                      "string", "status.resources.action_list[0].uuid": "string",
		"status.resources.action_list[0].description": "string",
		"status.resources.patch_list":                 "list", "status.resources.variable_list[0].name": "string",
		"status.resources.variable_list[0].value": "string", "status.resources.variable_list[0].label": "string",
	})
	// flattenNicMacAddress parses the substrate's platform_data list.
	pdRaw, _ := at(app.body, "status.resources.deployment_list[0].substrate_configuration.variable_list[name=platform_data].value")
	var pd any
	_ = json.Unmarshal([]byte(pdRaw.(string)), &pd)
	checkShape(t, "platform_data", pd, map[string]string{
		"[0].status.resources.nic_list[0].mac_address": "string", "[0].status.resources.nic_list[0].nic_type": "string",
		"[0].status.resources.nic_list[0].subnet_reference.name": "string",
	})

	apps := e.call("POST", "/apps/list", map[string]any{"filter": "name==vendor-shaped"}).ok(t)
	checkShape(t, "apps/list", apps.body, map[string]string{
		"metadata.total_matches": "number", "entities[0].status.name": "string", "entities[0].status.state": "string",
		"entities[0].status.uuid": "string", "entities[0].status.resources.app_blueprint_reference.name": "string",
		"entities[0].metadata.owner_reference.name": "string", "entities[0].metadata.creation_time": "digits",
	})

	act := e.call("POST", "/apps/"+id+"/actions/run", map[string]any{"name": "action_stop"}).ok(t)
	checkShape(t, "actions/run", act.body, map[string]string{"runlog_uuid": "string"})
	rl := str(act.body, "runlog_uuid")
	out := e.call("GET", "/apps/"+id+"/app_runlogs/"+rl+"/output", nil).ok(t)
	checkShape(t, "runlog output", out.body, map[string]string{
		"api_version": "string", "status.runlog_state": "string", "output_list[0].output": "string",
		"output_list[0].script": "string", "status.output_list[0].output": "string"})
	runlogs := e.call("POST", "/apps/"+id+"/app_runlogs/list", map[string]any{"filter": "root_reference==" + rl}).ok(t)
	checkShape(t, "app_runlogs/list", runlogs.body, map[string]string{
		"entities[0].metadata.uuid": "string", "entities[0].metadata.creation_time": "digits",
		"entities[0].metadata.last_update_time": "digits", "entities[0].status.type": "string",
		"entities[0].status.state": "string", "entities[0].status.action_reference.name": "string",
		"entities[0].status.root_reference.uuid": "string", "entities[0].status.parent_reference.uuid": "string",
		"entities[0].status.application_reference.uuid": "string", "entities[0].status.userdata_reference.name": "string",
		"entities[1].status.task_reference.name": "string",
	})
	e.clock.Advance(time.Second)
	startUUID, _ := at(app.body, "status.resources.action_list[name=action_start].uuid")
	custom := e.call("POST", "/apps/"+id+"/actions/"+startUUID.(string)+"/run", map[string]any{
		"api_version": "3.0", "metadata": map[string]any{}, "spec": map[string]any{"args": []any{}, "target_uuid": id, "target_kind": "Application"},
	}).ok(t)
	checkShape(t, "actions/{uuid}/run", custom.body, map[string]string{"status.runlog_uuid": "string"})
	e.clock.Advance(time.Second)
	del := e.call("DELETE", "/apps/"+id+"?type=soft", nil).ok(t)
	checkShape(t, "DELETE app", del.body, map[string]string{
		"api_version": "string", "status.runlog_uuid": "string", "status.ergon_task_uuid": "string"})

	projects := e.call("POST", "/projects/list", map[string]any{"kind": "project", "filter": "name==sas-dev"}).ok(t)
	checkShape(t, "projects/list", projects.body, map[string]string{
		"entities[0].metadata.uuid": "string", "entities[0].status.name": "string",
		"entities[0].spec.resources.environment_reference_list[0].uuid": "string",
	})
}
