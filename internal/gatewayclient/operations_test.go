package gatewayclient

import (
	"context"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sas-platform/terraform-provider-sas/internal/api"
)

// A gateway that is restarting (503, or no answer) does not end the wait
// for a durable operation; one that says the operation does not exist does.
func TestWaitOperationRidesOutAnOutage(t *testing.T) {
	var calls atomic.Int32
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := calls.Add(1)
		switch {
		case r.URL.Path == "/v1/operations/op-gone":
			w.Header().Set("Content-Type", "application/problem+json")
			w.WriteHeader(http.StatusNotFound)
			_, _ = w.Write([]byte(`{"type":"` + api.ProblemNotFound + `","title":"Not found","status":404}`))
		case n <= 2:
			w.Header().Set("Content-Type", "application/problem+json")
			w.WriteHeader(http.StatusServiceUnavailable)
			_, _ = w.Write([]byte(`{"type":"urn:sas:problem:unavailable","title":"Unavailable","status":503}`))
		default:
			_, _ = w.Write([]byte(`{"id":"op-1","state":"succeeded"}`))
		}
	}))
	defer ts.Close()
	c, err := New(Config{Address: ts.URL, Token: "t", RetryMax: 1, RetryWaitMax: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	op, err := c.WaitOperation(ctx, &api.Operation{ID: "op-1", State: api.OperationRunning})
	if err != nil || op.State != api.OperationSucceeded || calls.Load() < 3 {
		t.Fatalf("after an outage: %+v, %v (%d calls)", op, err, calls.Load())
	}
	if _, err := c.WaitOperation(ctx, &api.Operation{ID: "op-gone", State: api.OperationRunning}); !IsProblem(err, api.ProblemNotFound) {
		t.Fatalf("an operation the gateway does not know: %v", err)
	}
	short, cancelShort := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancelShort()
	calls.Store(-1000) // the outage outlasts the caller's timeout
	if _, err := c.WaitOperation(short, &api.Operation{ID: "op-1", State: api.OperationRunning}); err == nil {
		t.Fatal("a wait past its timeout ended without an error")
	}
}
