package policy

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/sas-platform/terraform-provider-sas/internal/api"
)

// The revision that approved a request is the one that executes it.
//
// Admission decides under a bundle's current revision and the decision
// carries it (api.Decision.Revision). Whatever is judged later on behalf of
// that request — a module run's saved plan, a network name resolved to a
// CIDR — must be judged by that same revision, not by whatever the bundle
// directory holds by then: EvaluateAt and BundleAt do so, and fail closed
// (ErrRevisionGone) when the revision is no longer held rather than use
// another one.
//
// What is held: every revision of a bundle that compiled and became current,
// up to Options.MaxHeldRevisions per bundle (DefaultMaxHeldRevisions), newest
// kept; bundles that failed to load are never held. Held revisions survive
// their bundle being edited, broken or removed, but not a restart: after a
// restart only the revisions then on disk are held, and an operation
// approved under any other cannot run (the caller re-submits it).
//
// A revision names content (see BundleInfo.Revision), so the same files
// loaded again — after a revert or a restart — are the same revision, and
// a revision never stands for two contents: a bundle whose content differs
// from a held revision of the same name is refused (it denies every request).

// DefaultMaxHeldRevisions is how many revisions of each bundle an evaluator
// keeps when Options.MaxHeldRevisions is not set.
const DefaultMaxHeldRevisions = 16

// RuleRevisionGone: the revision of a bundle that approved an operation is
// no longer held, so the operation cannot be judged by it. Always a deny.
const RuleRevisionGone = "bundle_revision_gone"

// ErrRevisionGone is returned (with ErrPolicyFailure) by EvaluateAt when the
// requested revision of a bundle is not held, or none was given.
var ErrRevisionGone = errors.New("policy: bundle revision is no longer loaded")

// EvaluateAt decides one request under exactly the given revision of the
// named bundle — the api.Decision.Revision of the decision that admitted
// it. The decision carries that revision. When the revision is not held
// (evicted, from before a restart, or "") the decision is a deny with a
// RuleRevisionGone violation and the error wraps ErrRevisionGone and
// ErrPolicyFailure; no other revision is ever used instead. Otherwise it
// behaves as Evaluate.
func (e *Evaluator) EvaluateAt(ctx context.Context, bundle, revision string, input Input) (api.Decision, error) {
	d := api.Decision{Bundle: bundle, Revision: revision, DecisionID: newDecisionID(), Violations: []api.Violation{}}
	set := e.current.Load()
	b := set.at(bundle, revision)
	if b == nil {
		msg := set.goneMessage(bundle, revision)
		d.Violations = append(d.Violations, api.Violation{Rule: RuleRevisionGone, Message: msg, ControlIDs: []string{"CM-3", "SC-24"}})
		return d, fmt.Errorf("%w: %w: %s", ErrPolicyFailure, ErrRevisionGone, msg)
	}
	return e.decide(ctx, d, b, input)
}

// BundleAt describes the given revision of a bundle, when it is held (the
// current revision always is, unless it failed to load).
func (e *Evaluator) BundleAt(name, revision string) (BundleInfo, bool) {
	b := e.current.Load().at(name, revision)
	if b == nil {
		return BundleInfo{}, false
	}
	return b.info.clone(), true
}

// HeldRevisions lists the revisions of a bundle that EvaluateAt can judge
// by, newest first.
func (e *Evaluator) HeldRevisions(name string) []string {
	return e.current.Load().heldRevisions(name)
}

// at finds a revision of a bundle: the current one (even a deny-all entry
// that failed to load) or a held one; nil when neither.
func (s *bundleSet) at(name, revision string) *compiledBundle {
	if revision == "" {
		return nil
	}
	if b, ok := s.bundles[name]; ok && b.info.Revision == revision {
		return b
	}
	for _, b := range s.held[name] {
		if b.info.Revision == revision {
			return b
		}
	}
	return nil
}

func (s *bundleSet) heldRevisions(name string) []string {
	h := s.held[name]
	out := make([]string, 0, len(h))
	for i := len(h) - 1; i >= 0; i-- {
		out = append(out, h[i].info.Revision)
	}
	return out
}

func (s *bundleSet) goneMessage(bundle, revision string) string {
	if revision == "" {
		return fmt.Sprintf("no revision of bundle %s was given; an operation is judged only by the revision that approved it, never by another", bundle)
	}
	held := "none"
	if revs := s.heldRevisions(bundle); len(revs) > 0 {
		held = fmtList(revs)
	}
	return fmt.Sprintf("bundle %s revision %s that approved this operation is no longer loaded; the operation cannot be judged by it "+
		"(revisions held: %s; a gateway holds the revisions it has served since it started, a bounded number per bundle) — submit the request again",
		bundle, revision, held)
}

// revisionConflict refuses a newly compiled bundle whose revision is held
// for other content (a 64-bit digest prefix collision): one revision must
// never stand for two contents.
func (s *bundleSet) revisionConflict(b *compiledBundle) error {
	if s == nil || b.info.Digest == "" {
		return nil
	}
	for _, h := range s.held[b.info.Name] {
		if h.info.Revision == b.info.Revision && h.info.Digest != b.info.Digest {
			return fmt.Errorf("revision %s is already held for other content (digest %s, this one %s); change the .manifest revision",
				b.info.Revision, h.info.Digest, b.info.Digest)
		}
	}
	return nil
}

// hold computes the held revisions of a new generation: prev's, plus each
// bundle of set that compiled (moved to newest if it was held already),
// trimmed to the newest Options.MaxHeldRevisions per bundle.
func (e *Evaluator) hold(prev, set *bundleSet) map[string][]*compiledBundle {
	held := map[string][]*compiledBundle{}
	if prev != nil {
		for name, h := range prev.held {
			held[name] = h
		}
	}
	for _, name := range set.names {
		b := set.bundles[name]
		h := held[name]
		if b.query == nil || (len(h) > 0 && h[len(h)-1] == b) {
			continue
		}
		h = slices.DeleteFunc(slices.Clone(h), func(x *compiledBundle) bool { return x.info.Revision == b.info.Revision })
		h = append(h, b)
		if over := len(h) - e.opts.MaxHeldRevisions; over > 0 {
			for _, gone := range h[:over] {
				e.log.Info("policy bundle revision evicted; operations it approved can no longer run", "bundle", name, "revision", gone.info.Revision)
			}
			h = h[over:]
		}
		held[name] = h
	}
	return held
}
