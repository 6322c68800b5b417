package secrets

import (
	"context"

	"github.com/sas-platform/terraform-provider-sas/internal/operations"
)

// PeekToken opens the wrapping token an operation holds now ("" when it
// holds none), so a test can ask Vault about every token afterwards.
func (c *Courier) PeekToken(ctx context.Context, opID string) (token, accessor string, err error) {
	h, err := c.cfg.Book.HandOff(ctx, opID)
	if err != nil || h.State != operations.HandOffWrapped {
		return "", "", err
	}
	token, err = c.open(opID, h)
	return token, h.Accessor, err
}
