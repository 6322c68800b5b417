package calm

import (
	"net/http"
	"sort"
	"strings"
	"time"
)

// List paging: Calm's list calls default to 20 entities; calm-dsl pages
// with 250 (its list_all api_limit), which is the simulator's cap. A larger
// length is served as 250, and metadata.length says how many came back.
const (
	DefaultListLength = 20
	MaxListLength     = 250
)

// listRequest is the body of POST /<kind>/list.
type listRequest struct {
	Kind          string `json:"kind"`
	Filter        string `json:"filter"`
	Length        int    `json:"length"`
	Offset        int    `json:"offset"`
	SortAttribute string `json:"sort_attribute"`
	SortOrder     string `json:"sort_order"`
}

// row is one listable entity: what filters see and how to render it.
type row struct {
	created time.Time
	name    string
	attrs   map[string]string
	render  func() map[string]any
}

// filterable is each kind's FIQL selectors.
var filterable = map[string]map[string]bool{
	"project":     set("name", "uuid", "state"),
	"environment": set("name", "uuid", "state", "project_reference", "project_name"),
	"blueprint":   set("name", "uuid", "state", "project_reference", "project_name"),
	"app": set("name", "uuid", "state", "_state", "project_reference", "project_name",
		"blueprint_name", "blueprint_uuid", "owner"),
	"app_runlog": set("uuid", "state", "type", "root_reference", "parent_reference", "application_reference", "action_name"),
}

func set(names ...string) map[string]bool {
	m := map[string]bool{}
	for _, n := range names {
		m[n] = true
	}
	return m
}

var sortable = map[string]bool{"": true, "name": true, "creation_time": true, "_created_timestamp_usecs_": true}

func (s *Server) list(w http.ResponseWriter, kind, appUUID string, body []byte) {
	var req listRequest
	if err := decodeBody(kind, body, &req); err != nil {
		writeError(w, err)
		return
	}
	switch {
	case req.Length < 0:
		writeError(w, errBadRequest(kind, "length %d must not be negative", req.Length).withField("length"))
		return
	case req.Offset < 0:
		writeError(w, errBadRequest(kind, "offset %d must not be negative", req.Offset).withField("offset"))
		return
	case !sortable[req.SortAttribute]:
		writeError(w, errBadRequest(kind, "cannot sort by %q (sortable: name, creation_time, _created_timestamp_usecs_)",
			req.SortAttribute).withField("sort_attribute"))
		return
	}
	order := strings.ToUpper(req.SortOrder)
	if order != "" && order != "ASCENDING" && order != "DESCENDING" {
		writeError(w, errBadRequest(kind, "sort_order %q is not ASCENDING or DESCENDING", req.SortOrder).withField("sort_order"))
		return
	}
	f, err := parseFilter(req.Filter, filterable[kind])
	if err != nil {
		writeError(w, errBadRequest(kind, "%v", err).withField("filter"))
		return
	}
	length := req.Length
	if length == 0 {
		length = DefaultListLength
	}
	if length > MaxListLength {
		length = MaxListLength
	}

	s.mu.RLock()
	defer s.mu.RUnlock()
	now := s.now()
	var rows []row
	if kind == "app_runlog" {
		a := s.st.app(appUUID)
		if a == nil || !a.visible(now) {
			writeError(w, errNotFound("app", appUUID))
			return
		}
		rows = s.runlogRows(appUUID, now)
	} else {
		rows = s.rows(kind, now)
	}
	hideDeleted := kind == "app" && s.hideDel && !strings.Contains(req.Filter, "state")
	var hits []row
	for _, r := range rows {
		if hideDeleted && r.attrs["state"] == "deleted" {
			continue
		}
		if f.match(func(attr string) string { return r.attrs[attr] }) {
			hits = append(hits, r)
		}
	}
	// Rows come in creation order; sorting is stable so equal keys keep it.
	switch req.SortAttribute {
	case "name":
		sort.SliceStable(hits, func(i, j int) bool { return hits[i].name < hits[j].name })
	default:
		sort.SliceStable(hits, func(i, j int) bool { return hits[i].created.Before(hits[j].created) })
	}
	if order == "DESCENDING" {
		for i, j := 0, len(hits)-1; i < j; i, j = i+1, j-1 {
			hits[i], hits[j] = hits[j], hits[i]
		}
	}
	total := len(hits)
	page := []row{}
	if req.Offset < total {
		end := req.Offset + length
		if end > total {
			end = total
		}
		page = hits[req.Offset:end]
	}
	entities := make([]any, 0, len(page))
	for _, r := range page {
		entities = append(entities, r.render())
	}
	md := map[string]any{"kind": kind, "length": len(entities), "offset": req.Offset, "total_matches": total}
	if req.Filter != "" {
		md["filter"] = req.Filter
	}
	if req.SortAttribute != "" {
		md["sort_attribute"] = req.SortAttribute
		md["sort_order"] = order
	}
	writeJSON(w, http.StatusOK, map[string]any{"api_version": APIVersion, "metadata": md, "entities": entities})
}

