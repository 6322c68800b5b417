package calm

import (
	"fmt"
	"net/http"
	"strings"
	"time"
)

// actionRule is what a system action needs and does.
type actionRule struct {
	from      []string // states it may start from
	transient string
	target    string
	task      string
}

var actionRules = map[string]actionRule{
	"action_start":   {from: []string{"stopped"}, transient: "starting", target: "running", task: "Power on VMs"},
	"action_stop":    {from: []string{"running"}, transient: "stopping", target: "stopped", task: "Power off VMs"},
	"action_restart": {from: []string{"running"}, transient: "restarting", target: "running", task: "Restart VMs"},
}

// deleteApp serves DELETE /apps/{uuid} (?type=soft keeps the VMs). A
// delete already under way is answered again with its runlog (a retried
// DELETE is harmless); an app already deleted is 404, which a client
// treats as done.
func (s *Server) deleteApp(w http.ResponseWriter, id string, soft bool, user string) {
	var runlogUUID string
	err := s.change(func(st *store, now time.Time) *apiError {
		a := st.app(id)
		if a == nil || !a.visible(now) {
			return errNotFound("app", id)
		}
		a.fold(now)
		switch a.stateAt(now) {
		case "deleted":
			return newError(http.StatusNotFound, "app", ReasonNotFound, "app %s (%s) is already deleted", a.Name, a.UUID)
		case "deleting":
			runlogUUID = a.Current.RunlogUUID
			return nil
		}
		st.abort(a, now)
		for _, v := range a.VMs { // what the VMs were doing is what they keep
			v.PowerOverride = a.power(now, v)
		}
		action, task := "action_delete", "Delete VMs"
		lines := []string{"Deleting app " + a.Name}
		if soft {
			action, task = "action_soft_delete", "Remove app from Calm (VMs kept)"
			lines = append(lines, fmt.Sprintf("Soft delete: %d VM(s) left running on the cluster", len(a.VMs)))
		} else {
			for _, v := range a.VMs {
				lines = append(lines, fmt.Sprintf("Deleted VM %s (%s), released %s", v.Name, v.UUID, v.Address))
			}
		}
		lines = append(lines, "App "+a.Name+" deleted")
		end := now.Add(s.deleteTime)
		runlogUUID = st.addRunlogs(a, action, task, user, now, end, false, lines)
		a.Current = &transition{Action: action, Transient: "deleting", Target: "deleted", Start: now, End: end, RunlogUUID: runlogUUID}
		a.SoftDeleted = soft
		a.Updated = now
		return nil
	})
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"api_version": APIVersion,
		"status": map[string]any{"runlog_uuid": runlogUUID, "ergon_task_uuid": derivedUUID(runlogUUID, "ergon")}})
}

// runAction serves POST /apps/{uuid}/actions/run ({"name": "action_stop"})
// and POST /apps/{uuid}/actions/{action_uuid}/run. Only the system actions
// exist (no custom actions are seeded); an unknown action uuid is 404.
func (s *Server) runAction(w http.ResponseWriter, id, actionUUID string, body []byte, user string) {
	var req struct {
		Name string `json:"name"`
	}
	if actionUUID == "" {
		if err := decodeBody("app", body, &req); err != nil {
			writeError(w, err)
			return
		}
		if req.Name == "" {
			writeError(w, errUnprocessable("app", "name is required: the system action to run (action_start, action_stop, action_restart)").withField("name"))
			return
		}
	} else if !isUUID(actionUUID) {
		writeError(w, newError(http.StatusBadRequest, "app_action", ReasonInvalidUUID, "%q is not a valid action uuid", actionUUID))
		return
	}
	var runlogUUID string
	err := s.change(func(st *store, now time.Time) *apiError {
		a := st.app(id)
		if a == nil || !a.visible(now) {
			return errNotFound("app", id)
		}
		name := req.Name
		if actionUUID != "" {
			for n := range actionRules {
				if derivedUUID(a.UUID, n) == actionUUID {
					name = n
				}
			}
			if name == "" {
				return newError(http.StatusNotFound, "app_action", ReasonNotFound, "action %s not found in app %s", actionUUID, a.Name)
			}
		}
		rule, ok := actionRules[name]
		if !ok {
			return errUnprocessable("app", "action %q cannot be run here (system actions: action_start, action_stop, action_restart; delete with DELETE)", name).withField("name")
		}
		a.fold(now)
		state := a.stateAt(now)
		allowed := false
		for _, f := range rule.from {
			allowed = allowed || f == state
		}
		if !allowed {
			return errState("app", "app %s is %s; %s needs it to be %s", a.Name, state, name, strings.Join(rule.from, " or ")).withField("state")
		}
		for _, v := range a.VMs {
			v.PowerOverride = "" // the action decides power from now on
		}
		lines := []string{fmt.Sprintf("Running %s on app %s", name, a.Name)}
		for _, v := range a.VMs {
			lines = append(lines, fmt.Sprintf("%s: %s", rule.task, v.Name))
		}
		lines = append(lines, "App "+a.Name+" is "+rule.target)
		end := now.Add(s.actionTime)
		runlogUUID = st.addRunlogs(a, name, rule.task, user, now, end, false, lines)
		a.Current = &transition{Action: name, Transient: rule.transient, Target: rule.target, Start: now, End: end, RunlogUUID: runlogUUID}
		a.Updated = now
		return nil
	})
	if err != nil {
		writeError(w, err)
		return
	}
	// The system-action call answers with a top-level runlog_uuid; the
	// action-uuid call nests it in status. Both are sent either way.
	writeJSON(w, http.StatusOK, map[string]any{"api_version": APIVersion, "runlog_uuid": runlogUUID,
		"status": map[string]any{"runlog_uuid": runlogUUID}})
}
