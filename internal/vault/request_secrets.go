package vault

import "errors"

// RequestSecrets are the clear values of a request's secret fields, by
// field name and key (secret_variables → ADMIN_PASSWORD → value). They
// travel from admission to the operation's executor only inside a
// single-use response-wrapping token (package internal/secrets); no KV
// path holds them, so no token — a sub-token included — can read them.
type RequestSecrets map[string]map[string]string

// ErrRequestSecretsGone: the request's secret values are not available
// any more — an earlier step handed them to the downstream system, the
// operation never had any, their wrapping token expired before a step
// could use it, or it was used by someone else.
var ErrRequestSecretsGone = errors.New("the request's secret values are no longer in Vault")
