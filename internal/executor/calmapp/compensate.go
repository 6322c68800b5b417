package calmapp

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/sas-platform/terraform-provider-sas/internal/api"
	"github.com/sas-platform/terraform-provider-sas/internal/calm"
	"github.com/sas-platform/terraform-provider-sas/internal/executor"
)

// CompensationBound is how long compensation keeps trying to undo a create
// — waiting for its launch to resolve, then for its app to be deleted —
// before it gives up with a permanent error naming the launch and app an
// operator must check. Counted from the first compensation step
// (checkpointed), so steps, retries and restarts do not reset it.
//
// Why 15 minutes: calm-dsl, Nutanix's own client, gives a pending launch 5
// minutes to resolve into an app; a delete overtaking provisioning takes
// minutes more. A launch still unresolved three times past Calm's own
// patience, or an app still not deleted, needs a person, and the operation
// should say so while its requester is still around (calm_app's deadline
// is 2 hours). Each compensation step waits in-step for up to
// compensationStepBudget, so the bound is reached within four steps —
// inside calm_app's attempts (5), which the orchestrator spends on every
// compensation that returns an error.
var CompensationBound = 15 * time.Minute

// LaunchListingWindow is how long after an unanswered launch (its intent
// checkpointed, no request id: the step died or was cut off around the
// simple_launch call) compensation keeps looking for an app carrying the
// request's tag before concluding the launch never reached Calm. The call
// may still be in flight for as long as the step that sent it runs (5
// minutes for calm_app), and a launch that reached Calm lists its app once
// it resolves (calm-dsl allows 5 minutes for that): 10 minutes covers both.
// It is shorter than CompensationBound, so this search ends in a verdict,
// not in giving up.
var LaunchListingWindow = 10 * time.Minute

// One compensation step waits in-step for Calm (a launch resolving, a
// delete finishing: usually seconds) for up to compensationStepBudget,
// leaving compensationStepMargin of the step's own deadline to revoke its
// sub-token and audit the end. Waiting in-step matters: the orchestrator
// retries a compensation that returns an error with backoff and spends one
// of the operation's attempts each time.
const (
	compensationStepBudget = 4 * time.Minute
	compensationStepMargin = time.Minute
)

// Compensate undoes a create that will not succeed (cancelled, failed for
// good, past its deadline). It drops the request's secrets from Vault, waits
// for the launch the create started to resolve — by its checkpointed
// request id, or, when only the intent to launch was checkpointed, by
// searching Calm for the request's tag for LaunchListingWindow — and
// deletes the app it made, and any other live app carrying the request's
// tag, until Calm says deleted. Then — the app gone, its VM no longer
// using it — it releases the address it held in Infoblox for an app on a
// network (address.go): the host its checkpoint names and any its
// request's tag finds.
//
// It returns nil only once nothing the create made is left (or Calm shows
// the launch made nothing): the orchestrator then ends the operation.
// Until then it answers executor.Wait (an error to the orchestrator, which
// runs compensation again; every call continues from the checkpoint, so
// repeating it is safe), and past CompensationBound a permanent error
// naming the launch and app to check.
func (e *Executor) Compensate(ctx context.Context, j executor.Job) error {
	if j.Operation.Action != api.ActionCreate {
		return nil
	}
	if j.ForgetSecrets != nil {
		if err := j.ForgetSecrets(ctx); err != nil {
			return err
		}
	}
	cp, err := loadCheckpoint(j)
	if err != nil {
		return err
	}
	req, err := request(j)
	if err != nil {
		return err
	}
	c, err := e.client(ctx, j)
	if err != nil {
		return err
	}
	if cp.CompensatingSince.IsZero() {
		cp.CompensatingSince = e.now()
		if err := j.Save(ctx, cp); err != nil {
			return err
		}
	}
	stop := e.now().Add(stepBudget(ctx))
	for {
		waiting, err := e.undo(ctx, c, j, req, &cp)
		if err == nil && waiting == "" {
			return e.releaseHeld(ctx, j, req, cp)
		}
		after := pollAfter(e.now().Sub(cp.CompensatingSince))
		if err == nil && !e.now().Add(after).After(stop) {
			if err := e.sleep(ctx, after); err != nil {
				return fmt.Errorf("compensation interrupted while %s: %w", waiting, err)
			}
			continue
		}
		// This step is done waiting (or Calm answered with an error).
		// Past the bound, give up and say what to check; before it, the
		// orchestrator runs compensation again.
		if e.now().Sub(cp.CompensatingSince) >= CompensationBound {
			gave := gaveUp(j, req, cp, waiting, err)
			e.note(ctx, j, "compensation gave up: "+gave.Error())
			return executor.Permanent(gave)
		}
		if err != nil {
			return err
		}
		return executor.Wait(after, cp, waiting)
	}
}

