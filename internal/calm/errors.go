package calm

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

// ErrNotFound is matched (errors.Is) by every "does not exist" outcome: a
// 404 from Calm and a lookup by name that found nothing.
var ErrNotFound = errors.New("calm: not found")

// Message is one entry of Calm's message_list.
type Message struct {
	Message string
	Reason  string // e.g. ENTITY_NOT_FOUND
	Details map[string]any
}

// APIError is an answer from Calm other than success. Messages are Calm's
// own, meant to be shown to the requester as they are.
type APIError struct {
	Method string // HTTP method
	Path   string // path below /api/nutanix/v3, e.g. /apps/{uuid}
	Status int    // HTTP status
	// Code, Kind and State come from Calm's error body (Code is normally
	// the HTTP status again, State "ERROR"); empty when the answer was not
	// Calm's JSON (401 and outages come back as HTML from Prism's web tier).
	Code     int
	Kind     string
	State    string
	Messages []Message
	// Text describes a non-JSON answer (e.g. "401 Unauthorized (HTML answer)").
	Text string
	// RetryAfter is what Calm asked for in Retry-After (429, 503), if anything.
	RetryAfter time.Duration
}

func (e *APIError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "calm: %s %s: ", e.Method, e.Path)
	if e.Status == http.StatusUnauthorized {
		b.WriteString("Calm refused the credentials (401)")
		if len(e.Messages) > 0 {
			b.WriteString(": " + e.Messages[0].Message)
		}
		return b.String()
	}
	fmt.Fprintf(&b, "%d", e.Status)
	var msgs []string
	for _, m := range e.Messages {
		s := m.Message
		if m.Reason != "" {
			s += " (" + m.Reason + ")"
		}
		msgs = append(msgs, s)
	}
	switch {
	case len(msgs) > 0:
		b.WriteString(": " + strings.Join(msgs, "; "))
	case e.Text != "":
		b.WriteString(": " + e.Text)
	}
	return b.String()
}

// Is makes errors.Is(err, ErrNotFound) true for 404 answers.
func (e *APIError) Is(target error) bool {
	return target == ErrNotFound && e.Status == http.StatusNotFound
}

// Reason is the first message's reason, or "".
func (e *APIError) Reason() string {
	if len(e.Messages) == 0 {
		return ""
	}
	return e.Messages[0].Reason
}

type errorBody struct {
	APIVersion  string        `json:"api_version"`
	Code        json.Number   `json:"code"`
	Kind        string        `json:"kind"`
	State       string        `json:"state"`
	MessageList []messageJSON `json:"message_list"`
	Message     string        `json:"message"`
	// Some answers nest the error under status.
	Status *struct {
		State       string        `json:"state"`
		Code        json.Number   `json:"code"`
		MessageList []messageJSON `json:"message_list"`
	} `json:"status"`
}

type messageJSON struct {
	Message string         `json:"message"`
	Reason  string         `json:"reason"`
	Details map[string]any `json:"details"`
}

var titleRE = regexp.MustCompile(`(?is)<title>\s*(.*?)\s*</title>`)

func newAPIError(method, path string, resp *http.Response, raw []byte) *APIError {
	e := &APIError{Method: method, Path: path, Status: resp.StatusCode}
	if d, ok := parseRetryAfter(resp.Header.Get("Retry-After")); ok {
		e.RetryAfter = d
	}
	var b errorBody
	if json.Unmarshal(raw, &b) == nil {
		list, state, code := b.MessageList, b.State, b.Code
		if b.Status != nil && len(list) == 0 {
			list, state = b.Status.MessageList, b.Status.State
			if code == "" {
				code = b.Status.Code
			}
		}
		for _, m := range list {
			e.Messages = append(e.Messages, Message{Message: m.Message, Reason: m.Reason, Details: m.Details})
		}
		if len(e.Messages) == 0 && b.Message != "" {
			e.Messages = []Message{{Message: b.Message}}
		}
		if len(e.Messages) > 0 || state != "" {
			e.State, e.Kind = state, b.Kind
			if n, err := code.Int64(); err == nil {
				e.Code = int(n)
			}
			return e
		}
	}
	// Prism's web tier answers 401 and outages with HTML or plain text.
	switch m := titleRE.FindSubmatch(raw); {
	case m != nil:
		e.Text = string(m[1]) + " (HTML answer)"
	case len(strings.TrimSpace(string(raw))) > 0 && !json.Valid(raw):
		e.Text = strings.TrimSpace(truncate(string(raw), 200))
	default:
		e.Text = http.StatusText(resp.StatusCode)
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
	Path   string
	Err    error
}

func (e *TransportError) Error() string {
	return fmt.Sprintf("calm: %s %s: Calm unreachable: %v", e.Method, e.Path, e.Err)
}

func (e *TransportError) Unwrap() error { return e.Err }

// IsNotFound reports whether err means the entity does not exist (or no
// longer does): for a read, the app is gone; for a delete, it is done.
func IsNotFound(err error) bool { return errors.Is(err, ErrNotFound) }

// IsConflict reports whether Calm refused the call because it collides
// with a live entity (409: an app of that name exists, an address is taken).
func IsConflict(err error) bool {
	var e *APIError
	return errors.As(err, &e) && e.Status == http.StatusConflict
}

// IsUnauthorized reports whether Calm refused the credentials (401) or the
// user's permissions (403).
func IsUnauthorized(err error) bool {
	var e *APIError
	return errors.As(err, &e) && (e.Status == http.StatusUnauthorized || e.Status == http.StatusForbidden)
}

// IsTransient reports whether retrying the operation later may succeed:
// Calm answered 429 or a 5xx (even after this client's own retries), could
// not be reached, or was too slow. Everything else — 4xx, bad credentials,
// a TLS certificate problem, a cancelled context — is permanent.
func IsTransient(err error) bool {
	if err == nil || errors.Is(err, context.Canceled) {
		return false
	}
	var e *APIError
	if errors.As(err, &e) {
		return e.Status == http.StatusTooManyRequests || e.Status >= 500
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return true
	}
	var te *TransportError
	if errors.As(err, &te) {
		var unknownAuthority x509.UnknownAuthorityError
		var hostname x509.HostnameError
		var invalid x509.CertificateInvalidError
		return !errors.As(err, &unknownAuthority) && !errors.As(err, &hostname) && !errors.As(err, &invalid)
	}
	return false
}

// IsPermanent reports whether err is an error that retrying will not cure.
func IsPermanent(err error) bool { return err != nil && !IsTransient(err) }
