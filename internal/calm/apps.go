package calm

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"time"
)

// App is a Calm application, flattened for callers. Raw is the entity as
// Calm sent it.
type App struct {
	UUID          string
	Name          string
	Description   string
	Project       string
	ProjectUUID   string
	BlueprintName string
	BlueprintUUID string
	Profile       string
	ProfileUUID   string
	Owner         string
	State         string // provisioning, running, stopped, error, deleting, deleted, ...
	// Variables are the app's non-secret variables. Calm never returns
	// secret values.
	Variables map[string]string
	VMs       []VM
	Created   time.Time
	Updated   time.Time
	Raw       json.RawMessage
}

// Deleted reports whether the app is gone from Calm.
func (a *App) Deleted() bool { return a.State == "deleted" }

// VM is one VM of an app.
type VM struct {
	Name       string
	UUID       string
	Addresses  []string
	PowerState string // ON, OFF, ...
	VCPUs      int
	MemoryGiB  int
	DiskGiB    int
}

// flexInt decodes a JSON number or a numeric string (Calm uses both).
type flexInt int

func (f *flexInt) UnmarshalJSON(b []byte) error {
	var n json.Number
	s := strings.Trim(string(b), `"`)
	if s == "" || s == "null" {
		*f = 0
		return nil
	}
	n = json.Number(s)
	if i, err := n.Int64(); err == nil {
		*f = flexInt(i)
		return nil
	}
	v, err := n.Float64()
	if err != nil {
		return fmt.Errorf("%s is not a number", b)
	}
	*f = flexInt(v)
	return nil
}

type vmResourcesJSON struct {
	PowerState        string  `json:"power_state"`
	NumSockets        flexInt `json:"num_sockets"`
	NumVCPUsPerSocket flexInt `json:"num_vcpus_per_socket"`
	MemorySizeMiB     flexInt `json:"memory_size_mib"`
	DiskList          []struct {
		DiskSizeMiB      flexInt `json:"disk_size_mib"`
		DeviceProperties struct {
			DeviceType string `json:"device_type"`
		} `json:"device_properties"`
	} `json:"disk_list"`
	NicList []struct {
		IPEndpointList []struct {
			IP string `json:"ip"`
		} `json:"ip_endpoint_list"`
	} `json:"nic_list"`
}

type appJSON struct {
	Metadata struct {
		UUID             string    `json:"uuid"`
		Name             string    `json:"name"`
		CreationTime     string    `json:"creation_time"`
		LastUpdateTime   string    `json:"last_update_time"`
		ProjectReference Reference `json:"project_reference"`
		OwnerReference   Reference `json:"owner_reference"`
	} `json:"metadata"`
	Spec struct {
		Name        string `json:"name"`
		Description string `json:"description"`
	} `json:"spec"`
	Status struct {
		UUID        string `json:"uuid"`
		Name        string `json:"name"`
		Description string `json:"description"`
		State       string `json:"state"`
		Resources   struct {
			AppProfileConfigReference Reference `json:"app_profile_config_reference"`
			AppBlueprintReference     Reference `json:"app_blueprint_reference"`
			VariableList              []struct {
				Name  string          `json:"name"`
				Type  string          `json:"type"`
				Value json.RawMessage `json:"value"`
			} `json:"variable_list"`
			DeploymentList []struct {
				Name                   string `json:"name"`
				SubstrateConfiguration struct {
					ElementList []struct {
						InstanceName string `json:"instance_name"`
						InstanceID   string `json:"instance_id"`
						Address      string `json:"address"`
						PlatformData string `json:"platform_data"`
						CreateSpec   struct {
							Resources vmResourcesJSON `json:"resources"`
						} `json:"create_spec"`
					} `json:"element_list"`
				} `json:"substrate_configuration"`
			} `json:"deployment_list"`
		} `json:"resources"`
	} `json:"status"`
}

