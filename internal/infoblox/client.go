// Package infoblox is the gateway's client for the Infoblox NIOS WAPI
// (v2.12): host records allocated atomically from a network, networks,
// next-available-IP queries, and the tagging layer that marks every
// object sas creates with its owner, request, policy bundle and
// environment and reports drift when those attributes change outside sas.
//
// Calls go through go-retryablehttp: connection errors and 429/502/503/504
// are retried with backoff (honouring Retry-After); 4xx answers are never
// retried. Credentials are passed in at construction (the orchestrator
// reads them from Vault with a short-lived sub-token); they are sent as
// HTTP Basic only, never logged and never part of an error.
package infoblox

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
	"net/http/cookiejar"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/hashicorp/go-cleanhttp"
	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/go-retryablehttp"
)

// DefaultWAPIVersion is appended to a Config.URL that has no /wapi/ path.
const DefaultWAPIVersion = "2.12"

const userAgent = "sas-gateway"

// Credentials are a WAPI user's name and password. They print redacted.
type Credentials struct {
	Username string
	Password string
}

// String keeps the password out of logs and error messages.
func (c Credentials) String() string {
	return fmt.Sprintf("Credentials{Username: %q, Password: <redacted>}", c.Username)
}

// GoString keeps the password out of %#v.
func (c Credentials) GoString() string { return c.String() }

// Config configures a Client.
type Config struct {
	// URL is the grid master's WAPI base, e.g.
	// https://gm.example.com/wapi/v2.12. A URL without a /wapi/ path gets
	// /wapi/v2.12 appended. It must not carry user information.
	URL         string
	Credentials Credentials
	// HTTPClient is the base client (TLS settings, timeouts). Default: a
	// pooled client with a 60s timeout. Its Jar is replaced.
	HTTPClient *http.Client
	// RetryMax is how many times a retryable call is retried (default 4).
	RetryMax int
	// RetryWaitMin and RetryWaitMax bound the exponential backoff
	// (defaults 250ms and 5s).
	RetryWaitMin, RetryWaitMax time.Duration
	// RetryAfterMax caps how long a Retry-After header may make a call
	// wait (default 30s).
	RetryAfterMax time.Duration
	// PageSize is the _max_results of paged searches (default 500).
	PageSize int
	// Logger receives retries and warnings; nil discards.
	Logger hclog.Logger
	// CACertPEM holds the certificates that may sign the grid's TLS
	// certificate (a private CA, a self-signed appliance); empty trusts the
	// system's roots. Ignored when HTTPClient is set.
	CACertPEM []byte
}

// Client talks to one grid as one WAPI user. It is safe for concurrent use.
type Client struct {
	base     *url.URL
	creds    Credentials
	http     *retryablehttp.Client
	log      hclog.Logger
	pageSize int
}

// New validates cfg and returns a Client. It does not contact the grid.
func New(cfg Config) (*Client, error) {
	u, err := url.Parse(cfg.URL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, errors.New("infoblox: URL must be an absolute http(s) URL of the grid master")
	}
	if u.User != nil {
		return nil, errors.New("infoblox: URL must not carry credentials; pass them in Config.Credentials")
	}
	u.RawQuery, u.Fragment = "", ""
	u.Path = strings.TrimRight(u.Path, "/")
	if !strings.Contains(u.Path, "/wapi/") {
		u.Path += "/wapi/v" + DefaultWAPIVersion
	}
	if cfg.Credentials.Username == "" || cfg.Credentials.Password == "" {
		return nil, errors.New("infoblox: a username and a password are required")
	}
	hc := cfg.HTTPClient
	if hc == nil {
		t := cleanhttp.DefaultPooledTransport()
		if len(cfg.CACertPEM) > 0 {
			pool := x509.NewCertPool()
			if !pool.AppendCertsFromPEM(cfg.CACertPEM) {
				return nil, errors.New("infoblox: CACertPEM holds no PEM certificate")
			}
			t.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
		}
		hc = &http.Client{Transport: t, Timeout: 60 * time.Second}
	} else {
		c := *hc
		hc = &c
	}
	// The grid answers Basic auth with an ibapauth cookie; replaying it
	// spares the grid a password check per call. Basic is still sent, so
	// an expired cookie costs nothing.
	hc.Jar, _ = cookiejar.New(nil)

	log := cfg.Logger
	if log == nil {
		log = hclog.NewNullLogger()
	}
	log = log.Named("infoblox")
	c := &Client{base: u, creds: cfg.Credentials, log: log, pageSize: cfg.PageSize}
	if c.pageSize <= 0 {
		c.pageSize = 500
	}

	rc := retryablehttp.NewClient()
	rc.HTTPClient = hc
	rc.Logger = nil
	rc.RetryMax = 4
	if cfg.RetryMax > 0 {
		rc.RetryMax = cfg.RetryMax
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
			// Method and object only: never headers, never the query.
			log.Warn("retrying WAPI call", "method", req.Method, "object", objectOf(req.URL.Path), "attempt", attempt)
		}
	}
	c.http = rc
	return c, nil
}

