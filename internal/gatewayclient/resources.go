package gatewayclient

import (
	"context"
	"fmt"
	"net/http"
	"net/url"

	"github.com/sas-platform/terraform-provider-sas/internal/api"
)

// The calls every resource kind answers, addressed by the kinds table's paths.

func kindPath(kind string) (string, error) {
	p, ok := api.KindPaths[kind]
	if !ok {
		return "", fmt.Errorf("gatewayclient: unknown kind %q", kind)
	}
	return "/v1/" + p, nil
}

// Submit sends a create (id == ""), update (PATCH) or delete of kind with
// an idempotency key; the gateway answers with the operation doing it.
func (c *Client) Submit(ctx context.Context, kind, action, id string, body any, idempotencyKey string) (*api.Operation, error) {
	p, err := kindPath(kind)
	if err != nil {
		return nil, err
	}
	method := map[string]string{api.ActionCreate: http.MethodPost, api.ActionUpdate: http.MethodPatch, api.ActionDelete: http.MethodDelete}[action]
	if method == "" {
		return nil, fmt.Errorf("gatewayclient: %s is not a mutation", action)
	}
	if id != "" {
		p += "/" + url.PathEscape(id)
	}
	var op api.Operation
	if err := c.Do(ctx, method, p, body, &op, idempotencyHeader(idempotencyKey)); err != nil {
		return nil, err
	}
	return &op, nil
}

// Resource is GET of one resource of kind; the gateway reads through to the
// downstream system, and a resource deleted there is a not-found problem.
func (c *Client) Resource(ctx context.Context, kind, id string) (*api.Resource, error) {
	p, err := kindPath(kind)
	if err != nil {
		return nil, err
	}
	var r api.Resource
	if err := c.Do(ctx, http.MethodGet, p+"/"+url.PathEscape(id), nil, &r, nil); err != nil {
		return nil, err
	}
	return &r, nil
}

// CancelOperation is POST /v1/operations/{id}/cancel.
func (c *Client) CancelOperation(ctx context.Context, id string) (*api.Operation, error) {
	var op api.Operation
	if err := c.Do(ctx, http.MethodPost, "/v1/operations/"+url.PathEscape(id)+"/cancel", nil, &op, nil); err != nil {
		return nil, err
	}
	return &op, nil
}
