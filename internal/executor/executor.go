// Package executor is the contract between the orchestrator and the
// adapters that reach downstream systems (boundary ④). An adapter lives in
// a package of its own under internal/executor and implements Executor;
// the orchestrator mints the sub-token, records and audits every step, and
// calls the adapter only with credentials that sub-token unlocked.
package executor

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/sas-platform/terraform-provider-sas/internal/api"
	"github.com/sas-platform/terraform-provider-sas/internal/infoblox"
	"github.com/sas-platform/terraform-provider-sas/internal/operations"
	"github.com/sas-platform/terraform-provider-sas/internal/vault"
)

// Executor carries out operations of one kind against its downstream system.
type Executor interface {
	// Execute performs the operation. Errors are transient (retried with
	// backoff) unless wrapped by Permanent.
	Execute(ctx context.Context, job Job) (Result, error)
	// Compensate releases whatever a permanently failed operation allocated.
	Compensate(ctx context.Context, job Job) error
	// Read reads an existing resource from its downstream system: its
	// attributes now, and how they drifted from what sas recorded; gone
	// when the downstream object no longer exists.
	Read(ctx context.Context, job Job) (attributes map[string]any, drift []api.Drift, gone bool, err error)
}

// Job is one attempt at an operation (or one read of a resource).
type Job struct {
	Operation operations.Work
	Attempt   int
	// SubTokenAccessor identifies this attempt's sub-token (not a secret).
	SubTokenAccessor string
	// Credentials reads a downstream system's login with this attempt's
	// sub-token (the only identity that may).
	Credentials func(ctx context.Context, system string) (vault.Credentials, error)
	// Resource is the existing resource for update, delete and read.
	Resource *operations.Resource
	// Refresh asks a Read to compare with the downstream system even where
	// that is costly (a module run's refresh-only plan); reads that are
	// cheap always do.
	Refresh bool
	// Checkpoint is what an earlier step saved about the downstream work it
	// started (nil on the first step): continue that work, never start it again.
	Checkpoint json.RawMessage
	// SubToken is Vault's address and this step's sub-token, for an
	// executor that hands the token on (a Terraform run's environment);
	// nil on reads. The token is a secret: never log, store or return it.
	SubToken func() (addr, token string)
	// Secrets returns the clear values of the request's secret fields (the
	// request itself holds only their digests). They come from a single-use
	// Vault wrapping token the operation holds (internal/secrets), never
	// through the sub-token, which can read no request's secrets: the first
	// call in a step unwraps it, later calls in the step return the same
	// values, and a step that fails transiently leaves them for its retry.
	// vault.ErrRequestSecretsGone once ForgetSecrets ran (in any step), or
	// when their token expired or was used by someone else (audited); a
	// transient error while admission has not handed them over yet. Nil on reads.
	Secrets func(ctx context.Context) (vault.RequestSecrets, error)
	// ForgetSecrets ends them for good: call it as soon as the downstream
	// system holds them (or they are not needed any more). The operation's
	// end destroys them anyway; a failing ForgetSecrets is transient.
	ForgetSecrets func(ctx context.Context) error
	// Log keeps text (already redacted) as this step's output, for the
	// operation's owner (GET /v1/operations/{id}/log); nil on reads.
	Log func(ctx context.Context, text string) error
	// Save stores a checkpoint durably on the operation. Call it as soon
	// as the downstream system hands back its own id for the work (a launch
	// request id, an app uuid), before waiting on anything: a crash after
	// that point resumes the same work.
	Save func(ctx context.Context, checkpoint any) error
}

// InProgress is an Execute answer that is neither success nor failure: the
// downstream work goes on. The orchestrator stores Checkpoint (if set),
// releases the step's sub-token and worker, and runs the next step after
// After — on any replica, after any restart.
type InProgress struct {
	After      time.Duration
	Checkpoint any    // saved before the wait, like Job.Save
	Progress   string // shown on the operation ("launch running")
}

func (e *InProgress) Error() string {
	return fmt.Sprintf("in progress (%s); next check in %s", e.Progress, e.After)
}

// Wait is the InProgress answer: check again after d.
func Wait(d time.Duration, checkpoint any, progress string) error {
	return &InProgress{After: d, Checkpoint: checkpoint, Progress: progress}
}

// Result is what a successful operation leaves behind.
type Result struct {
	ResourceID string
	Attributes map[string]any // stored on the resource and returned as the operation's result
	Deleted    bool
}

// PermanentError will not succeed on retry; the operation fails with it.
type PermanentError struct{ Err error }

func (e *PermanentError) Error() string { return e.Err.Error() }
func (e *PermanentError) Unwrap() error { return e.Err }

// Permanent marks err as not worth retrying.
func Permanent(err error) error { return &PermanentError{Err: err} }

// IsPermanent reports whether err was marked Permanent.
func IsPermanent(err error) bool {
	var p *PermanentError
	return errors.As(err, &p)
}

// RetryAfterError asks for the next attempt no sooner than After (a
// downstream's Retry-After, a rate limit).
type RetryAfterError struct {
	Err   error
	After time.Duration
}

func (e *RetryAfterError) Error() string { return e.Err.Error() }
func (e *RetryAfterError) Unwrap() error { return e.Err }

// ApprovedNetwork is the CIDR an operation's network was approved as:
// resolved at admission by the bundle revision that allowed it, so a
// bundle reloaded since changes nothing. An operation admitted before
// approvals were recorded may name a CIDR itself; a name it cannot
// resolve now fails it rather than being looked up in a newer revision.
func ApprovedNetwork(op operations.Work, requested string) (string, error) {
	if cidr := op.Approval.NetworkCIDR; cidr != "" {
		return cidr, nil
	}
	if strings.Contains(requested, "/") {
		return requested, nil
	}
	return "", Permanent(fmt.Errorf("operation %s carries no approved CIDR for network %q (admitted before this gateway recorded approvals); send the request again", op.ID, requested))
}

// Infoblox is a client of the operation's environment's Infoblox grid,
// with the credentials this step's sub-token reads (sas/<env>/infoblox).
func (j Job) Infoblox(ctx context.Context) (*infoblox.Client, error) {
	creds, err := j.Credentials(ctx, "infoblox")
	if err != nil {
		return nil, err
	}
	if creds.URL == "" {
		return nil, Permanent(fmt.Errorf("sas/%s/infoblox in Vault has no url", j.Operation.Environment))
	}
	return infoblox.New(infoblox.Config{URL: creds.URL, CACertPEM: []byte(creds.CACert),
		Credentials: infoblox.Credentials{Username: creds.Username, Password: creds.Password}})
}

// InfobloxError keeps the grid's message and decides whether retrying
// helps; a grid that said when to come back (Retry-After) is asked again
// no sooner.
func InfobloxError(err error) error {
	if !infoblox.IsTransient(err) {
		return Permanent(err)
	}
	var apiErr *infoblox.APIError
	if errors.As(err, &apiErr) && apiErr.RetryAfter > 0 {
		return &RetryAfterError{Err: err, After: apiErr.RetryAfter}
	}
	return err
}