func appFrom(raw json.RawMessage) (*App, error) {
	var j appJSON
	if err := json.Unmarshal(raw, &j); err != nil {
		return nil, fmt.Errorf("calm: decode app: %w", err)
	}
	r := j.Status.Resources
	a := &App{
		UUID:          firstOf(j.Metadata.UUID, j.Status.UUID),
		Name:          firstOf(j.Status.Name, j.Metadata.Name, j.Spec.Name),
		Description:   firstOf(j.Status.Description, j.Spec.Description),
		Project:       j.Metadata.ProjectReference.Name,
		ProjectUUID:   j.Metadata.ProjectReference.UUID,
		BlueprintName: r.AppBlueprintReference.Name,
		BlueprintUUID: r.AppBlueprintReference.UUID,
		Profile:       r.AppProfileConfigReference.Name,
		ProfileUUID:   r.AppProfileConfigReference.UUID,
		Owner:         j.Metadata.OwnerReference.Name,
		State:         j.Status.State,
		Variables:     map[string]string{},
		Created:       parseCalmTime(j.Metadata.CreationTime),
		Updated:       parseCalmTime(j.Metadata.LastUpdateTime),
		Raw:           raw,
	}
	for _, v := range r.VariableList {
		if v.Type == "SECRET" {
			continue
		}
		a.Variables[v.Name] = editableValue(v.Value)
	}
	for _, d := range r.DeploymentList {
		for _, el := range d.SubstrateConfiguration.ElementList {
			res := el.CreateSpec.Resources
			// platform_data is the VM as the cluster reports it: prefer it
			// to the create spec, which is what was asked for.
			if el.PlatformData != "" {
				var pd struct {
					Status struct {
						Resources vmResourcesJSON `json:"resources"`
					} `json:"status"`
				}
				if json.Unmarshal([]byte(el.PlatformData), &pd) == nil && pd.Status.Resources.NumSockets > 0 {
					res = pd.Status.Resources
				}
			}
			vm := VM{Name: el.InstanceName, UUID: el.InstanceID, PowerState: res.PowerState,
				VCPUs:     int(res.NumSockets) * max(1, int(res.NumVCPUsPerSocket)),
				MemoryGiB: int(res.MemorySizeMiB) / 1024}
			disk := 0
			for _, dk := range res.DiskList {
				if dk.DeviceProperties.DeviceType == "" || dk.DeviceProperties.DeviceType == "DISK" {
					disk += int(dk.DiskSizeMiB)
				}
			}
			vm.DiskGiB = disk / 1024
			seen := map[string]bool{}
			add := func(ip string) {
				if ip != "" && !seen[ip] {
					seen[ip] = true
					vm.Addresses = append(vm.Addresses, ip)
				}
			}
			add(el.Address)
			for _, n := range res.NicList {
				for _, ep := range n.IPEndpointList {
					add(ep.IP)
				}
			}
			a.VMs = append(a.VMs, vm)
		}
	}
	return a, nil
}

// App reads one app. A deleted app is still returned (State "deleted"); an
// app Calm does not know is an error satisfying IsNotFound.
func (c *Client) App(ctx context.Context, uuid string) (*App, error) {
	var raw json.RawMessage
	if err := c.call(ctx, http.MethodGet, "/apps/"+seg(uuid), nil, &raw); err != nil {
		return nil, err
	}
	return appFrom(raw)
}

// ListApps returns the apps filter (FIQL; "" for all) selects. Calm lists
// deleted apps too; add Filter("state", OpNotEqual, "deleted") to leave
// them out.
func (c *Client) ListApps(ctx context.Context, filter string) ([]App, error) {
	var out []App
	err := c.listAll(ctx, "/apps/list", "app", filter, func(raw json.RawMessage) error {
		a, err := appFrom(raw)
		if err == nil {
			out = append(out, *a)
		}
		return err
	})
	return out, err
}

// AppByName returns the live (not deleted) app called name in project
// ("" for any project). None is an error satisfying IsNotFound.
func (c *Client) AppByName(ctx context.Context, project, name string) (*App, error) {
	// Only name== goes to Calm (what its own clients send); the exact
	// name, the project and the state are checked here.
	apps, err := c.ListApps(ctx, Filter("name", OpEqual, name).String())
	if err != nil {
		return nil, err
	}
	var hits []App
	for _, a := range apps {
		if a.Name == name && !a.Deleted() && (project == "" || a.Project == project) {
			hits = append(hits, a)
		}
	}
	switch len(hits) {
	case 0:
		return nil, fmt.Errorf("calm: no app %q in project %q: %w", name, project, ErrNotFound)
	case 1:
		return &hits[0], nil
	}
	return nil, fmt.Errorf("calm: %d live apps are called %q in project %q", len(hits), name, project)
}

// DeleteApp deletes an app (soft: remove it from Calm and leave its VMs)
// and returns the delete's runlog uuid. The app goes deleting, then
// deleted. An app already deleted (or unknown) is an error satisfying
// IsNotFound, which callers treat as done.
func (c *Client) DeleteApp(ctx context.Context, uuid string, soft bool) (string, error) {
	path := "/apps/" + seg(uuid)
	if soft {
		path += "?type=soft"
	}
	var resp struct {
		Status struct {
			RunlogUUID    string `json:"runlog_uuid"`
			ErgonTaskUUID string `json:"ergon_task_uuid"`
		} `json:"status"`
	}
	if err := c.call(ctx, http.MethodDelete, path, nil, &resp); err != nil {
		return "", err
	}
	return resp.Status.RunlogUUID, nil
}

// System actions.
const (
	ActionStart   = "action_start"
	ActionStop    = "action_stop"
	ActionRestart = "action_restart"
)

