// Package calm is the gateway's client for Nutanix Calm (NCM Self-Service)
// API v3: projects and blueprints, launching apps from blueprints and
// following the launch, apps with their VMs, system actions, deletes and
// runlogs.
//
// Calls go through go-retryablehttp: connection errors and 429/502/503/504
// are retried with backoff (honouring Retry-After); other answers are
// never retried, so a launch Calm refused is not sent again. (A connection
// error after a launch was sent can repeat it; Calm then refuses the
// duplicate app name with 409 and the caller finds the first launch's app
// with AppByName.) Credentials are passed in at construction; they are
// sent as HTTP Basic (or an X-Ntnx-Api-Key), never logged and never part
// of an error.
package calm

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/hashicorp/go-cleanhttp"
	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/go-retryablehttp"
)

// APIPath is appended to a Config.BaseURL that does not already end in it.
const APIPath = "/api/nutanix/v3"

// MaxPageSize is the most entities Calm returns per list call.
const MaxPageSize = 250

const defaultUserAgent = "sas-gateway"

// Config configures a Client.
type Config struct {
	// BaseURL is Prism Central, e.g. https://pc.example.com:9440 (or the
	// simulator's http:// URL); APIPath is appended unless present. It
	// must not carry user information.
	BaseURL string
	// Username and Password are sent as HTTP Basic. APIKey, when set
	// instead, is sent as X-Ntnx-Api-Key.
	Username string
	Password string
	APIKey   string
	// CACertPEM holds extra roots to trust besides the system's (the dev
	// stack's simulator CA, a private PKI).
	CACertPEM []byte
	// InsecureSkipVerify turns certificate checks off. Never the default;
	// a warning is logged when it is used.
	InsecureSkipVerify bool
	// Timeout bounds each attempt (default 60s); the context bounds the call.
	Timeout time.Duration
	// RetryMax is how many times a retryable call is retried (default 4;
	// negative: never).
	RetryMax int
	// RetryWaitMin and RetryWaitMax bound the exponential backoff
	// (defaults 250ms and 5s).
	RetryWaitMin, RetryWaitMax time.Duration
	// RetryAfterMax caps how long a Retry-After may make a call wait
	// (default 30s).
	RetryAfterMax time.Duration
	// PageSize is the length of list calls (default and maximum 250).
	PageSize int
	// Logger receives retries and warnings; nil discards.
	Logger hclog.Logger
	// UserAgent is sent with every call (default "sas-gateway").
	UserAgent string
}

// String keeps the password and API key out of logs and error messages.
func (c Config) String() string {
	return fmt.Sprintf("calm.Config{BaseURL: %q, Username: %q, Password: <redacted>, APIKey: <redacted>}", c.BaseURL, c.Username)
}

// GoString keeps them out of %#v.
func (c Config) GoString() string { return c.String() }

// Client talks to one Prism Central as one user. It is safe for
// concurrent use.
type Client struct {
	base      string // scheme://host[:port]/.../api/nutanix/v3
	username  string
	password  string
	apiKey    string
	userAgent string
	pageSize  int
	http      *retryablehttp.Client
	log       hclog.Logger
}

