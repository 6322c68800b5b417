package calm_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/sas-platform/terraform-provider-sas/internal/calm"
)

// stub answers every call with status, headers and body.
func stub(t *testing.T, status int, header map[string]string, body string) *calm.Client {
	t.Helper()
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		for k, v := range header {
			w.Header().Set(k, v)
		}
		w.WriteHeader(status)
		_, _ = io.WriteString(w, body)
	}))
	t.Cleanup(ts.Close)
	c, err := calm.New(calm.Config{BaseURL: ts.URL, Username: "u", Password: "Secr3t-Pw", RetryMax: -1})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestErrorBodies(t *testing.T) {
	cases := []struct {
		name    string
		status  int
		header  map[string]string
		body    string
		want    []string // in Error()
		reason  string
		check   func(error) bool
		checkIs string
	}{
		{name: "top level", status: 404,
			body: `{"api_version":"3.1","code":404,"kind":"app","state":"ERROR","message_list":[{"message":"app x not found","reason":"ENTITY_NOT_FOUND","details":{}}]}`,
			want: []string{"404", "app x not found", "ENTITY_NOT_FOUND"}, reason: "ENTITY_NOT_FOUND", check: calm.IsNotFound, checkIs: "IsNotFound"},
		{name: "nested under status", status: 422,
			body: `{"api_version":"3.1","code":422,"status":{"state":"ERROR","message_list":[{"message":"bad a","reason":"R1"},{"message":"bad b","reason":"R2"}]}}`,
			want: []string{"422", "bad a (R1); bad b (R2)"}, reason: "R1", check: calm.IsPermanent, checkIs: "IsPermanent"},
		{name: "plain message", status: 409, body: `{"message":"already exists"}`,
			want: []string{"409", "already exists"}, check: calm.IsConflict, checkIs: "IsConflict"},
		{name: "HTML 401", status: 401, header: map[string]string{"Content-Type": "text/html"},
			body: "<html><head><title>401 Unauthorized</title></head><body>no</body></html>",
			want: []string{"Calm refused the credentials (401)"}, check: calm.IsUnauthorized, checkIs: "IsUnauthorized"},
		{name: "plain-text 401", status: 401, body: "Authentication required",
			want: []string{"Calm refused the credentials (401)"}, check: calm.IsPermanent, checkIs: "IsPermanent"},
		{name: "HTML 500", status: 500, body: "<html><title>Internal Server Error</title></html>",
			want: []string{"500", "Internal Server Error (HTML answer)"}, check: calm.IsTransient, checkIs: "IsTransient"},
		{name: "429 with Retry-After", status: 429, header: map[string]string{"Retry-After": "7"}, body: "",
			want: []string{"429", "Too Many Requests"}, check: calm.IsTransient, checkIs: "IsTransient"},
	}
	for _, c := range cases {
		_, err := stub(t, c.status, c.header, c.body).App(bg(), "00000000-0000-4000-8000-000000000000")
		var ae *calm.APIError
		if !errors.As(err, &ae) || ae.Status != c.status {
			t.Errorf("%s: %v", c.name, err)
			continue
		}
		for _, w := range c.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%s: %q lacks %q", c.name, err, w)
			}
		}
		if strings.Contains(err.Error(), "Secr3t") || strings.Contains(err.Error(), "<html") {
			t.Errorf("%s: %q leaks", c.name, err)
		}
		if ae.Reason() != c.reason {
			t.Errorf("%s: reason %q", c.name, ae.Reason())
		}
		if !c.check(err) {
			t.Errorf("%s: not %s", c.name, c.checkIs)
		}
		if c.status == 429 && ae.RetryAfter.Seconds() != 7 {
			t.Errorf("RetryAfter %v", ae.RetryAfter)
		}
	}
	if calm.IsTransient(nil) || calm.IsPermanent(nil) || calm.IsNotFound(nil) {
		t.Error("nil is an error")
	}
}

// TestPagingWithoutTotalMatches: a Calm that leaves total_matches out is
// paged until a short page.
func TestPagingWithoutTotalMatches(t *testing.T) {
	calls := 0
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls++
		var req struct{ Offset, Length int }
		_ = json.NewDecoder(r.Body).Decode(&req)
		var ents []string
		for i := req.Offset; i < req.Offset+req.Length && i < 7; i++ {
			ents = append(ents, fmt.Sprintf(`{"metadata":{"uuid":"u%d","name":"p%d"},"status":{"name":"p%d"}}`, i, i, i))
		}
		fmt.Fprintf(w, `{"entities":[%s]}`, strings.Join(ents, ","))
	}))
	defer ts.Close()
	c, err := calm.New(calm.Config{BaseURL: ts.URL, Username: "u", Password: "p", PageSize: 3})
	if err != nil {
		t.Fatal(err)
	}
	ps, err := c.ListProjects(bg(), "")
	if err != nil || len(ps) != 7 || ps[6].Name != "p6" || calls != 3 {
		t.Fatalf("%d projects in %d calls: %v", len(ps), calls, err)
	}
}
