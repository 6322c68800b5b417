package gatewayclient

import (
	"context"
	"net/http"
	"net/url"

	"github.com/sas-platform/terraform-provider-sas/internal/api"
)

// Bundle is GET /v1/bundles/{name}.
func (c *Client) Bundle(ctx context.Context, name string) (*api.BundleDetail, error) {
	var b api.BundleDetail
	if err := c.Do(ctx, http.MethodGet, "/v1/bundles/"+url.PathEscape(name), nil, &b, nil); err != nil {
		return nil, err
	}
	return &b, nil
}

// Catalog is GET /v1/catalog for the configured bundle and environment.
func (c *Client) Catalog(ctx context.Context) (*api.Catalog, error) {
	var cat api.Catalog
	if err := c.Do(ctx, http.MethodGet, "/v1/catalog", nil, &cat, nil); err != nil {
		return nil, err
	}
	return &cat, nil
}

// Decide is POST /v1/decisions: a dry run, no side effects.
func (c *Client) Decide(ctx context.Context, req api.DecisionRequest) (*api.Decision, error) {
	var d api.Decision
	if err := c.Do(ctx, http.MethodPost, "/v1/decisions", req, &d, nil); err != nil {
		return nil, err
	}
	return &d, nil
}