// New validates cfg and returns a Client. It does not contact Calm.
func New(cfg Config) (*Client, error) {
	u, err := url.Parse(cfg.BaseURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, errors.New("calm: BaseURL must be an absolute http(s) URL of Prism Central")
	}
	if u.User != nil {
		return nil, errors.New("calm: BaseURL must not carry credentials; pass them in Config")
	}
	u.RawQuery, u.Fragment = "", ""
	u.Path = strings.TrimRight(u.Path, "/")
	if !strings.HasSuffix(u.Path, APIPath) {
		u.Path += APIPath
	}
	if cfg.APIKey == "" && (cfg.Username == "" || cfg.Password == "") {
		return nil, errors.New("calm: a username and a password (or an API key) are required")
	}
	log := cfg.Logger
	if log == nil {
		log = hclog.NewNullLogger()
	}
	log = log.Named("calm")

	tlsCfg := &tls.Config{MinVersion: tls.VersionTLS12}
	if len(cfg.CACertPEM) > 0 {
		pool, err := x509.SystemCertPool()
		if err != nil || pool == nil {
			pool = x509.NewCertPool()
		}
		if !pool.AppendCertsFromPEM(cfg.CACertPEM) {
			return nil, errors.New("calm: CACertPEM holds no PEM certificate")
		}
		tlsCfg.RootCAs = pool
	}
	if cfg.InsecureSkipVerify {
		tlsCfg.InsecureSkipVerify = true //nolint:gosec // G402: an explicit opt-in, off by default and warned about
		log.Warn("TLS certificate verification is off for Calm; use only against a throwaway lab", "url", u.Host)
	}
	transport := cleanhttp.DefaultPooledTransport()
	transport.TLSClientConfig = tlsCfg
	timeout := cfg.Timeout
	if timeout <= 0 {
		timeout = 60 * time.Second
	}

	c := &Client{base: u.String(), username: cfg.Username, password: cfg.Password, apiKey: cfg.APIKey,
		userAgent: cfg.UserAgent, pageSize: cfg.PageSize, log: log}
	if c.userAgent == "" {
		c.userAgent = defaultUserAgent
	}
	if c.pageSize <= 0 || c.pageSize > MaxPageSize {
		c.pageSize = MaxPageSize
	}

	rc := retryablehttp.NewClient()
	rc.HTTPClient = &http.Client{Transport: transport, Timeout: timeout,
		// Never follow a redirect: it could carry the credentials elsewhere.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	rc.Logger = nil
	switch {
	case cfg.RetryMax > 0:
		rc.RetryMax = cfg.RetryMax
	case cfg.RetryMax < 0:
		rc.RetryMax = 0
	default:
		rc.RetryMax = 4
	}
	rc.RetryWaitMin, rc.RetryWaitMax = 250*time.Millisecond, 5*time.Second
	if cfg.RetryWaitMin > 0 {
		rc.RetryWaitMin = cfg.RetryWaitMin
	}
	if cfg.RetryWaitMax > 0 {
		rc.RetryWaitMax = cfg.RetryWaitMax
	}
	retryAfterMax := 30 * time.Second
	if cfg.RetryAfterMax > 0 {
		retryAfterMax = cfg.RetryAfterMax
	}
	rc.CheckRetry = checkRetry
	rc.Backoff = backoff(retryAfterMax)
	rc.ErrorHandler = retryablehttp.PassthroughErrorHandler
	rc.RequestLogHook = func(_ retryablehttp.Logger, req *http.Request, attempt int) {
		if attempt > 0 {
			// Method and path only: never headers, never bodies.
			log.Warn("retrying Calm call", "method", req.Method, "path", apiPath(req.URL.Path), "attempt", attempt)
		}
	}
	c.http = rc
	return c, nil
}

// checkRetry retries connection errors and 429/502/503/504. A 4xx will not
// change on retry and a 500 may already have done something, so neither is
// retried.
func checkRetry(ctx context.Context, resp *http.Response, err error) (bool, error) {
	if ctx.Err() != nil {
		return false, ctx.Err()
	}
	if err != nil {
		return retryablehttp.DefaultRetryPolicy(ctx, resp, err)
	}
	switch resp.StatusCode {
	case http.StatusTooManyRequests, http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout:
		return true, nil
	}
	return false, nil
}

// backoff is exponential with jitter, except that a Retry-After on 429 or
// 503 is honoured (up to retryAfterMax).
func backoff(retryAfterMax time.Duration) retryablehttp.Backoff {
	return func(min, max time.Duration, attempt int, resp *http.Response) time.Duration {
		if resp != nil && (resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode == http.StatusServiceUnavailable) {
			if d, ok := parseRetryAfter(resp.Header.Get("Retry-After")); ok {
				return min64(d, retryAfterMax)
			}
		}
		d := min << uint(attempt)
		if d <= 0 || d > max {
			d = max
		}
		// Jitter over the upper half spreads a thundering herd.
		return d/2 + time.Duration(rand.Int64N(int64(d/2)+1))
	}
}

func min64(a, b time.Duration) time.Duration {
	if a < b {
		return a
	}
	return b
}

func parseRetryAfter(v string) (time.Duration, bool) {
	if v == "" {
		return 0, false
	}
	if s, err := strconv.Atoi(strings.TrimSpace(v)); err == nil && s >= 0 {
		return time.Duration(s) * time.Second, true
	}
	if t, err := http.ParseTime(v); err == nil {
		return max(time.Until(t), 0), true
	}
	return 0, false
}

// apiPath is the part of a URL path below APIPath.
func apiPath(p string) string {
	if i := strings.Index(p, APIPath); i >= 0 {
		return p[i+len(APIPath):]
	}
	return p
}

// call sends one request to path (below APIPath, already escaped). in,
// when non-nil, is sent as JSON; out, when non-nil, receives the answer.
func (c *Client) call(ctx context.Context, method, path string, in, out any) error {
	var body []byte
	if in != nil {
		var err error
		if body, err = json.Marshal(in); err != nil {
			return fmt.Errorf("calm: %s %s: encode request: %w", method, path, err)
		}
	}
	req, err := retryablehttp.NewRequestWithContext(ctx, method, c.base+path, body)
	if err != nil {
		return fmt.Errorf("calm: %s %s: %w", method, path, err)
	}
	req.Header.Set("User-Agent", c.userAgent)
	req.Header.Set("Accept", "application/json")
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.apiKey != "" {
		req.Header.Set("X-Ntnx-Api-Key", c.apiKey)
	} else {
		req.SetBasicAuth(c.username, c.password)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return fmt.Errorf("calm: %s %s: %w", method, path, ctx.Err())
		}
		// url.Error names the URL, which carries no credentials.
		return &TransportError{Method: method, Path: path, Err: err}
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return &TransportError{Method: method, Path: path, Err: err}
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return newAPIError(method, path, resp, raw)
	}
	if out == nil {
		return nil
	}
	if err := json.NewDecoder(bytes.NewReader(raw)).Decode(out); err != nil {
		return fmt.Errorf("calm: %s %s: decode answer: %w", method, path, err)
	}
	return nil
}

