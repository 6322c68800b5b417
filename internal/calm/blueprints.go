package calm

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Reference is Calm's {"kind","name","uuid"}.
type Reference struct {
	Kind string `json:"kind,omitempty"`
	Name string `json:"name,omitempty"`
	UUID string `json:"uuid,omitempty"`
}

// Project is a Calm project.
type Project struct {
	UUID         string
	Name         string
	Description  string
	State        string
	Environments []Reference
	Raw          json.RawMessage
}

// Blueprint is a Calm blueprint. Profiles are its app profiles (name and
// uuid).
type Blueprint struct {
	UUID        string
	Name        string
	Description string
	State       string // ACTIVE, DRAFT, ERROR, DELETED: only ACTIVE launches
	Project     string
	ProjectUUID string
	Profiles    []Reference
	Raw         json.RawMessage
}

// Active reports whether the blueprint can be launched.
func (b *Blueprint) Active() bool { return b.State == "ACTIVE" }

// Variable is a runtime-editable variable. In a LaunchSpec only Name (or
// UUID) and Value matter; SimpleLaunch fills UUID and Context from the
// blueprint.
type Variable struct {
	Name    string
	UUID    string
	Context string
	Value   string
	Type    string // LOCAL or SECRET (as the blueprint reports it)
}

// ProfileEditables is one app profile's runtime-editable variables.
type ProfileEditables struct {
	Profile   Reference
	Variables []Variable
}

// Variable returns the editable called name, if any.
func (p *ProfileEditables) Variable(name string) (Variable, bool) {
	for _, v := range p.Variables {
		if v.Name == name {
			return v, true
		}
	}
	return Variable{}, false
}

type entityJSON struct {
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
		Resources   struct {
			EnvironmentReferenceList []Reference `json:"environment_reference_list"`
		} `json:"resources"`
	} `json:"spec"`
	Status struct {
		Name        string `json:"name"`
		Description string `json:"description"`
		State       string `json:"state"`
		UUID        string `json:"uuid"`
		Resources   struct {
			AppProfileList []Reference `json:"app_profile_list"`
		} `json:"resources"`
	} `json:"status"`
}

func (e *entityJSON) name() string        { return firstOf(e.Status.Name, e.Metadata.Name, e.Spec.Name) }
func (e *entityJSON) description() string { return firstOf(e.Status.Description, e.Spec.Description) }
func (e *entityJSON) uuid() string        { return firstOf(e.Metadata.UUID, e.Status.UUID) }

func firstOf(s ...string) string {
	for _, v := range s {
		if v != "" {
			return v
		}
	}
	return ""
}

func decodeEntity(raw json.RawMessage) (*entityJSON, error) {
	var e entityJSON
	if err := json.Unmarshal(raw, &e); err != nil {
		return nil, fmt.Errorf("calm: decode entity: %w", err)
	}
	return &e, nil
}

func projectFrom(raw json.RawMessage) (Project, error) {
	e, err := decodeEntity(raw)
	if err != nil {
		return Project{}, err
	}
	return Project{UUID: e.uuid(), Name: e.name(), Description: e.description(), State: e.Status.State,
		Environments: e.Spec.Resources.EnvironmentReferenceList, Raw: raw}, nil
}

func blueprintFrom(raw json.RawMessage) (Blueprint, error) {
	e, err := decodeEntity(raw)
	if err != nil {
		return Blueprint{}, err
	}
	b := Blueprint{UUID: e.uuid(), Name: e.name(), Description: e.description(), State: e.Status.State,
		Project: e.Metadata.ProjectReference.Name, ProjectUUID: e.Metadata.ProjectReference.UUID, Raw: raw}
	for _, p := range e.Status.Resources.AppProfileList {
		b.Profiles = append(b.Profiles, Reference{Kind: "app_profile", Name: p.Name, UUID: p.UUID})
	}
	return b, nil
}

// ListProjects returns the projects filter (FIQL; "" for all) selects.
func (c *Client) ListProjects(ctx context.Context, filter string) ([]Project, error) {
	var out []Project
	err := c.listAll(ctx, "/projects/list", "project", filter, func(raw json.RawMessage) error {
		p, err := projectFrom(raw)
		out = append(out, p)
		return err
	})
	return out, err
}