// releaseHeld releases the address the create held in Infoblox, if it
// asked for one (an app on a network); nothing else touches Infoblox.
func (e *Executor) releaseHeld(ctx context.Context, j executor.Job, req api.CalmAppRequest, cp checkpoint) error {
	if !holdsAddress(req) || (!cp.AddressAsked && cp.HostRef == "") {
		return nil
	}
	released, err := e.releaseAddress(ctx, j, j.Operation.RequestID, j.Operation.Owner, cp.HostRef)
	if err != nil {
		return fmt.Errorf("releasing the address held in Infoblox for app %s: %w", req.Name, err)
	}
	if len(released) > 0 {
		e.note(ctx, j, "compensation: released the app's address in Infoblox")
	}
	return nil
}

// undo takes one look at what the create made and moves its removal on:
// "" once nothing is left, else what it waits for.
func (e *Executor) undo(ctx context.Context, c *calm.Client, j executor.Job, req api.CalmAppRequest, cp *checkpoint) (string, error) {
	if cp.AppUUID == "" {
		uuid, waiting, err := e.launched(ctx, c, j, req, *cp)
		if err != nil || waiting != "" || uuid == "" {
			return waiting, err
		}
		cp.AppUUID, cp.DeleteSent = uuid, false
		if err := j.Save(ctx, *cp); err != nil {
			return "", err
		}
	}
	app, err := c.App(ctx, cp.AppUUID)
	switch {
	case calm.IsNotFound(err) || (err == nil && app.Deleted()):
		// Gone. One more look by the request's tag catches an app of the
		// request that the checkpoint does not name; the next look deletes it.
		apps, err := taggedApps(ctx, c, req.Name, j.Operation.RequestID)
		if err != nil || len(apps) == 0 {
			return "", err
		}
		cp.AppUUID, cp.DeleteSent = apps[0].UUID, false
		if err := j.Save(ctx, *cp); err != nil {
			return "", err
		}
		return fmt.Sprintf("Calm app %s (%s) also carries this request's tag; deleting it next", apps[0].Name, apps[0].UUID), nil
	case err != nil:
		return "", err
	case app.State == "deleting":
		return fmt.Sprintf("Calm app %s (%s) deleting", app.Name, app.UUID), nil
	}
	// Not deleting (yet, or any more): ask again until Calm says deleted.
	if _, err := c.DeleteApp(ctx, app.UUID, false); err != nil && !calm.IsNotFound(err) {
		var apiErr *calm.APIError
		if errors.As(err, &apiErr) && (apiErr.Status == http.StatusConflict || apiErr.Status == http.StatusUnprocessableEntity) {
			return fmt.Sprintf("Calm app %s (%s) is %s and refused the delete for now: %v", app.Name, app.UUID, app.State, err), nil
		}
		return "", err
	}
	if !cp.DeleteSent {
		cp.DeleteSent = true
		if err := j.Save(ctx, *cp); err != nil {
			return "", err
		}
		e.note(ctx, j, fmt.Sprintf("compensation: deleting Calm app %s (%s), found %s", app.Name, app.UUID, app.State))
	}
	return fmt.Sprintf("Calm app %s (%s) deleting", app.Name, app.UUID), nil
}

