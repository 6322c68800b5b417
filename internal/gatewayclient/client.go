// Package gatewayclient is the sas gateway's Go client, used by the
// Terraform provider. It retries what is safe to retry (429, 502, 503, 504
// and connection errors, honouring Retry-After) and turns problem documents
// into *ProblemError.
package gatewayclient

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/hashicorp/go-cleanhttp"
	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/go-retryablehttp"

	"github.com/sas-platform/terraform-provider-sas/internal/api"
)

// Config configures a Client.
type Config struct {
	Address      string // gateway base URL, e.g. https://sas.example.com
	Token        string // the caller's Vault token; a secret
	PolicyBundle string
	Environment  string
	CACertFile   string
	UserAgent    string
	RetryMax     int           // default 4
	RetryWaitMax time.Duration // default 30s
	// Log receives request events with the request's own context; nil
	// drops them. Events carry method, path, attempt and status, never headers.
	Log LogFunc
}

// LogFunc receives one client event in the context of the request it
// belongs to, so a caller serving many requests at once (a Terraform
// provider) logs each into its own request and shares no logger state.
type LogFunc func(ctx context.Context, level hclog.Level, msg string, fields map[string]any)

// Client talks to one gateway as one caller.
type Client struct {
	base  *url.URL
	cfg   Config
	http  *retryablehttp.Client
	token string
}

// New validates cfg and returns a client.
func New(cfg Config) (*Client, error) {
	u, err := url.Parse(cfg.Address)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("gateway address %q is not an http(s) URL", cfg.Address)
	}
	u.Path = strings.TrimRight(u.Path, "/")
	transport := cleanhttp.DefaultPooledTransport()
	if cfg.CACertFile != "" {
		pem, err := os.ReadFile(cfg.CACertFile)
		if err != nil {
			return nil, fmt.Errorf("CA certificate file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("CA certificate file %s holds no PEM certificate", cfg.CACertFile)
		}
		transport.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	}
	rc := retryablehttp.NewClient()
	rc.HTTPClient = &http.Client{Transport: transport, Timeout: 60 * time.Second}
	rc.RetryMax = 4
	if cfg.RetryMax > 0 {
		rc.RetryMax = cfg.RetryMax
	}
	rc.RetryWaitMin = 250 * time.Millisecond
	rc.RetryWaitMax = 30 * time.Second
	if cfg.RetryWaitMax > 0 {
		rc.RetryWaitMax = cfg.RetryWaitMax
	}
	rc.CheckRetry = checkRetry
	rc.ErrorHandler = retryablehttp.PassthroughErrorHandler
	// retryablehttp's own logger has no request context; the hooks have
	// the request, and with it the context of whoever sent it.
	rc.Logger = nil
	if log := cfg.Log; log != nil {
		rc.RequestLogHook = func(_ retryablehttp.Logger, req *http.Request, attempt int) {
			fields := map[string]any{"method": req.Method, "path": req.URL.Path, "attempt": attempt + 1}
			if attempt > 0 {
				log(req.Context(), hclog.Warn, "retrying gateway request", fields)
				return
			}
			log(req.Context(), hclog.Debug, "gateway request", fields)
		}
		rc.ResponseLogHook = func(_ retryablehttp.Logger, resp *http.Response) {
			log(resp.Request.Context(), hclog.Debug, "gateway response", map[string]any{"method": resp.Request.Method,
				"path": resp.Request.URL.Path, "status": resp.StatusCode, "request_id": resp.Header.Get(api.HeaderRequestID)})
		}
	}
	if cfg.UserAgent == "" {
		cfg.UserAgent = "sas-gatewayclient"
	}
	return &Client{base: u, cfg: cfg, http: rc, token: cfg.Token}, nil
}

// checkRetry retries connection errors and 429/502/503/504 only: a 500 may
// have done something, and 4xx will not change on retry. Backoff honours
// Retry-After (retryablehttp.DefaultBackoff reads it on 429 and 503).
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

// ProblemError is a gateway answer other than success.
type ProblemError struct {
	Method     string
	Path       string
	StatusCode int
	Problem    api.Problem
}

func (e *ProblemError) Error() string {
	msg := fmt.Sprintf("%s %s: %d %s", e.Method, e.Path, e.StatusCode, e.Problem.Title)
	if e.Problem.Detail != "" {
		msg += ": " + e.Problem.Detail
	}
	if e.Problem.RequestID != "" {
		msg += " (request id " + e.Problem.RequestID + ")"
	}
	return msg
}

// IsProblem reports whether err is a gateway problem of type typ.
func IsProblem(err error, typ string) bool {
	var pe *ProblemError
	return errors.As(err, &pe) && pe.Problem.Type == typ
}

// Do sends a request and decodes a JSON answer into out (if non-nil).
func (c *Client) Do(ctx context.Context, method, path string, body, out any, header http.Header) error {
	var rdr io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return fmt.Errorf("encode %s %s: %w", method, path, err)
		}
		rdr = bytes.NewReader(b)
	}
	req, err := retryablehttp.NewRequestWithContext(ctx, method, c.base.String()+path, rdr)
	if err != nil {
		return err
	}
	req.Header.Set("User-Agent", c.cfg.UserAgent)
	req.Header.Set("Accept", "application/json, "+api.ProblemContentType)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.token != "" {
		req.Header.Set(api.HeaderVaultToken, c.token)
	}
	if c.cfg.PolicyBundle != "" {
		req.Header.Set(api.HeaderPolicyBundle, c.cfg.PolicyBundle)
	}
	if c.cfg.Environment != "" {
		req.Header.Set(api.HeaderEnvironment, c.cfg.Environment)
	}
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := c.http.Do(req)
	if err != nil {
		// url.Error carries the URL, never headers, so the token stays out.
		return fmt.Errorf("%s %s: gateway at %s unreachable: %w", method, path, c.base.Host, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 8<<20))
	if err != nil {
		return fmt.Errorf("%s %s: read response: %w", method, path, err)
	}
	if resp.StatusCode >= 300 {
		pe := &ProblemError{Method: method, Path: path, StatusCode: resp.StatusCode}
		if err := json.Unmarshal(raw, &pe.Problem); err != nil || pe.Problem.Title == "" {
			pe.Problem = api.Problem{Title: http.StatusText(resp.StatusCode), Status: resp.StatusCode,
				Detail:    "the gateway answered without a problem document: " + truncate(string(raw), 200),
				RequestID: resp.Header.Get(api.HeaderRequestID)}
		}
		return pe
	}
	if out != nil {
		if err := json.Unmarshal(raw, out); err != nil {
			return fmt.Errorf("%s %s: decode response: %w", method, path, err)
		}
	}
	return nil
}

// Identity is GET /v1/identity.
func (c *Client) Identity(ctx context.Context) (*api.Identity, error) {
	var id api.Identity
	if err := c.Do(ctx, http.MethodGet, "/v1/identity", nil, &id, nil); err != nil {
		return nil, err
	}
	return &id, nil
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
