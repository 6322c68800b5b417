package infoblox

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
)

// wapiError is an error the grid answers with a JSON body. Its three
// fields follow the real appliance: "Error" is the exception class and
// message, "code" the machine-readable class, "text" the message alone.
type wapiError struct {
	status int
	code   string
	class  string // e.g. "AdmConProtoError: "
	text   string
}

func (e *wapiError) Error() string { return e.class + e.text }

// errProto is a malformed request: unknown object, field, argument or value.
func errProto(format string, a ...any) *wapiError {
	return &wapiError{status: http.StatusBadRequest, code: "Client.Ibap.Proto",
		class: "AdmConProtoError: ", text: fmt.Sprintf(format, a...)}
}

// errNotFound is a reference or named object that does not exist. The
// appliance answers these with 404.
func errNotFound(format string, a ...any) *wapiError {
	return &wapiError{status: http.StatusNotFound, code: "Client.Ibap.Data.NotFound",
		class: "AdmConDataNotFoundError: ", text: fmt.Sprintf(format, a...)}
}

// errConflict is a request that collides with existing data.
func errConflict(format string, a ...any) *wapiError {
	t := fmt.Sprintf(format, a...)
	return &wapiError{status: http.StatusBadRequest, code: "Client.Ibap.Data.Conflict",
		class: "AdmConDataError: None (IBDataConflictError: IB.Data.Conflict:", text: t}
}

// errData is a data error that is not a conflict, e.g. a full network.
func errData(format string, a ...any) *wapiError {
	return &wapiError{status: http.StatusBadRequest, code: "Client.Ibap.Data",
		class: "AdmConDataError: None (IBDataError: IB.Data:", text: fmt.Sprintf(format, a...)}
}

// errServer is an internal failure of the simulator itself.
func errServer(format string, a ...any) *wapiError {
	return &wapiError{status: http.StatusInternalServerError, code: "Server",
		class: "AdmConServerError: ", text: fmt.Sprintf(format, a...)}
}

func (e *wapiError) errorField() string {
	if e.code == "Client.Ibap.Data.Conflict" || e.code == "Client.Ibap.Data" {
		return e.class + e.text + ")"
	}
	return e.class + e.text
}

// writeError writes e the way the appliance formats it: a JSON object whose
// first line carries "Error".
func writeError(w http.ResponseWriter, e *wapiError) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(e.status)
	fmt.Fprintf(w, "{ \"Error\": %s, \n  \"code\": %s, \n  \"text\": %s\n}",
		jsonString(e.errorField()), jsonString(e.code), jsonString(e.text))
}

func jsonString(s string) string {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(s)
	return string(bytes.TrimRight(buf.Bytes(), "\n"))
}

// The appliance's web server answers authentication failures (and
// outages) with HTML, not JSON; clients have to cope with that.
const unauthorizedPage = `<!DOCTYPE HTML PUBLIC "-//IETF//DTD HTML 2.0//EN">
<html><head>
<title>401 Authorization Required</title>
</head><body>
<h1>Authorization Required</h1>
<p>This server could not verify that you
are authorized to access the document
requested.  Either you supplied the wrong
credentials (e.g., bad password), or your
browser doesn't understand how to supply
the credentials required.</p>
</body></html>
`

const unavailablePage = `<!DOCTYPE HTML PUBLIC "-//IETF//DTD HTML 2.0//EN">
<html><head>
<title>503 Service Unavailable</title>
</head><body>
<h1>Service Unavailable</h1>
<p>The server is temporarily unable to service your
request due to maintenance downtime or capacity
problems. Please try again later.</p>
</body></html>
`

const notFoundPage = `<!DOCTYPE HTML PUBLIC "-//IETF//DTD HTML 2.0//EN">
<html><head>
<title>404 Not Found</title>
</head><body>
<h1>Not Found</h1>
<p>The requested URL was not found on this server.</p>
</body></html>
`

func writeHTML(w http.ResponseWriter, status int, page string) {
	w.Header().Set("Content-Type", "text/html; charset=iso-8859-1")
	w.WriteHeader(status)
	_, _ = w.Write([]byte(page))
}