// launched works out which app the create's launch made: its uuid, "" when
// it made none, or what Calm cannot say yet (waiting).
func (e *Executor) launched(ctx context.Context, c *calm.Client, j executor.Job, req api.CalmAppRequest, cp checkpoint) (uuid, waiting string, err error) {
	byTag := func(unanswered bool) (string, string, error) {
		apps, err := taggedApps(ctx, c, req.Name, j.Operation.RequestID)
		switch {
		case err != nil:
			return "", "", err
		case len(apps) > 0:
			return apps[0].UUID, "", nil
		case unanswered && e.now().Sub(cp.LaunchSentAt) < LaunchListingWindow:
			return "", fmt.Sprintf("looking in Calm for app %s of a launch sent at %s and never answered",
				req.Name, cp.LaunchSentAt.UTC().Format(time.RFC3339)), nil
		}
		return "", "", nil
	}
	switch {
	case cp.LaunchRequest != "":
		st, err := c.PendingLaunch(ctx, cp.BlueprintUUID, cp.LaunchRequest)
		switch {
		case calm.IsNotFound(err):
			return byTag(true) // Calm forgot the launch: only its app can tell
		case err != nil:
			return "", "", err
		case st.Failed():
			return byTag(false) // a failed launch makes no app; one look to be sure
		case st.Running() || st.AppUUID == "":
			return "", fmt.Sprintf("waiting for Calm launch %s of app %s to resolve before deleting what it made", cp.LaunchRequest, req.Name), nil
		}
		return st.AppUUID, "", nil
	case !cp.LaunchSentAt.IsZero():
		return byTag(true)
	}
	// This operation sent no launch; an app with its tag can still only be
	// its own (never another's: the tag is checked), so one look.
	return byTag(false)
}

// taggedApps are the live apps called name that carry requestID, in their
// description's tags or their SAS_REQUEST_ID variable. Calm's list filters
// by name; the tag is checked here, so another's app of that name is never
// taken for this request's.
func taggedApps(ctx context.Context, c *calm.Client, name, requestID string) ([]calm.App, error) {
	apps, err := c.ListApps(ctx, calm.Filter("name", calm.OpEqual, name).String())
	if err != nil {
		return nil, err
	}
	var out []calm.App
	for _, a := range apps {
		if a.Name == name && !a.Deleted() && (ParseTags(a.Description).RequestID == requestID || a.Variables[VarRequestID] == requestID) {
			out = append(out, a)
		}
	}
	return out, nil
}

// gaveUp says what compensation could not make sure of, and what an
// operator must check.
func gaveUp(j executor.Job, req api.CalmAppRequest, cp checkpoint, waiting string, cause error) error {
	last := waiting
	if cause != nil {
		last = cause.Error()
	}
	what := fmt.Sprintf("app %s in Calm project %s", req.Name, req.Project)
	if cp.AppUUID != "" {
		what = fmt.Sprintf("app %s (%s) in Calm project %s", req.Name, cp.AppUUID, req.Project)
	}
	if cp.LaunchRequest != "" {
		what += fmt.Sprintf(", from launch request %s of blueprint %s", cp.LaunchRequest, req.Blueprint)
	}
	then := ""
	if cp.AddressAsked || cp.HostRef != "" {
		then = fmt.Sprintf("; once it is gone, delete the Infoblox host record holding its address (%s, SAS-Request-ID=%s, SAS-Held-For=%s)",
			orUnknown(cp.IPAddress+" "+cp.HostRef), j.Operation.RequestID, heldFor(req.Project, req.Name))
	}
	return fmt.Errorf("could not undo the create within %s (last: %s); check %s, tagged SAS-Request-ID=%s, and delete it if it exists%s",
		CompensationBound, last, what, j.Operation.RequestID, then)
}

func orUnknown(s string) string {
	if s = strings.TrimSpace(s); s == "" {
		return "address not recorded"
	}
	return s
}

// stepBudget is how long this step may wait in-step for Calm.
func stepBudget(ctx context.Context) time.Duration {
	budget := compensationStepBudget
	if dl, ok := ctx.Deadline(); ok {
		budget = min(budget, time.Until(dl)-compensationStepMargin)
	}
	return budget
}

func (e *Executor) sleep(ctx context.Context, d time.Duration) error {
	if e.Sleep != nil {
		return e.Sleep(ctx, d)
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// note keeps text in the operation's log for its owner (best effort: the
// audit trail records the outcome either way).
func (e *Executor) note(ctx context.Context, j executor.Job, text string) {
	if j.Log != nil {
		_ = j.Log(ctx, text)
	}
}
