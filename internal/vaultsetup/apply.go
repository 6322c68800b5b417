package vaultsetup

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	vaultapi "github.com/hashicorp/vault/api"
)

// Apply performs the steps with an administrator's client. Each write (and
// delete) is idempotent, so applying the plan to an already configured Vault is safe.
func Apply(ctx context.Context, admin *vaultapi.Client, steps []Step) error {
	for _, s := range steps {
		if s.Delete {
			if _, err := admin.Logical().DeleteWithContext(ctx, s.Path); err != nil {
				return fmt.Errorf("vault setup: delete %s (%s): %w", s.Path, s.Why, err)
			}
			continue
		}
		if _, err := admin.Logical().WriteWithContext(ctx, s.Path, s.Data); err != nil {
			if alreadyEnabled(err) {
				continue
			}
			return fmt.Errorf("vault setup: write %s (%s): %w", s.Path, s.Why, err)
		}
	}
	return nil
}

// Mounts and auth methods answer 400 "path is already in use" on a re-run.
func alreadyEnabled(err error) bool {
	var re *vaultapi.ResponseError
	return errors.As(err, &re) && re.StatusCode == 400 && strings.Contains(strings.Join(re.Errors, " "), "already in use")
}

// AppRoleCredentials are what the gateway logs in with. SecretID is a secret.
type AppRoleCredentials struct {
	RoleID   string
	SecretID string
}

// IssueGatewayCredentials reads the gateway AppRole's role_id and generates
// a fresh secret_id — the operator's "vault read …/role-id" and
// "vault write -f …/secret-id".
func IssueGatewayCredentials(ctx context.Context, admin *vaultapi.Client) (AppRoleCredentials, error) {
	base := "auth/approle/role/" + GatewayAppRole
	r, err := admin.Logical().ReadWithContext(ctx, base+"/role-id")
	if err != nil || r == nil {
		return AppRoleCredentials{}, fmt.Errorf("vault setup: read %s/role-id: %v", base, err)
	}
	s, err := admin.Logical().WriteWithContext(ctx, base+"/secret-id", nil)
	if err != nil || s == nil {
		return AppRoleCredentials{}, fmt.Errorf("vault setup: generate %s/secret-id: %v", base, err)
	}
	return AppRoleCredentials{RoleID: fmt.Sprint(r.Data["role_id"]), SecretID: fmt.Sprint(s.Data["secret_id"])}, nil
}

// EnsureEntity creates (or finds) a Vault entity with an alias on the token
// auth mount, so tokens minted through CallerRole with entity_alias=name
// carry that entity. It returns the entity id.
func EnsureEntity(ctx context.Context, admin *vaultapi.Client, name string) (string, error) {
	var id string
	existing, err := admin.Logical().ReadWithContext(ctx, "identity/entity/name/"+name)
	if err != nil {
		return "", fmt.Errorf("vault setup: read entity %q: %w", name, err)
	}
	if existing != nil {
		id = fmt.Sprint(existing.Data["id"])
		if aliases, _ := existing.Data["aliases"].([]any); len(aliases) > 0 {
			return id, nil
		}
	} else {
		created, err := admin.Logical().WriteWithContext(ctx, "identity/entity", map[string]any{
			"name":     name,
			"metadata": map[string]string{"source": "sas"},
		})
		if err != nil || created == nil {
			return "", fmt.Errorf("vault setup: create entity %q: %v", name, err)
		}
		id = fmt.Sprint(created.Data["id"])
	}
	auths, err := admin.Sys().ListAuthWithContext(ctx)
	if err != nil {
		return "", fmt.Errorf("vault setup: list auth mounts: %w", err)
	}
	tokenMount, ok := auths["token/"]
	if !ok {
		return "", errors.New("vault setup: token auth mount not found")
	}
	if _, err := admin.Logical().WriteWithContext(ctx, "identity/entity-alias", map[string]any{
		"name":           name,
		"canonical_id":   id,
		"mount_accessor": tokenMount.Accessor,
	}); err != nil {
		return "", fmt.Errorf("vault setup: alias entity %q on the token mount: %w", name, err)
	}
	return id, nil
}

// CallerSpec describes an ephemeral caller token.
type CallerSpec struct {
	Entity   string        // entity alias name; the token carries that entity
	Bundles  []string      // bundles the token may use
	Auditor  bool          // also grant AuditorPolicy
	TTL      time.Duration // must be within the caller role's max
	NumUses  int           // 0 = unlimited
	Metadata map[string]string
}

// MintCallerToken creates an ephemeral service token through CallerRole.
func MintCallerToken(ctx context.Context, admin *vaultapi.Client, spec CallerSpec) (string, error) {
	if spec.Entity == "" {
		return "", errors.New("vault setup: caller token needs an entity")
	}
	if _, err := EnsureEntity(ctx, admin, spec.Entity); err != nil {
		return "", err
	}
	policies := prefixed(BundlePolicyPrefix, spec.Bundles)
	if spec.Auditor {
		policies = append(policies, AuditorPolicy)
	}
	ttl := spec.TTL
	if ttl == 0 {
		ttl = time.Hour
	}
	secret, err := admin.Auth().Token().CreateWithRoleWithContext(ctx, &vaultapi.TokenCreateRequest{
		Policies: policies,
		TTL:      ttl.String(),
		// On the token itself (the role's max is shown only on the role): the
		// gateway then needs no extra read, and renewals cannot outlive ttl.
		ExplicitMaxTTL: ttl.String(),
		NumUses:        spec.NumUses,
		EntityAlias:    spec.Entity,
		DisplayName:    spec.Entity,
		Metadata:       spec.Metadata,
	}, CallerRole)
	if err != nil {
		return "", fmt.Errorf("vault setup: mint caller token for %q: %w", spec.Entity, err)
	}
	return secret.Auth.ClientToken, nil
}

// Markdown renders the plan as the operator guide's command listing.
func Markdown(steps []Step) string {
	var b strings.Builder
	for i, s := range steps {
		fmt.Fprintf(&b, "### %d. %s\n\n```sh\n%s\n```\n\n", i+1, upperFirst(s.Why), s.CLI)
	}
	return b.String()
}

func upperFirst(s string) string {
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}
