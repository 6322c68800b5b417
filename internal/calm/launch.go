package calm

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
)

// LaunchSpec is what SimpleLaunch asks for.
type LaunchSpec struct {
	AppName        string
	AppDescription string
	// ProfileName or ProfileUUID picks the app profile; with neither the
	// blueprint's first profile is used.
	ProfileName string
	ProfileUUID string
	// Variables set runtime-editable variables by name (or uuid). Unknown
	// names are sent as they are, so Calm's refusal names them.
	Variables []Variable
}

// LaunchStatus is a pending launch as Calm reports it.
type LaunchStatus struct {
	State         string // running, then success or failure
	AppUUID       string // set on success
	AppName       string
	BlueprintUUID string
	BlueprintName string
	Message       string // why it failed, when Calm says
}

// Succeeded reports whether the launch made its app.
func (s *LaunchStatus) Succeeded() bool { return strings.EqualFold(s.State, "success") }

// Failed reports whether the launch ended without an app. Calm's clients
// disagree on the spelling ("failure", "failed"); both are accepted.
func (s *LaunchStatus) Failed() bool {
	switch strings.ToLower(s.State) {
	case "failure", "failed", "error":
		return true
	}
	return false
}

// Running reports whether the launch is still under way.
func (s *LaunchStatus) Running() bool { return !s.Succeeded() && !s.Failed() }

type launchVariableJSON struct {
	UUID    string            `json:"uuid,omitempty"`
	Name    string            `json:"name,omitempty"`
	Context string            `json:"context,omitempty"`
	Value   map[string]string `json:"value"`
}

// SimpleLaunch launches an app from blueprint bpUUID and returns the
// launch request id to follow with PendingLaunch. It reads the blueprint's
// runtime editables first to send the profile and variable uuids Calm
// expects.
func (c *Client) SimpleLaunch(ctx context.Context, bpUUID string, spec LaunchSpec) (string, error) {
	if strings.TrimSpace(spec.AppName) == "" {
		return "", errors.New("calm: an app name is required to launch")
	}
	profiles, err := c.RuntimeEditables(ctx, bpUUID)
	if err != nil {
		return "", err
	}
	var prof *ProfileEditables
	for i := range profiles {
		p := &profiles[i].Profile
		if (spec.ProfileUUID == "" || p.UUID == spec.ProfileUUID) && (spec.ProfileName == "" || p.Name == spec.ProfileName) {
			prof = &profiles[i]
			break
		}
	}
	ref := Reference{Kind: "app_profile", Name: spec.ProfileName, UUID: spec.ProfileUUID}
	if prof != nil {
		ref.Name, ref.UUID = prof.Profile.Name, prof.Profile.UUID
	} else if ref.Name == "" && ref.UUID == "" {
		return "", fmt.Errorf("calm: blueprint %s has no app profile to launch", bpUUID)
	}
	vars := []launchVariableJSON{}
	for _, v := range spec.Variables {
		lv := launchVariableJSON{UUID: v.UUID, Name: v.Name, Context: v.Context, Value: map[string]string{"value": v.Value}}
		if prof != nil {
			for _, e := range prof.Variables {
				if (v.UUID != "" && e.UUID == v.UUID) || (v.UUID == "" && e.Name == v.Name) {
					lv.UUID, lv.Name = e.UUID, e.Name
					if lv.Context == "" {
						lv.Context = e.Context
					}
				}
			}
		}
		vars = append(vars, lv)
	}
	body := map[string]any{"spec": map[string]any{
		"app_name":              spec.AppName,
		"app_description":       spec.AppDescription,
		"app_profile_reference": ref,
		"runtime_editables":     map[string]any{"variable_list": vars},
	}}
	var resp struct {
		Status struct {
			RequestID string `json:"request_id"`
		} `json:"status"`
	}
	if err := c.call(ctx, http.MethodPost, "/blueprints/"+seg(bpUUID)+"/simple_launch", body, &resp); err != nil {
		return "", err
	}
	if resp.Status.RequestID == "" {
		return "", fmt.Errorf("calm: launch of blueprint %s answered without a request id", bpUUID)
	}
	return resp.Status.RequestID, nil
}

// PendingLaunch reads the state of a launch SimpleLaunch started.
func (c *Client) PendingLaunch(ctx context.Context, bpUUID, requestID string) (*LaunchStatus, error) {
	var resp struct {
		Status struct {
			State           string        `json:"state"`
			ApplicationUUID string        `json:"application_uuid"`
			AppName         string        `json:"app_name"`
			BpUUID          string        `json:"bp_uuid"`
			BpName          string        `json:"bp_name"`
			Message         string        `json:"message"`
			MessageList     []messageJSON `json:"message_list"`
		} `json:"status"`
	}
	if err := c.call(ctx, http.MethodGet, "/blueprints/"+seg(bpUUID)+"/pending_launches/"+seg(requestID), nil, &resp); err != nil {
		return nil, err
	}
	st := resp.Status
	msgs := []string{}
	if st.Message != "" {
		msgs = append(msgs, st.Message)
	}
	for _, m := range st.MessageList {
		if m.Message != "" {
			msgs = append(msgs, m.Message)
		}
	}
	return &LaunchStatus{State: st.State, AppUUID: st.ApplicationUUID, AppName: st.AppName,
		BlueprintUUID: st.BpUUID, BlueprintName: st.BpName, Message: strings.Join(msgs, "; ")}, nil
}
