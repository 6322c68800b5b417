package api

// Problem types. They are URNs rather than URLs so nobody mistakes them for
// pages to fetch; clients switch on them, so they never change meaning.
const (
	ProblemTokenMissing   = "urn:sas:problem:token-missing"
	ProblemTokenMalformed = "urn:sas:problem:token-malformed"
	ProblemTokenInvalid   = "urn:sas:problem:token-invalid" // unknown, expired or revoked
	ProblemTokenRoot      = "urn:sas:problem:token-root"
	ProblemTokenStatic    = "urn:sas:problem:token-static" // no expiry
	ProblemTokenTooLong   = "urn:sas:problem:token-ttl-above-ceiling"
	ProblemTokenMaxTTL    = "urn:sas:problem:token-max-ttl"  // no explicit max TTL, or one above the ceiling
	ProblemTokenPeriodic  = "urn:sas:problem:token-periodic" // renewable forever
	ProblemTokenBatch     = "urn:sas:problem:token-batch"    // cannot be revoked
	ProblemTokenUseLimit  = "urn:sas:problem:token-use-limited"
	ProblemTokenCIDR      = "urn:sas:problem:token-cidr-bound"
	ProblemTokenNoEntity  = "urn:sas:problem:token-no-entity"
	ProblemEntityMissing  = "urn:sas:problem:entity-missing"
	ProblemEntityDisabled = "urn:sas:problem:entity-disabled"
	ProblemTokenAmbiguous = "urn:sas:problem:token-ambiguous" // two different tokens, or one header twice
	ProblemUnavailable    = "urn:sas:problem:dependency-unavailable"
	ProblemAuditFailed    = "urn:sas:problem:audit-unavailable"
	ProblemRateLimited    = "urn:sas:problem:rate-limited"
	ProblemInvalidRequest = "urn:sas:problem:invalid-request"
	ProblemBodyTooLarge   = "urn:sas:problem:body-too-large"
	ProblemPolicyDenied   = "urn:sas:problem:policy-denied"
	ProblemBundleNotBound = "urn:sas:problem:bundle-not-bound"
	ProblemBundleRequired = "urn:sas:problem:bundle-required"
	ProblemForbidden      = "urn:sas:problem:forbidden"
	ProblemIdempotency    = "urn:sas:problem:idempotency-conflict"
	ProblemNotImplemented = "urn:sas:problem:not-implemented"
	ProblemOperationDone  = "urn:sas:problem:operation-finished" // nothing left to cancel
	ProblemNotFound       = "urn:sas:problem:not-found"
	ProblemWrongContext   = "urn:sas:problem:resource-context-mismatch" // headers name another bundle or environment than the resource's
	ProblemMethod         = "urn:sas:problem:method-not-allowed"
	ProblemInternal       = "urn:sas:problem:internal"
)
