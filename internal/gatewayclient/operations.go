package gatewayclient

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/sas-platform/terraform-provider-sas/internal/api"
)

// NewIdempotencyKey returns a random key for the Idempotency-Key header:
// the gateway answers a repeat of the same key and body with the original
// operation, so a retried mutation never acts twice.
func NewIdempotencyKey() (string, error) {
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("generate idempotency key: %w", err)
	}
	return "tf-" + hex.EncodeToString(b), nil
}

func idempotencyHeader(key string) http.Header {
	if key == "" {
		return nil
	}
	return http.Header{api.HeaderIdempotencyKey: []string{key}}
}

// Operation is GET /v1/operations/{id}.
func (c *Client) Operation(ctx context.Context, id string) (*api.Operation, error) {
	var op api.Operation
	if err := c.Do(ctx, http.MethodGet, "/v1/operations/"+url.PathEscape(id), nil, &op, nil); err != nil {
		return nil, err
	}
	return &op, nil
}

// OperationDone reports whether an operation reached a final state.
func OperationDone(op *api.Operation) bool {
	switch op.State {
	case api.OperationSucceeded, api.OperationFailed, api.OperationCancelled:
		return true
	}
	return false
}

// Poll intervals of WaitOperation: it starts fast (most reservations finish
// in well under a second) and backs off to PollMax.
var (
	PollMin = 250 * time.Millisecond
	PollMax = 5 * time.Second
)

// WaitOperation polls an operation until it is final or ctx ends, backing
// off from PollMin to PollMax. It returns the last operation it saw, also
// with an error, so callers can say how far it got.
func (c *Client) WaitOperation(ctx context.Context, op *api.Operation) (*api.Operation, error) {
	wait := PollMin
	for !OperationDone(op) {
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return op, fmt.Errorf("operation %s still %s: %w", op.ID, op.State, ctx.Err())
		case <-t.C:
		}
		next, err := c.Operation(ctx, op.ID)
		if err != nil && transient(err) && ctx.Err() == nil {
			// The operation is durable in the gateway; a gateway restarting
			// or an outage between it and Vault does not end it. Keep asking
			// until the caller's timeout, rather than leave a half-seen
			// create that Terraform would replace.
			if c.cfg.Log != nil {
				c.cfg.Log(ctx, hclog.Warn, "operation poll failed; polling on until the timeout", map[string]any{"operation_id": op.ID, "error": err.Error()})
			}
			wait = PollMax
			continue
		}
		if err != nil {
			return op, err
		}
		op = next
		if wait *= 2; wait > PollMax {
			wait = PollMax
		}
	}
	return op, nil
}

// transient reports whether a failed call may succeed if made again: no
// answer at all, or a gateway that said so (429, 5xx).
func transient(err error) bool {
	var pe *ProblemError
	if errors.As(err, &pe) {
		return pe.StatusCode == http.StatusTooManyRequests || pe.StatusCode >= 500
	}
	return !errors.Is(err, context.Canceled)
}
