package server

import (
	"context"
	"errors"

	"github.com/sas-platform/terraform-provider-sas/internal/caller"
	"github.com/sas-platform/terraform-provider-sas/internal/vault"
)

// verifyCaller asks Vault about the token on every request (no cache: a
// revoked token stops working at once) and applies the admission rules.
func (g *Gateway) verifyCaller(ctx context.Context, token string) (caller.Caller, error) {
	lookup, err := g.vault.LookupCaller(ctx, token)
	if errors.Is(err, vault.ErrTokenNotFound) {
		return caller.Caller{}, caller.NotFound()
	}
	if err != nil {
		return caller.Caller{}, err
	}
	c, refusal := caller.Admit(lookup, g.cfg.MaxCallerTTL)
	if refusal != nil {
		return caller.Caller{}, refusal
	}
	return c, nil
}
