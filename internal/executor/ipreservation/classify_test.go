package ipreservation

import (
	"errors"
	"net/http"
	"testing"
	"time"

	"github.com/sas-platform/terraform-provider-sas/internal/executor"
	"github.com/sas-platform/terraform-provider-sas/internal/infoblox"
)

// The grid's own verdict decides: a conflict is permanent, an overloaded
// grid is retried — no sooner than it asked, when it said.
func TestClassify(t *testing.T) {
	busy := executor.InfobloxError(&infoblox.APIError{Method: "POST", Object: "record:host", Status: http.StatusServiceUnavailable, RetryAfter: 7 * time.Second})
	var ra *executor.RetryAfterError
	if !errors.As(busy, &ra) || ra.After != 7*time.Second || executor.IsPermanent(busy) {
		t.Fatalf("503 with Retry-After: %#v", busy)
	}
	if plain := executor.InfobloxError(&infoblox.APIError{Status: http.StatusBadGateway}); errors.As(plain, &ra) || executor.IsPermanent(plain) {
		t.Fatalf("502 without Retry-After: %#v", plain)
	}
	if conflict := executor.InfobloxError(&infoblox.APIError{Status: http.StatusBadRequest, Code: infoblox.CodeConflict}); !executor.IsPermanent(conflict) {
		t.Fatalf("conflict: %#v", conflict)
	}
}
