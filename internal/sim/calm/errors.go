package calm

import (
	"encoding/json"
	"fmt"
	"net/http"
)

// Reasons the simulator puts in message_list[].reason. Calm's own set is
// larger; these are the ones a client can act on.
const (
	ReasonNotFound       = "ENTITY_NOT_FOUND" // no entity with that uuid (or it vanished)
	ReasonInvalidUUID    = "INVALID_UUID"     // the path segment is not a uuid at all
	ReasonInvalidRequest = "INVALID_REQUEST"  // bad body, filter, field or value
	ReasonInvalidState   = "INVALID_STATE"    // the entity's state does not allow the call
	ReasonConflict       = "CONFLICT"         // collides with a live entity (name, address)
	ReasonNotAllowed     = "METHOD_NOT_ALLOWED"
	ReasonInternal       = "INTERNAL_ERROR"
)

// apiError is an answer in Calm's error body:
//
//	{"api_version":"3.1","code":404,"kind":"app","state":"ERROR",
//	 "message_list":[{"message":"...","reason":"ENTITY_NOT_FOUND","details":{}}]}
type apiError struct {
	status  int
	kind    string
	reason  string
	message string
	details map[string]any
}

func (e *apiError) Error() string { return e.message }

func newError(status int, kind, reason, format string, a ...any) *apiError {
	return &apiError{status: status, kind: kind, reason: reason, message: fmt.Sprintf(format, a...)}
}

func errNotFound(kind, uuid string) *apiError {
	return newError(http.StatusNotFound, kind, ReasonNotFound, "%s with uuid %s not found", kind, uuid)
}

func errBadRequest(kind, format string, a ...any) *apiError {
	return newError(http.StatusBadRequest, kind, ReasonInvalidRequest, format, a...)
}

func errUnprocessable(kind, format string, a ...any) *apiError {
	return newError(http.StatusUnprocessableEntity, kind, ReasonInvalidRequest, format, a...)
}

func errState(kind, format string, a ...any) *apiError {
	return newError(http.StatusUnprocessableEntity, kind, ReasonInvalidState, format, a...)
}

func errConflict(kind, format string, a ...any) *apiError {
	return newError(http.StatusConflict, kind, ReasonConflict, format, a...)
}

func errInternal(kind, format string, a ...any) *apiError {
	return newError(http.StatusInternalServerError, kind, ReasonInternal, format, a...)
}

// withField names the offending field in details, as Calm's validation
// errors do, so a client can point at it.
func (e *apiError) withField(field string) *apiError {
	if e.details == nil {
		e.details = map[string]any{}
	}
	e.details["field"] = field
	return e
}

func writeError(w http.ResponseWriter, e *apiError) {
	details := e.details
	if details == nil {
		details = map[string]any{}
	}
	body := map[string]any{
		"api_version": APIVersion,
		"code":        e.status,
		"kind":        e.kind,
		"state":       "ERROR",
		"message_list": []map[string]any{{
			"message": e.message,
			"reason":  e.reason,
			"details": details,
		}},
	}
	out, _ := json.Marshal(body)
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(e.status)
	_, _ = w.Write(out)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	out, err := json.Marshal(v)
	if err != nil {
		writeError(w, errInternal("", "could not encode the response: %v", err))
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(out)
}

// Prism's web tier answers missing or bad credentials (and outages) itself,
// with HTML rather than the API's JSON; clients have to cope with that.
const unauthorizedPage = `<!DOCTYPE html>
<html><head><title>401 Unauthorized</title></head>
<body><h1>401 Unauthorized</h1>
<p>Authentication required. Supply valid Prism Central credentials.</p>
</body></html>
`

const unavailablePage = `<!DOCTYPE html>
<html><head><title>503 Service Unavailable</title></head>
<body><h1>503 Service Unavailable</h1>
<p>The service is temporarily unavailable. Please try again later.</p>
</body></html>
`

func writeHTML(w http.ResponseWriter, status int, page string) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	_, _ = w.Write([]byte(page))
}
