package calm

import (
	"fmt"
	"net/netip"
	"strconv"
	"time"
)

// Seed is the Calm content the simulator starts with. It is plain data
// with JSON tags so an operator's config file can carry one. Seeding is
// idempotent: projects are matched by name, environments and blueprints by
// name within their project, and only missing ones are created (the
// failure knobs of existing blueprints are refreshed).
type Seed struct {
	Projects []SeedProject `json:"projects"`
}

// SeedProject is a Calm project with its environments and blueprints.
type SeedProject struct {
	Name        string `json:"name"`
	Description string `json:"description,omitempty"`
	// Environments are environment names; default one named after the project.
	Environments []string `json:"environments,omitempty"`
	// Network is the NETWORK default of blueprints whose profiles list no
	// variables (default 10.0.0.0/24).
	Network    string          `json:"network,omitempty"`
	Blueprints []SeedBlueprint `json:"blueprints,omitempty"`
}

// SeedBlueprint is a blueprint. Its profiles default to one, "Default",
// with StandardVariables and the blueprint's deployments.
type SeedBlueprint struct {
	Name        string `json:"name"`
	Description string `json:"description,omitempty"`
	// State is ACTIVE (default), DRAFT or ERROR; only ACTIVE launches.
	State string `json:"state,omitempty"`
	// Deployments are the VM groups of every profile that lists none of its
	// own; default one "vm" with one replica.
	Deployments []SeedDeployment `json:"deployments,omitempty"`
	Profiles    []SeedProfile    `json:"profiles,omitempty"`
	// FailLaunches makes every launch of this blueprint end in failure;
	// FailProvisions makes every app of it end in error. FailMessage is
	// what they report (a generic message by default).
	FailLaunches   bool   `json:"fail_launches,omitempty"`
	FailProvisions bool   `json:"fail_provisions,omitempty"`
	FailMessage    string `json:"fail_message,omitempty"`
}

// SeedDeployment is a group of identical VMs (a Calm deployment with its
// substrate).
type SeedDeployment struct {
	Name     string `json:"name"`               // service name, e.g. "web"
	Replicas int    `json:"replicas,omitempty"` // VMs; default 1
	Image    string `json:"image,omitempty"`    // disk image name
}

// SeedProfile is an app profile.
type SeedProfile struct {
	Name        string           `json:"name"`
	Deployments []SeedDeployment `json:"deployments,omitempty"` // default: the blueprint's
	Variables   []SeedVariable   `json:"variables,omitempty"`   // default: StandardVariables
}

// SeedVariable is a profile variable.
type SeedVariable struct {
	Name string `json:"name"`
	// Value is the default. A SECRET may have none: the simulator never
	// keeps a secret in clear.
	Value       string `json:"value,omitempty"`
	Type        string `json:"type,omitempty"`       // LOCAL (default) or SECRET
	ValueType   string `json:"value_type,omitempty"` // STRING (default) or INT
	Label       string `json:"label,omitempty"`
	Description string `json:"description,omitempty"`
	// Fixed variables are not runtime editable: a launch that sets one is
	// refused.
	Fixed bool `json:"fixed,omitempty"`
}

// Variables the simulator gives meaning to.
const (
	VarVCPUs     = "VCPUS"          // vCPUs of every VM (INT)
	VarMemoryGiB = "MEMORY_GIB"     // memory of every VM in GiB (INT)
	VarDiskGiB   = "DISK_GIB"       // boot disk of every VM in GiB (INT)
	VarNetwork   = "NETWORK"        // IPv4 CIDR the VMs' addresses come from
	VarIPAddress = "IP_ADDRESS"     // when set, the first VM's address
	VarPassword  = "ADMIN_PASSWORD" // SECRET
)

