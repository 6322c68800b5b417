package vault

import (
	"context"
	"errors"
	"fmt"

	vaultapi "github.com/hashicorp/vault/api"

	"github.com/sas-platform/terraform-provider-sas/internal/vaultsetup"
)

// RequestSecrets are the clear values of a request's secret fields, by
// field name and key (secret_variables → ADMIN_PASSWORD → value).
type RequestSecrets map[string]map[string]string

// requestSecretsPath is where a request's secrets wait for its executor.
func requestSecretsPath(env, requestID string) string { return env + "/" + requestID }

// DropRequestSecrets stores a request's secret values for its executor at
// sas-request-secrets/<env>/<request id>, with the gateway's own token,
// which may create entries there but never read one back. Nothing else
// about the request holds the values.
func (s *Session) DropRequestSecrets(ctx context.Context, env, requestID string, secrets RequestSecrets) error {
	data := make(map[string]any, len(secrets))
	for field, values := range secrets {
		data[field] = values
	}
	if _, err := s.Client().KVv2(vaultsetup.RequestSecretsMount).Put(ctx, requestSecretsPath(env, requestID), data); err != nil {
		return &UnavailableError{Err: fmt.Errorf("store the request's secret values in %s: %w", vaultsetup.RequestSecretsMount, err)}
	}
	return nil
}

// ErrRequestSecretsGone: the request's secrets were destroyed (the
// downstream system has them already) or never stored.
var ErrRequestSecretsGone = errors.New("the request's secret values are no longer in Vault")

// ReadRequestSecrets reads a request's secret values with an operation's
// sub-token (of the request's environment — no other can).
func (s *Session) ReadRequestSecrets(ctx context.Context, sub SubToken, requestID string) (RequestSecrets, error) {
	c, err := s.subClient(sub)
	if err != nil {
		return nil, err
	}
	kv, err := c.KVv2(vaultsetup.RequestSecretsMount).Get(ctx, requestSecretsPath(sub.Environment, requestID))
	if errors.Is(err, vaultapi.ErrSecretNotFound) {
		return nil, ErrRequestSecretsGone
	}
	if err != nil {
		return nil, &UnavailableError{Err: fmt.Errorf("read the request's secret values with the operation's sub-token: %w", err)}
	}
	out := RequestSecrets{}
	for field, v := range kv.Data {
		m, _ := v.(map[string]any)
		values := make(map[string]string, len(m))
		for k, val := range m {
			values[k], _ = val.(string)
		}
		out[field] = values
	}
	return out, nil
}

// DestroyRequestSecrets removes a request's secret values and every
// version of them, once the downstream system holds them (or the request
// ended without needing them).
func (s *Session) DestroyRequestSecrets(ctx context.Context, sub SubToken, requestID string) error {
	c, err := s.subClient(sub)
	if err != nil {
		return err
	}
	if err := c.KVv2(vaultsetup.RequestSecretsMount).DeleteMetadata(ctx, requestSecretsPath(sub.Environment, requestID)); err != nil {
		return &UnavailableError{Err: fmt.Errorf("destroy the request's secret values: %w", err)}
	}
	return nil
}

func (s *Session) subClient(sub SubToken) (*vaultapi.Client, error) {
	c, err := NewClient(s.addr)
	if err != nil {
		return nil, err
	}
	c.SetToken(sub.Token)
	return c, nil
}