// rows returns the entities of kind that exist at now, oldest first.
// Called with s.mu held.
func (s *Server) rows(kind string, now time.Time) []row {
	st := s.st
	projectName := func(uuid string) string {
		if p := st.project(uuid); p != nil {
			return p.Name
		}
		return ""
	}
	var out []row
	switch kind {
	case "project":
		for _, p := range st.Projects {
			out = append(out, row{created: p.Created, name: p.Name,
				attrs:  map[string]string{"name": p.Name, "uuid": p.UUID, "state": "COMPLETE"},
				render: func() map[string]any { return st.renderProject(p) }})
		}
	case "environment":
		for _, e := range st.Environments {
			out = append(out, row{created: e.Created, name: e.Name,
				attrs: map[string]string{"name": e.Name, "uuid": e.UUID, "state": "ACTIVE",
					"project_reference": e.ProjectUUID, "project_name": projectName(e.ProjectUUID)},
				render: func() map[string]any { return st.renderEnvironment(e) }})
		}
	case "blueprint":
		for _, b := range st.Blueprints {
			out = append(out, row{created: b.Created, name: b.Name,
				attrs: map[string]string{"name": b.Name, "uuid": b.UUID, "state": b.State,
					"project_reference": b.ProjectUUID, "project_name": projectName(b.ProjectUUID)},
				render: func() map[string]any { return st.renderBlueprint(b, now, false) }})
		}
	case "app":
		for _, a := range st.Apps {
			if !a.visible(now) {
				continue
			}
			bpName := ""
			if b := st.blueprint(a.BlueprintUUID); b != nil {
				bpName = b.Name
			}
			state := a.stateAt(now)
			out = append(out, row{created: a.Visible, name: a.Name,
				attrs: map[string]string{"name": a.Name, "uuid": a.UUID, "state": state, "_state": state,
					"project_reference": a.ProjectUUID, "project_name": projectName(a.ProjectUUID),
					"blueprint_name": bpName, "blueprint_uuid": a.BlueprintUUID, "owner": a.Owner},
				render: func() map[string]any { return st.renderApp(a, now) }})
		}
	}
	return out
}

func (s *Server) runlogRows(appUUID string, now time.Time) []row {
	var out []row
	for _, r := range s.st.Runlogs {
		if r.AppUUID != appUUID || now.Before(r.Start) {
			continue
		}
		out = append(out, row{created: r.Start, name: r.UUID,
			attrs: map[string]string{"uuid": r.UUID, "state": r.state(now), "type": r.Type,
				"root_reference": r.RootUUID, "parent_reference": r.ParentUUID,
				"application_reference": r.AppUUID, "action_name": r.Action},
			render: func() map[string]any { return s.st.renderRunlog(r, now) }})
	}
	return out
}

// get serves GET /<kind>/{uuid}.
func (s *Server) get(w http.ResponseWriter, kind, id string) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	now := s.now()
	var out map[string]any
	switch kind {
	case "project":
		if p := s.st.project(id); p != nil {
			out = s.st.renderProject(p)
		}
	case "environment":
		if e := s.st.environment(id); e != nil {
			out = s.st.renderEnvironment(e)
		}
	case "blueprint":
		if b := s.st.blueprint(id); b != nil {
			out = s.st.renderBlueprint(b, now, true)
		}
	case "app":
		if a := s.st.app(id); a != nil && a.visible(now) {
			out = s.st.renderApp(a, now)
		}
	}
	if out == nil {
		writeError(w, errNotFound(kind, id))
		return
	}
	out["api_version"] = APIVersion
	writeJSON(w, http.StatusOK, out)
}

func (s *Server) runtimeEditables(w http.ResponseWriter, id string) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	b := s.st.blueprint(id)
	if b == nil {
		writeError(w, errNotFound("blueprint", id))
		return
	}
	out := renderEditables(b)
	out["api_version"] = APIVersion
	writeJSON(w, http.StatusOK, out)
}

// runlogOutput serves GET /apps/{uuid}/app_runlogs/{runlog}/output. The
// output list is sent in status.output_list and at the top level, where
// the Terraform provider's AppRunlogsResponse reads it, with
// status.runlog_state and exit_code beside it.
func (s *Server) runlogOutput(w http.ResponseWriter, appUUID, runlogUUID string) {
	if !isUUID(runlogUUID) {
		writeError(w, newError(http.StatusBadRequest, "app_runlog", ReasonInvalidUUID, "%q is not a valid app_runlog uuid", runlogUUID))
		return
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	now := s.now()
	a := s.st.app(appUUID)
	if a == nil || !a.visible(now) {
		writeError(w, errNotFound("app", appUUID))
		return
	}
	r := s.st.runlog(runlogUUID)
	if r == nil || r.AppUUID != appUUID || now.Before(r.Start) {
		writeError(w, errNotFound("app_runlog", runlogUUID))
		return
	}
	state := r.state(now)
	var exit any
	switch state {
	case "SUCCESS":
		exit = 0
	case "FAILURE", "ABORTED":
		exit = 1
	}
	outputs := []any{map[string]any{"output": runlogOutputLines(r, now), "script": ""}}
	writeJSON(w, http.StatusOK, map[string]any{
		"api_version": APIVersion,
		"status":      map[string]any{"runlog_state": state, "exit_code": exit, "output_list": outputs},
		"output_list": outputs,
	})
}