// listAll pages through POST <path> (a /list call) by offset until
// total_matches entities have come, oldest first, and hands each to each.
func (c *Client) listAll(ctx context.Context, path, kind, filter string, each func(json.RawMessage) error) error {
	offset := 0
	for pages := 0; ; pages++ {
		if pages == maxPages {
			return fmt.Errorf("calm: POST %s: still paging after %d pages; is offset ignored?", path, maxPages)
		}
		body := map[string]any{"kind": kind, "length": c.pageSize, "offset": offset,
			"sort_attribute": "_created_timestamp_usecs_", "sort_order": "ASCENDING"}
		if filter != "" {
			body["filter"] = filter
		}
		var page struct {
			Metadata struct {
				TotalMatches int `json:"total_matches"`
			} `json:"metadata"`
			Entities []json.RawMessage `json:"entities"`
		}
		if err := c.call(ctx, http.MethodPost, path, body, &page); err != nil {
			return err
		}
		for _, e := range page.Entities {
			if err := each(e); err != nil {
				return err
			}
		}
		offset += len(page.Entities)
		total := page.Metadata.TotalMatches
		// Without a total_matches, a short page is the last one.
		if len(page.Entities) == 0 || (total > 0 && offset >= total) || (total == 0 && len(page.Entities) < c.pageSize) {
			return nil
		}
	}
}

// maxPages stops a list that never ends (a server ignoring offset).
const maxPages = 10000

func seg(s string) string { return url.PathEscape(s) }