// StandardVariables is the runtime-editable variable set of the default
// blueprints: sizing, network, an optional fixed address, owner and
// request labels, the admin password (SECRET) and the image (fixed).
func StandardVariables(network string, vcpus, memoryGiB, diskGiB int, image string) []SeedVariable {
	return []SeedVariable{
		{Name: VarVCPUs, Value: strconv.Itoa(vcpus), ValueType: "INT", Label: "vCPUs per VM"},
		{Name: VarMemoryGiB, Value: strconv.Itoa(memoryGiB), ValueType: "INT", Label: "Memory per VM (GiB)"},
		{Name: VarDiskGiB, Value: strconv.Itoa(diskGiB), ValueType: "INT", Label: "Boot disk per VM (GiB)"},
		{Name: VarNetwork, Value: network, Label: "Network (CIDR)", Description: "VM addresses are allocated from it"},
		{Name: VarIPAddress, Label: "Address of the first VM", Description: "optional; empty allocates the next free address"},
		{Name: "OWNER_EMAIL", Label: "Owner e-mail"},
		{Name: "COST_CENTER", Label: "Cost center"},
		{Name: "SAS_REQUEST_ID", Label: "sas request id", Description: "set by the sas gateway to tie the app to its request"},
		{Name: VarPassword, Type: "SECRET", Label: "Administrator password"},
		{Name: "IMAGE", Value: image, Label: "Disk image", Fixed: true},
	}
}

// DefaultSeed matches the gateway's example bundles: one project per
// environment (sas-sbx, sas-dev, sas-prod, each with one environment of the
// same name) holding the blueprints the bundles' catalogs name, plus a
// DRAFT blueprint in sas-sbx for refusal tests.
func DefaultSeed() Seed {
	bp := func(name, desc, network, image string, vcpus, mem, disk int, deps ...SeedDeployment) SeedBlueprint {
		if len(deps) == 0 {
			deps = []SeedDeployment{{Name: "vm", Replicas: 1, Image: image}}
		}
		return SeedBlueprint{Name: name, Description: desc, Deployments: deps, Profiles: []SeedProfile{
			{Name: "Default", Variables: StandardVariables(network, vcpus, mem, disk, image)},
		}}
	}
	withHA := func(b SeedBlueprint, network, image string, vcpus, mem, disk, replicas int) SeedBlueprint {
		b.Profiles = append(b.Profiles, SeedProfile{
			Name:        "HA",
			Deployments: []SeedDeployment{{Name: "db", Replicas: replicas, Image: image}},
			Variables:   StandardVariables(network, vcpus, mem, disk, image),
		})
		return b
	}
	const (
		sbxNet, devNet, prodNet = "10.10.0.0/24", "10.20.0.0/24", "10.30.0.0/24"
		rocky, rockyProd        = "rocky-9-cis-l1", "rocky-9-stig-fips"
		nginx, pg, k8s          = "nginx-rocky-9-cis-l1", "postgres-16-rocky-9", "k8s-worker-rocky-9"
	)
	linuxSandbox := func(net string) SeedBlueprint {
		return bp("linux-vm-sandbox", "One Rocky Linux 9 VM from the CIS level 1 image", net, rocky, 1, 2, 20)
	}
	webSandbox := func(net string) SeedBlueprint {
		return bp("web-stack-sandbox", "nginx front end and one application VM for prototypes", net, rocky, 1, 2, 20,
			SeedDeployment{Name: "web", Replicas: 1, Image: nginx},
			SeedDeployment{Name: "app", Replicas: 1, Image: rocky})
	}
	draft := bp("draft-sandbox", "Work in progress: not launchable until published", sbxNet, rocky, 1, 2, 20)
	draft.State = "DRAFT"
	return Seed{Projects: []SeedProject{
		{
			Name: "sas-sbx", Description: "sas sandbox environment", Network: sbxNet,
			Blueprints: []SeedBlueprint{linuxSandbox(sbxNet), webSandbox(sbxNet), draft},
		},
		{
			Name: "sas-dev", Description: "sas development environment", Network: devNet,
			Blueprints: []SeedBlueprint{
				linuxSandbox(devNet),
				webSandbox(devNet),
				bp("linux-vm-dev", "Rocky Linux 9 VM, CIS level 1, joined to the dev monitoring stack", devNet, rocky, 2, 4, 40),
				withHA(bp("postgres-dev", "Single-node PostgreSQL 16 with nightly snapshots", devNet, pg, 2, 8, 100,
					SeedDeployment{Name: "db", Replicas: 1, Image: pg}), devNet, pg, 2, 8, 100, 3),
				bp("k8s-worker-pool-dev", "Three Kubernetes worker VMs for the shared dev cluster", devNet, k8s, 4, 16, 100,
					SeedDeployment{Name: "worker", Replicas: 3, Image: k8s}),
			},
		},
		{
			Name: "sas-prod", Description: "sas production environment", Network: prodNet,
			Blueprints: []SeedBlueprint{
				bp("linux-vm-prod", "Rocky Linux 9 VM, CIS level 2 / STIG image, FIPS mode, EDR agent", prodNet, rockyProd, 2, 8, 80),
				withHA(bp("postgres-ha-prod", "Three-node PostgreSQL 16 with synchronous replication and encrypted backups", prodNet, pg, 4, 16, 200,
					SeedDeployment{Name: "db", Replicas: 3, Image: pg}), prodNet, pg, 8, 32, 200, 3),
			},
		},
	}}
}

