package infoblox

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"strings"
	"time"
)

// WAPI error codes the gateway acts on.
const (
	CodeProto    = "Client.Ibap.Proto"         // unknown object, field, argument or value
	CodeConflict = "Client.Ibap.Data.Conflict" // duplicate or otherwise colliding data
	CodeNotFound = "Client.Ibap.Data.NotFound" // unknown reference, view or network view
	CodeData     = "Client.Ibap.Data"          // other data errors, e.g. a full network
)

// ErrNotFound is matched (errors.Is) by every "does not exist" outcome:
// a WAPI NotFound answer, an empty search where one object was expected,
// and ErrAlreadyGone.
var ErrNotFound = errors.New("infoblox: not found")

// ErrAlreadyGone is returned by deletes whose object no longer exists; the
// caller may treat it as success.
var ErrAlreadyGone = fmt.Errorf("%w (already gone)", ErrNotFound)

// APIError is an answer from the grid other than success. Text is the
// grid's own message, meant to be shown to the requester as is.
type APIError struct {
	Method string // HTTP method
	Object string // object type or reference addressed (never the query)
	Status int    // HTTP status
	Code   string // WAPI code, e.g. Client.Ibap.Data.Conflict; "" when the body was not WAPI JSON
	Text   string // WAPI "text", or a description of a non-JSON answer
	Detail string // WAPI "Error", e.g. "AdmConDataError: None (IBDataConflictError: ...)"
	// RetryAfter is what the grid asked for in Retry-After (429, 503), if anything.
	RetryAfter time.Duration
}

func (e *APIError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "infoblox: %s %s: %d", e.Method, e.Object, e.Status)
	if e.Code != "" {
		b.WriteString(" " + e.Code)
	}
	if e.Text != "" {
		b.WriteString(": " + e.Text)
	}
	return b.String()
}

// Is makes errors.Is(err, ErrNotFound) true for NotFound answers.
func (e *APIError) Is(target error) bool {
	return target == ErrNotFound && (e.Code == CodeNotFound || (e.Code == "" && e.Status == http.StatusNotFound))
}

var titleRE = regexp.MustCompile(`(?is)<title>\s*(.*?)\s*</title>`)

func newAPIError(method, object string, resp *http.Response, raw []byte) *APIError {
	e := &APIError{Method: method, Object: object, Status: resp.StatusCode}
	if d, ok := parseRetryAfter(resp.Header.Get("Retry-After")); ok {
		e.RetryAfter = d
	}
	var w struct {
		Error string `json:"Error"`
		Code  string `json:"code"`
		Text  string `json:"text"`
	}
	if json.Unmarshal(raw, &w) == nil && (w.Code != "" || w.Error != "") {
		e.Code, e.Text, e.Detail = w.Code, w.Text, w.Error
		if e.Text == "" {
			e.Text = w.Error
		}
		return e
	}
	// The grid's web server answers 401 and outages with HTML.
	if m := titleRE.FindSubmatch(raw); m != nil {
		e.Text = string(m[1]) + " (HTML answer)"
	} else if len(raw) > 0 {
		e.Text = strings.TrimSpace(truncate(string(raw), 200))
	} else {
		e.Text = http.StatusText(resp.StatusCode)
	}
	if resp.StatusCode == http.StatusUnauthorized {
		e.Text = "authentication failed: the grid refused the credentials (" + e.Text + ")"
	}
	return e
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}

// TransportError is a call that never got an HTTP answer (after retries):
// connection refused, reset, timeout, TLS failure.
type TransportError struct {
	Method string
	Object string
	Err    error
}

func (e *TransportError) Error() string {
	return fmt.Sprintf("infoblox: %s %s: grid unreachable: %v", e.Method, e.Object, e.Err)
}

func (e *TransportError) Unwrap() error { return e.Err }

// IsNotFound reports whether err means the object does not exist (or no
// longer does): for a read, the resource is gone.
func IsNotFound(err error) bool { return errors.Is(err, ErrNotFound) }

// IsConflict reports whether the grid refused the call because it collides
// with existing data (e.g. the host name is taken).
func IsConflict(err error) bool {
	var e *APIError
	return errors.As(err, &e) && e.Code == CodeConflict
}

// IsUnauthorized reports whether the grid refused the credentials (401) or
// the user's permissions (403).
func IsUnauthorized(err error) bool {
	var e *APIError
	return errors.As(err, &e) && (e.Status == http.StatusUnauthorized || e.Status == http.StatusForbidden)
}

// IsNetworkFull reports whether an allocation failed because the network
// has no free address left.
func IsNetworkFull(err error) bool {
	var e *APIError
	return errors.As(err, &e) && e.Code == CodeData && strings.Contains(e.Text, "available IP address")
}

// IsTransient reports whether retrying the operation later may succeed:
// the grid was unavailable or overloaded (429, 502, 503, 504, even after
// this client's own retries), unreachable, or too slow. Everything else
// (4xx, bad credentials, a full network, a TLS certificate problem, a
// cancelled context) is permanent: fail with the grid's message.
func IsTransient(err error) bool {
	if err == nil {
		return false
	}
	if errors.Is(err, context.Canceled) {
		return false
	}
	var e *APIError
	if errors.As(err, &e) {
		switch e.Status {
		case http.StatusTooManyRequests, http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout:
			return true
		}
		return false
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return true
	}
	var te *TransportError
	if errors.As(err, &te) {
		var unknownAuthority x509.UnknownAuthorityError
		var hostname x509.HostnameError
		var invalid x509.CertificateInvalidError
		if errors.As(err, &unknownAuthority) || errors.As(err, &hostname) || errors.As(err, &invalid) {
			return false
		}
		return true
	}
	return false
}