// ListBlueprints returns the blueprints filter (FIQL; "" for all) selects,
// deleted ones included unless the filter leaves them out.
func (c *Client) ListBlueprints(ctx context.Context, filter string) ([]Blueprint, error) {
	var out []Blueprint
	err := c.listAll(ctx, "/blueprints/list", "blueprint", filter, func(raw json.RawMessage) error {
		b, err := blueprintFrom(raw)
		out = append(out, b)
		return err
	})
	return out, err
}

// BlueprintByName returns the blueprint called name in project, ignoring
// deleted ones. None is an error satisfying IsNotFound.
func (c *Client) BlueprintByName(ctx context.Context, project, name string) (*Blueprint, error) {
	// Ask Calm for the name (as its own clients do) and check project and
	// exact name here: Calm's == may match patterns.
	bps, err := c.ListBlueprints(ctx, Filter("name", OpEqual, name).And(Filter("state", OpNotEqual, "DELETED")).String())
	if err != nil {
		return nil, err
	}
	var hits []Blueprint
	for _, b := range bps {
		if b.Name == name && b.State != "DELETED" && (project == "" || b.Project == project) {
			hits = append(hits, b)
		}
	}
	switch len(hits) {
	case 0:
		return nil, fmt.Errorf("calm: no blueprint %q in project %q: %w", name, project, ErrNotFound)
	case 1:
		return &hits[0], nil
	}
	return nil, fmt.Errorf("calm: %d blueprints are called %q in project %q; name the project", len(hits), name, project)
}

// Blueprint reads one blueprint.
func (c *Client) Blueprint(ctx context.Context, uuid string) (*Blueprint, error) {
	var raw json.RawMessage
	if err := c.call(ctx, http.MethodGet, "/blueprints/"+seg(uuid), nil, &raw); err != nil {
		return nil, err
	}
	b, err := blueprintFrom(raw)
	if err != nil {
		return nil, err
	}
	return &b, nil
}

// RuntimeEditables returns, per app profile, the variables a launch may set.
func (c *Client) RuntimeEditables(ctx context.Context, bpUUID string) ([]ProfileEditables, error) {
	var resp struct {
		Resources []struct {
			AppProfileReference Reference `json:"app_profile_reference"`
			RuntimeEditables    struct {
				VariableList []struct {
					UUID    string          `json:"uuid"`
					Name    string          `json:"name"`
					Context string          `json:"context"`
					Type    string          `json:"type"`
					Value   json.RawMessage `json:"value"`
				} `json:"variable_list"`
			} `json:"runtime_editables"`
		} `json:"resources"`
	}
	if err := c.call(ctx, http.MethodGet, "/blueprints/"+seg(bpUUID)+"/runtime_editables", nil, &resp); err != nil {
		return nil, err
	}
	out := make([]ProfileEditables, 0, len(resp.Resources))
	for _, r := range resp.Resources {
		pe := ProfileEditables{Profile: r.AppProfileReference}
		for _, v := range r.RuntimeEditables.VariableList {
			pe.Variables = append(pe.Variables, Variable{Name: v.Name, UUID: v.UUID, Context: v.Context, Type: v.Type,
				Value: editableValue(v.Value)})
		}
		out = append(out, pe)
	}
	return out, nil
}

// editableValue reads {"value": ...} (string, number or bool) or a bare value.
func editableValue(raw json.RawMessage) string {
	raw = bytes.TrimSpace(raw)
	if len(raw) > 0 && raw[0] == '{' {
		var obj struct {
			Value json.RawMessage `json:"value"`
		}
		if json.Unmarshal(raw, &obj) != nil {
			return ""
		}
		raw = obj.Value
	}
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return s
	}
	var n json.Number
	if json.Unmarshal(raw, &n) == nil {
		return n.String()
	}
	var b bool
	if json.Unmarshal(raw, &b) == nil {
		return strconv.FormatBool(b)
	}
	return ""
}

// parseCalmTime reads Calm's timestamps: microseconds since the epoch as
// a decimal string (Calm entities) or RFC 3339 (other v3 entities).
func parseCalmTime(s string) time.Time {
	s = strings.TrimSpace(s)
	if s == "" {
		return time.Time{}
	}
	if n, err := strconv.ParseInt(s, 10, 64); err == nil {
		return time.UnixMicro(n).UTC()
	}
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t.UTC()
	}
	return time.Time{}
}