var blueprintStates = map[string]bool{"ACTIVE": true, "DRAFT": true, "ERROR": true, "DELETED": true}

// applySeed creates what seed names and st lacks.
func applySeed(st *store, seed Seed, now time.Time) error {
	for _, sp := range seed.Projects {
		if sp.Name == "" {
			return fmt.Errorf("seed: a project has no name")
		}
		p := st.projectByName(sp.Name)
		if p == nil {
			p = &project{UUID: newUUID(), Name: sp.Name, Description: sp.Description, Created: now}
			st.Projects = append(st.Projects, p)
		}
		envs := sp.Environments
		if len(envs) == 0 {
			envs = []string{sp.Name}
		}
		for _, en := range envs {
			found := false
			for _, e := range st.Environments {
				found = found || (e.ProjectUUID == p.UUID && e.Name == en)
			}
			if !found {
				st.Environments = append(st.Environments, &environment{UUID: newUUID(), Name: en, ProjectUUID: p.UUID, Created: now})
			}
		}
		network := sp.Network
		if network == "" {
			network = "10.0.0.0/24"
		}
		seen := map[string]bool{}
		for _, sb := range sp.Blueprints {
			if sb.Name == "" {
				return fmt.Errorf("seed: a blueprint of project %s has no name", sp.Name)
			}
			if seen[sb.Name] {
				return fmt.Errorf("seed: blueprint %s appears twice in project %s", sb.Name, sp.Name)
			}
			seen[sb.Name] = true
			b, err := buildBlueprint(sb, p.UUID, network, now)
			if err != nil {
				return fmt.Errorf("seed: blueprint %s in project %s: %w", sb.Name, sp.Name, err)
			}
			var existing *blueprint
			for _, o := range st.Blueprints {
				if o.ProjectUUID == p.UUID && o.Name == sb.Name {
					existing = o
				}
			}
			if existing != nil {
				existing.FailLaunches, existing.FailProvisions, existing.FailMessage = b.FailLaunches, b.FailProvisions, b.FailMessage
				continue
			}
			st.Blueprints = append(st.Blueprints, b)
		}
	}
	return nil
}