// RunAction runs a system action ("start", "stop", "restart" or their
// action_ names) and returns its runlog uuid.
func (c *Client) RunAction(ctx context.Context, appUUID, action string) (string, error) {
	if action != "" && !strings.HasPrefix(action, "action_") {
		action = "action_" + action
	}
	var resp struct {
		RunlogUUID string `json:"runlog_uuid"`
		Status     struct {
			RunlogUUID string `json:"runlog_uuid"`
		} `json:"status"`
	}
	if err := c.call(ctx, http.MethodPost, "/apps/"+seg(appUUID)+"/actions/run", map[string]string{"name": action}, &resp); err != nil {
		return "", err
	}
	id := firstOf(resp.RunlogUUID, resp.Status.RunlogUUID)
	if id == "" {
		return "", fmt.Errorf("calm: %s on app %s answered without a runlog uuid", action, appUUID)
	}
	return id, nil
}

// Runlog is one entry of an app's runlog tree.
type Runlog struct {
	UUID       string
	Type       string // action_runlog, task_runlog, ...
	State      string // PENDING, RUNNING, SUCCESS, FAILURE, ...
	Action     string // action_reference.name
	Task       string // task_reference.name, for task runlogs
	RootUUID   string
	ParentUUID string
	AppUUID    string
	Created    time.Time
	Updated    time.Time
}

// Runlog states calm-dsl treats as final, and the failed ones among them.
var (
	terminalRunlogStates = map[string]bool{"SUCCESS": true, "FAILURE": true, "APPROVAL_FAILED": true, "WARNING": true,
		"ERROR": true, "ABORTED": true, "SYS_FAILURE": true, "SYS_ERROR": true, "SYS_ABORTED": true}
	failedRunlogStates = map[string]bool{"FAILURE": true, "APPROVAL_FAILED": true, "WARNING": true,
		"ERROR": true, "ABORTED": true, "SYS_FAILURE": true, "SYS_ERROR": true, "SYS_ABORTED": true}
)

// Terminal reports whether the runlog has finished.
func (r *Runlog) Terminal() bool { return terminalRunlogStates[r.State] }

// Failed reports whether it finished badly.
func (r *Runlog) Failed() bool { return failedRunlogStates[r.State] }

// Runlogs returns the runlogs of an app, oldest first: the tree under
// rootUUID (root_reference==rootUUID, the root included), or all of them
// when rootUUID is "".
func (c *Client) Runlogs(ctx context.Context, appUUID, rootUUID string) ([]Runlog, error) {
	filter := ""
	if rootUUID != "" {
		filter = Filter("root_reference", OpEqual, rootUUID).String()
	}
	var out []Runlog
	err := c.listAll(ctx, "/apps/"+seg(appUUID)+"/app_runlogs/list", "app_runlog", filter, func(raw json.RawMessage) error {
		var j struct {
			Metadata struct {
				UUID           string `json:"uuid"`
				CreationTime   string `json:"creation_time"`
				LastUpdateTime string `json:"last_update_time"`
			} `json:"metadata"`
			Status struct {
				UUID                 string    `json:"uuid"`
				Type                 string    `json:"type"`
				State                string    `json:"state"`
				ActionReference      Reference `json:"action_reference"`
				TaskReference        Reference `json:"task_reference"`
				RootReference        Reference `json:"root_reference"`
				ParentReference      Reference `json:"parent_reference"`
				ApplicationReference Reference `json:"application_reference"`
			} `json:"status"`
		}
		if err := json.Unmarshal(raw, &j); err != nil {
			return fmt.Errorf("calm: decode runlog: %w", err)
		}
		out = append(out, Runlog{UUID: firstOf(j.Metadata.UUID, j.Status.UUID), Type: j.Status.Type, State: j.Status.State,
			Action: j.Status.ActionReference.Name, Task: j.Status.TaskReference.Name, RootUUID: j.Status.RootReference.UUID,
			ParentUUID: j.Status.ParentReference.UUID, AppUUID: j.Status.ApplicationReference.UUID,
			Created: parseCalmTime(j.Metadata.CreationTime), Updated: parseCalmTime(j.Metadata.LastUpdateTime)})
		return nil
	})
	return out, err
}

// RunlogOutput returns what a runlog has printed so far.
func (c *Client) RunlogOutput(ctx context.Context, appUUID, runlogUUID string) (string, error) {
	type outputs []struct {
		Output string `json:"output"`
	}
	var resp struct {
		Status struct {
			OutputList outputs `json:"output_list"`
		} `json:"status"`
		OutputList outputs `json:"output_list"` // where some Calm versions put it
	}
	if err := c.call(ctx, http.MethodGet, "/apps/"+seg(appUUID)+"/app_runlogs/"+seg(runlogUUID)+"/output", nil, &resp); err != nil {
		return "", err
	}
	list := resp.Status.OutputList
	if len(list) == 0 {
		list = resp.OutputList
	}
	var b strings.Builder
	for _, o := range list {
		b.WriteString(o.Output)
	}
	return b.String(), nil
}