// checkRetry retries connection errors and 429/502/503/504. A 4xx will not
// change on retry and a 500 may already have done something, so neither is
// retried: in particular a POST that reached the grid and was refused is
// never sent again. (A connection error after a create was sent can repeat
// it; CreateHost recognises its own host on the resulting conflict.)
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
				if d > retryAfterMax {
					d = retryAfterMax
				}
				return d
			}
		}
		d := min << uint(attempt)
		if d <= 0 || d > max {
			d = max
		}
		// Full jitter over the upper half spreads a thundering herd.
		return d/2 + time.Duration(rand.Int64N(int64(d/2)+1))
	}
}

func parseRetryAfter(v string) (time.Duration, bool) {
	if v == "" {
		return 0, false
	}
	if s, err := strconv.Atoi(strings.TrimSpace(v)); err == nil && s >= 0 {
		return time.Duration(s) * time.Second, true
	}
	if t, err := http.ParseTime(v); err == nil {
		d := time.Until(t)
		if d < 0 {
			d = 0
		}
		return d, true
	}
	return 0, false
}

// objectOf returns the object type or reference a WAPI path addresses.
func objectOf(path string) string {
	if i := strings.Index(path, "/wapi/v"); i >= 0 {
		rest := path[i+len("/wapi/v"):]
		if j := strings.IndexByte(rest, '/'); j >= 0 {
			return rest[j+1:]
		}
	}
	return path
}

// escapeRef escapes a reference for a URL path, keeping its slashes.
func escapeRef(ref string) string {
	parts := strings.Split(ref, "/")
	for i, p := range parts {
		parts[i] = url.PathEscape(p)
	}
	return strings.Join(parts, "/")
}

// call sends one WAPI request. target is an object type ("record:host") or
// a reference; in, when non-nil, is sent as JSON; out, when non-nil,
// receives the decoded answer.
func (c *Client) call(ctx context.Context, method, target string, query url.Values, in, out any) error {
	u := c.base.String() + "/" + escapeRef(target)
	if len(query) > 0 {
		u += "?" + query.Encode()
	}
	var body []byte
	if in != nil {
		var err error
		if body, err = json.Marshal(in); err != nil {
			return fmt.Errorf("infoblox: %s %s: encode request: %w", method, target, err)
		}
	}
	req, err := retryablehttp.NewRequestWithContext(ctx, method, u, body)
	if err != nil {
		return fmt.Errorf("infoblox: %s %s: %w", method, target, err)
	}
	req.Header.Set("User-Agent", userAgent)
	req.Header.Set("Accept", "application/json")
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.SetBasicAuth(c.creds.Username, c.creds.Password)

	resp, err := c.http.Do(req)
	if err != nil {
		// url.Error names the URL, which carries no credentials.
		return &TransportError{Method: method, Object: target, Err: err}
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 32<<20))
	if err != nil {
		return &TransportError{Method: method, Object: target, Err: err}
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return newAPIError(method, target, resp, raw)
	}
	if out == nil {
		return nil
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	if err := dec.Decode(out); err != nil {
		return fmt.Errorf("infoblox: %s %s: decode answer: %w", method, target, err)
	}
	return nil
}

// pagedSearch runs GET objtype with query, following next_page_id until the
// last page, and hands each result to each.
func (c *Client) pagedSearch(ctx context.Context, objtype string, query url.Values, each func(json.RawMessage) error) error {
	q := url.Values{}
	for k, v := range query {
		q[k] = v
	}
	q.Set("_paging", "1")
	q.Set("_return_as_object", "1")
	q.Set("_max_results", strconv.Itoa(c.pageSize))
	for {
		var page struct {
			Result     []json.RawMessage `json:"result"`
			NextPageID string            `json:"next_page_id"`
		}
		if err := c.call(ctx, http.MethodGet, objtype, q, nil, &page); err != nil {
			return err
		}
		for _, r := range page.Result {
			if err := each(r); err != nil {
				return err
			}
		}
		if page.NextPageID == "" {
			return nil
		}
		q = url.Values{"_page_id": {page.NextPageID}}
	}
}

// Close ends the grid session this client holds (POST logout), so the
// ibapauth cookie dies with the short-lived credentials that earned it.
// The Client must not be used afterwards.
func (c *Client) Close(ctx context.Context) error {
	if jar := c.http.HTTPClient.Jar; jar == nil || len(jar.Cookies(c.base)) == 0 {
		return nil
	}
	err := c.call(ctx, http.MethodPost, "logout", nil, nil, nil)
	c.http.HTTPClient.Jar, _ = cookiejar.New(nil)
	return err
}