func buildBlueprint(sb SeedBlueprint, projectUUID, network string, now time.Time) (*blueprint, error) {
	b := &blueprint{UUID: newUUID(), Name: sb.Name, Description: sb.Description, ProjectUUID: projectUUID,
		State: sb.State, Created: now, FailLaunches: sb.FailLaunches, FailProvisions: sb.FailProvisions, FailMessage: sb.FailMessage}
	if b.State == "" {
		b.State = "ACTIVE"
	}
	if !blueprintStates[b.State] {
		return nil, fmt.Errorf("state %q is not one of ACTIVE, DRAFT, ERROR, DELETED", b.State)
	}
	deps := sb.Deployments
	if len(deps) == 0 {
		deps = []SeedDeployment{{Name: "vm", Replicas: 1}}
	}
	profiles := sb.Profiles
	if len(profiles) == 0 {
		profiles = []SeedProfile{{Name: "Default"}}
	}
	for _, sp := range profiles {
		if sp.Name == "" {
			return nil, fmt.Errorf("a profile has no name")
		}
		if b.profile("", sp.Name) != nil {
			return nil, fmt.Errorf("profile %s appears twice", sp.Name)
		}
		p := &profile{UUID: newUUID(), Name: sp.Name}
		pd := sp.Deployments
		if len(pd) == 0 {
			pd = deps
		}
		for _, d := range pd {
			if d.Name == "" {
				return nil, fmt.Errorf("profile %s: a deployment has no name", sp.Name)
			}
			r := d.Replicas
			if r == 0 {
				r = 1
			}
			if r < 0 || r > 64 {
				return nil, fmt.Errorf("profile %s: deployment %s: replicas %d is outside 1..64", sp.Name, d.Name, d.Replicas)
			}
			p.Deployments = append(p.Deployments, &deployment{UUID: newUUID(), Name: d.Name, Replicas: r, Image: d.Image})
		}
		vars := sp.Variables
		if len(vars) == 0 {
			vars = StandardVariables(network, 2, 4, 40, pd[0].Image)
		}
		for _, sv := range vars {
			v := &variable{UUID: newUUID(), Name: sv.Name, Type: sv.Type, ValueType: sv.ValueType, Value: sv.Value,
				Label: sv.Label, Description: sv.Description, Runtime: !sv.Fixed}
			if v.Name == "" {
				return nil, fmt.Errorf("profile %s: a variable has no name", sp.Name)
			}
			if p.variable(v.Name) != nil {
				return nil, fmt.Errorf("profile %s: variable %s appears twice", sp.Name, v.Name)
			}
			if v.Type == "" {
				v.Type = "LOCAL"
			}
			if v.ValueType == "" {
				v.ValueType = "STRING"
			}
			if v.Type != "LOCAL" && v.Type != "SECRET" {
				return nil, fmt.Errorf("profile %s: variable %s: type %q is not LOCAL or SECRET", sp.Name, v.Name, v.Type)
			}
			if v.Type == "SECRET" && v.Value != "" {
				return nil, fmt.Errorf("profile %s: variable %s: a SECRET cannot have a default (it would be kept in clear)", sp.Name, v.Name)
			}
			if msg := checkValue(v, v.Value); msg != "" && v.Value != "" {
				return nil, fmt.Errorf("profile %s: default of %s", sp.Name, msg)
			}
			p.Variables = append(p.Variables, v)
		}
		b.Profiles = append(b.Profiles, p)
	}
	return b, nil
}

// checkValue returns why value is not acceptable for v, or "".
func checkValue(v *variable, value string) string {
	if v.ValueType == "INT" {
		n, err := strconv.Atoi(value)
		if err != nil || n <= 0 {
			return fmt.Sprintf("%s must be a positive integer, got %q", v.Name, value)
		}
	}
	switch v.Name {
	case VarNetwork:
		if _, err := parseNetwork(value); err != nil {
			return fmt.Sprintf("%s: %v", v.Name, err)
		}
	case VarIPAddress:
		if value == "" {
			return ""
		}
		if a, err := netip.ParseAddr(value); err != nil || !a.Is4() {
			return fmt.Sprintf("%s must be an IPv4 address, got %q", v.Name, value)
		}
	}
	return ""
}
