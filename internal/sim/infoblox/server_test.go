package infoblox

import (
	"bytes"
	"encoding/json"
	"fmt"
	mrand "math/rand/v2"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

const (
	testUser = "admin"
	testPass = "infoblox-secret"
)

type sim struct {
	t   *testing.T
	srv *Server
	ts  *httptest.Server
}

func newSim(t *testing.T, opts Options) *sim {
	t.Helper()
	if opts.Users == nil {
		opts.Users = map[string]string{testUser: testPass}
	}
	srv, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(srv)
	t.Cleanup(ts.Close)
	return &sim{t: t, srv: srv, ts: ts}
}

type reply struct {
	status int
	header http.Header
	raw    []byte
}

func (r reply) json(t *testing.T, v any) {
	t.Helper()
	if err := json.Unmarshal(r.raw, v); err != nil {
		t.Fatalf("decode %s: %v", r.raw, err)
	}
}

// wapiErr decodes an error body.
func (r reply) wapiErr(t *testing.T) (code, text string) {
	t.Helper()
	var e struct{ Error, Code, Text string }
	r.json(t, &e)
	if !strings.HasPrefix(e.Error, "AdmCon") {
		t.Fatalf("error body %s has no AdmCon Error field", r.raw)
	}
	return e.Code, e.Text
}

// do sends method path (relative to /wapi/v2.12/) with Basic auth.
func (s *sim) do(method, path string, body any) reply {
	s.t.Helper()
	return s.doWith(http.DefaultClient, method, path, body, true)
}

func (s *sim) doWith(c *http.Client, method, path string, body any, basic bool) reply {
	s.t.Helper()
	var rdr *bytes.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			s.t.Fatal(err)
		}
		rdr = bytes.NewReader(b)
	} else {
		rdr = bytes.NewReader(nil)
	}
	req, err := http.NewRequest(method, s.ts.URL+"/wapi/v2.12/"+path, rdr)
	if err != nil {
		s.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	if basic {
		req.SetBasicAuth(testUser, testPass)
	}
	resp, err := c.Do(req)
	if err != nil {
		s.t.Fatal(err)
	}
	defer resp.Body.Close()
	var buf bytes.Buffer
	_, _ = buf.ReadFrom(resp.Body)
	return reply{status: resp.StatusCode, header: resp.Header, raw: buf.Bytes()}
}

func (s *sim) mustRef(method, path string, body any) string {
	s.t.Helper()
	r := s.do(method, path, body)
	if r.status != http.StatusCreated && r.status != http.StatusOK {
		s.t.Fatalf("%s %s: %d %s", method, path, r.status, r.raw)
	}
	var ref string
	r.json(s.t, &ref)
	return ref
}

func host(name string, ipv4addr any, eas map[string]string) map[string]any {
	h := map[string]any{"name": name, "ipv4addrs": []any{map[string]any{"ipv4addr": ipv4addr}}}
	if eas != nil {
		m := map[string]any{}
		for k, v := range eas {
			m[k] = map[string]any{"value": v}
		}
		h["extattrs"] = m
	}
	return h
}

func ipsOf(t *testing.T, r reply) []string {
	t.Helper()
	var hosts []struct {
		IPv4Addrs []struct {
			IPv4Addr string `json:"ipv4addr"`
		} `json:"ipv4addrs"`
	}
	r.json(t, &hosts)
	var out []string
	for _, h := range hosts {
		for _, a := range h.IPv4Addrs {
			out = append(out, a.IPv4Addr)
		}
	}
	return out
}

func TestAuthCookieReplayAndLogout(t *testing.T) {
	s := newSim(t, Options{})

	r := s.doWith(http.DefaultClient, "GET", "networkview", nil, false)
	if r.status != http.StatusUnauthorized || !strings.Contains(r.header.Get("Content-Type"), "text/html") ||
		!strings.Contains(string(r.raw), "Authorization Required") || r.header.Get("WWW-Authenticate") == "" {
		t.Fatalf("no credentials: want HTML 401, got %d %q %s", r.status, r.header.Get("Content-Type"), r.raw)
	}
	req, _ := http.NewRequest("GET", s.ts.URL+"/wapi/v2.12/networkview", nil)
	req.SetBasicAuth(testUser, "wrong")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("wrong password: want 401, got %d", resp.StatusCode)
	}

	jar, _ := cookiejar.New(nil)
	c := &http.Client{Jar: jar}
	if r := s.doWith(c, "GET", "networkview", nil, true); r.status != http.StatusOK {
		t.Fatalf("basic: %d %s", r.status, r.raw)
	}
	u, _ := url.Parse(s.ts.URL)
	if len(jar.Cookies(u)) != 1 || jar.Cookies(u)[0].Name != "ibapauth" {
		t.Fatalf("want an ibapauth cookie, got %v", jar.Cookies(u))
	}
	if r := s.doWith(c, "GET", "networkview", nil, false); r.status != http.StatusOK {
		t.Fatalf("cookie replay: %d %s", r.status, r.raw)
	}
	if r := s.doWith(c, "POST", "logout", nil, false); r.status != http.StatusOK {
		t.Fatalf("logout: %d %s", r.status, r.raw)
	}
	if len(jar.Cookies(u)) != 0 {
		t.Fatalf("logout left cookies %v", jar.Cookies(u))
	}
	// The old cookie value is dead even if a client keeps sending it.
	stale := &http.Client{}
	req, _ = http.NewRequest("GET", s.ts.URL+"/wapi/v2.12/networkview", nil)
	s.srv.sessMu.Lock()
	n := len(s.srv.sessions)
	s.srv.sessMu.Unlock()
	if n != 0 {
		t.Fatalf("%d sessions left after logout", n)
	}
	req.AddCookie(&http.Cookie{Name: "ibapauth", Value: "not-a-session"})
	resp, err = stale.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("bogus cookie: want 401, got %d", resp.StatusCode)
	}
}

func TestHostNextAvailableStringAndObjectForms(t *testing.T) {
	s := newSim(t, Options{Networks: []SeedNetwork{{Network: "10.0.0.0/24"}, {Network: "10.9.0.0/24", NetworkView: "lab"}}})

	ref1 := s.mustRef("POST", "record:host", host("a.example.com", "func:nextavailableip:10.0.0.0/24,default", nil))
	if !strings.HasPrefix(ref1, "record:host/") || !strings.HasSuffix(ref1, ":a.example.com/default") {
		t.Fatalf("ref %q does not look like a host reference", ref1)
	}
	obj := map[string]any{
		"_object_function": "next_available_ip", "_result_field": "ips", "_object": "network",
		"_object_parameters": map[string]any{"network": "10.0.0.0/24", "network_view": "default"},
	}
	ref2 := s.mustRef("POST", "record:host", host("b.example.com", obj, nil))
	// Without a network view the string form uses the host's.
	s.mustRef("POST", "record:host", host("c.example.com", "func:nextavailableip:10.0.0.0/24", nil))

	var got struct {
		Ref       string `json:"_ref"`
		Name      string
		View      string
		IPv4Addrs []struct {
			Ref            string `json:"_ref"`
			IPv4Addr, Host string
		} `json:"ipv4addrs"`
	}
	r := s.do("GET", ref2, nil)
	r.json(t, &got)
	if got.Ref != ref2 || got.Name != "b.example.com" || got.View != "default" || len(got.IPv4Addrs) != 1 ||
		got.IPv4Addrs[0].IPv4Addr != "10.0.0.2" || got.IPv4Addrs[0].Host != "b.example.com" ||
		!strings.HasPrefix(got.IPv4Addrs[0].Ref, "record:host_ipv4addr/") {
		t.Fatalf("GET %s = %s", ref2, r.raw)
	}
	if ips := ipsOf(t, s.do("GET", "record:host?name~=^c%5C.", nil)); len(ips) != 1 || ips[0] != "10.0.0.3" {
		t.Fatalf("c.example.com got %v, want 10.0.0.3", ips)
	}

	// A network that does not exist (here: wrong network view).
	r = s.do("POST", "record:host", host("d.example.com", "func:nextavailableip:10.9.0.0/24,default", nil))
	if code, text := r.wapiErr(t); r.status != 400 || code != "Client.Ibap.Proto" || !strings.Contains(text, "does not match any unique networks") {
		t.Fatalf("missing network: %d %s", r.status, r.raw)
	}
	// Duplicate name in the view.
	r = s.do("POST", "record:host", host("A.example.com", "10.0.0.50", nil))
	if code, _ := r.wapiErr(t); r.status != 400 || code != "Client.Ibap.Data.Conflict" {
		t.Fatalf("duplicate: %d %s", r.status, r.raw)
	}
	var e struct{ Error string }
	r.json(t, &e)
	if !strings.Contains(e.Error, "IB.Data.Conflict:The record 'A.example.com' already exists.") {
		t.Fatalf("duplicate Error field %q", e.Error)
	}
}

func TestFixedAddressesCountAsUsedAndExhaustion(t *testing.T) {
	s := newSim(t, Options{Networks: []SeedNetwork{{Network: "10.1.0.0/29"}}}) // .1-.6 usable
	s.mustRef("POST", "fixedaddress", map[string]any{"ipv4addr": "10.1.0.1", "mac": "aa:bb:cc:dd:ee:01"})
	s.mustRef("POST", "fixedaddress", map[string]any{"ipv4addr": "func:nextavailableip:10.1.0.0/29,default", "match_client": "RESERVED"})
	var ips []string
	for i := 0; i < 4; i++ {
		ref := s.mustRef("POST", "record:host", host(fmt.Sprintf("h%d.example.com", i), "func:nextavailableip:10.1.0.0/29,default", nil))
		ips = append(ips, ipsOf(t, s.do("GET", "record:host?_return_fields=ipv4addrs&name=h"+fmt.Sprint(i)+".example.com", nil))...)
		_ = ref
	}
	if strings.Join(ips, ",") != "10.1.0.3,10.1.0.4,10.1.0.5,10.1.0.6" {
		t.Fatalf("allocated %v", ips)
	}
	r := s.do("POST", "record:host", host("full.example.com", "func:nextavailableip:10.1.0.0/29,default", nil))
	code, text := r.wapiErr(t)
	if r.status != 400 || code != "Client.Ibap.Data" || text != "Cannot find 1 available IP address(es) in this network." {
		t.Fatalf("exhausted: %d %s", r.status, r.raw)
	}
	// A fixed address outside every network has no parent.
	r = s.do("POST", "fixedaddress", map[string]any{"ipv4addr": "192.168.1.1", "mac": "aa:bb:cc:dd:ee:02"})
	if code, text := r.wapiErr(t); code != "Client.Ibap.Data.Conflict" || !strings.Contains(text, "parent was not found") {
		t.Fatalf("orphan fixed address: %s", r.raw)
	}
}

func TestNetworkFunctionNextAvailableIPDoesNotReserve(t *testing.T) {
	s := newSim(t, Options{Networks: []SeedNetwork{{Network: "10.2.0.0/24"}}})
	var nets []struct {
		Ref string `json:"_ref"`
	}
	s.do("GET", "network?network=10.2.0.0/24", nil).json(t, &nets)
	if len(nets) != 1 {
		t.Fatalf("networks %v", nets)
	}
	s.mustRef("POST", "record:host", host("x.example.com", "10.2.0.1", nil))
	for i := 0; i < 2; i++ {
		r := s.do("POST", nets[0].Ref+"?_function=next_available_ip", map[string]any{"num": 3, "exclude": []string{"10.2.0.3"}})
		var res struct{ IPs []string }
		r.json(t, &res)
		if r.status != 200 || strings.Join(res.IPs, ",") != "10.2.0.2,10.2.0.4,10.2.0.5" {
			t.Fatalf("next_available_ip: %d %s", r.status, r.raw)
		}
	}
	r := s.do("POST", nets[0].Ref+"?_function=next_available_network", map[string]any{})
	if code, _ := r.wapiErr(t); code != "Client.Ibap.Proto" {
		t.Fatalf("unknown function: %s", r.raw)
	}
}

func TestReturnFields(t *testing.T) {
	s := newSim(t, Options{Networks: []SeedNetwork{{Network: "10.3.0.0/24"}},
		EADefinitions: []SeedEADefinition{{Name: "Owner"}}})
	h := host("rf.example.com", "10.3.0.10", map[string]string{"Owner": "alice"})
	h["comment"] = "hello"
	ref := s.mustRef("POST", "record:host", h)

	keys := func(r reply) string {
		t.Helper()
		if r.status != 200 {
			t.Fatalf("%d %s", r.status, r.raw)
		}
		var m map[string]any
		r.json(t, &m)
		var ks []string
		for k := range m {
			ks = append(ks, k)
		}
		sortStrings(ks)
		return strings.Join(ks, ",")
	}
	if got := keys(s.do("GET", ref, nil)); got != "_ref,ipv4addrs,name,view" {
		t.Fatalf("default fields %s", got)
	}
	if got := keys(s.do("GET", ref+"?_return_fields=name,comment", nil)); got != "_ref,comment,name" {
		t.Fatalf("_return_fields %s", got)
	}
	if got := keys(s.do("GET", ref+"?_return_fields%2B=comment,extattrs", nil)); got != "_ref,comment,extattrs,ipv4addrs,name,view" {
		t.Fatalf("_return_fields+ (encoded) %s", got)
	}
	if got := keys(s.do("GET", ref+"?_return_fields+=comment", nil)); got != "_ref,comment,ipv4addrs,name,view" {
		t.Fatalf("_return_fields+ (literal) %s", got)
	}
	r := s.do("GET", ref+"?_return_fields=nosuchfield", nil)
	if code, text := r.wapiErr(t); r.status != 400 || code != "Client.Ibap.Proto" || text != "Unknown argument/field: 'nosuchfield'" {
		t.Fatalf("unknown return field: %d %s", r.status, r.raw)
	}
	// POST with _return_fields answers the object instead of the reference.
	r = s.do("POST", "record:host?_return_fields=name,ipv4addrs", host("rf2.example.com", "func:nextavailableip:10.3.0.0/24", nil))
	var created struct {
		Ref  string `json:"_ref"`
		Name string
	}
	r.json(t, &created)
	if r.status != 201 || created.Name != "rf2.example.com" || created.Ref == "" {
		t.Fatalf("POST with _return_fields: %d %s", r.status, r.raw)
	}
	// _return_as_object wraps.
	var wrapped struct{ Result []map[string]any }
	s.do("GET", "record:host?name=rf.example.com&_return_as_object=1", nil).json(t, &wrapped)
	if len(wrapped.Result) != 1 {
		t.Fatalf("_return_as_object: %+v", wrapped)
	}
}

func sortStrings(s []string) {
	for i := 1; i < len(s); i++ {
		for j := i; j > 0 && s[j] < s[j-1]; j-- {
			s[j], s[j-1] = s[j-1], s[j]
		}
	}
}

func TestSearchModifiersAndEASearch(t *testing.T) {
	s := newSim(t, Options{Networks: []SeedNetwork{{Network: "10.4.0.0/24"}},
		EADefinitions: []SeedEADefinition{{Name: "Owner"}, {Name: "Tier", Type: "INTEGER"}}})
	s.mustRef("POST", "record:host", host("web1.example.com", "10.4.0.1", map[string]string{"Owner": "alice"}))
	s.mustRef("POST", "record:host", host("WEB2.example.com", "10.4.0.2", map[string]string{"Owner": "Bob"}))
	s.mustRef("POST", "record:host", host("db.example.com", "10.4.0.3", map[string]string{"Owner": "alice"}))

	names := func(path string) string {
		t.Helper()
		r := s.do("GET", path, nil)
		if r.status != 200 {
			t.Fatalf("GET %s: %d %s", path, r.status, r.raw)
		}
		var hs []struct{ Name string }
		r.json(t, &hs)
		var out []string
		for _, h := range hs {
			out = append(out, h.Name)
		}
		return strings.Join(out, ",")
	}
	cases := map[string]string{
		"record:host?name=web2.example.com":             "",
		"record:host?name:=web2.example.com":            "WEB2.example.com",
		"record:host?name~=^web":                        "web1.example.com",
		"record:host?name:~=^web":                       "web1.example.com,WEB2.example.com",
		"record:host?name~=example":                     "web1.example.com,WEB2.example.com,db.example.com",
		"record:host?*Owner=alice":                      "web1.example.com,db.example.com",
		"record:host?*Owner:=BOB":                       "WEB2.example.com",
		"record:host?*Owner=alice&name~=^db":            "db.example.com",
		"record:host?*Owner=alice&*Owner=Bob":           "web1.example.com,WEB2.example.com,db.example.com",
		"record:host?ipv4addr=10.4.0.2":                 "WEB2.example.com",
		"record:host?name!=db.example.com&*Owner=alice": "web1.example.com",
		"record:host?*Nobody=x":                         "",
	}
	for path, want := range cases {
		if got := names(path); got != want {
			t.Errorf("GET %s = %q, want %q", path, got, want)
		}
	}
	for path, want := range map[string]string{
		"record:host?nosuch=1":            "Unknown argument/field: 'nosuch'",
		"record:host?configure_for_dns=1": "Field is not searchable: configure_for_dns",
		"record:host?view~=def":           "Search modifier '~' is not allowed for field view",
		"record:host?_bogus=1":            "Unknown argument/field: '_bogus'",
	} {
		r := s.do("GET", path, nil)
		if code, text := r.wapiErr(t); r.status != 400 || code != "Client.Ibap.Proto" || text != want {
			t.Errorf("GET %s: %d %s, want %q", path, r.status, r.raw, want)
		}
	}
	// Undefined and mistyped extensible attributes are refused.
	r := s.do("POST", "record:host", host("x.example.com", "10.4.0.9", map[string]string{"Nope": "x"}))
	if _, text := r.wapiErr(t); text != "Unknown extensible attribute: Nope" {
		t.Fatalf("undefined EA: %s", r.raw)
	}
	r = s.do("POST", "record:host", host("x.example.com", "10.4.0.9", map[string]string{"Tier": "high"}))
	if code, _ := r.wapiErr(t); code != "Client.Ibap.Proto" {
		t.Fatalf("mistyped EA: %s", r.raw)
	}
	// Unknown object type.
	r = s.do("GET", "record:nosuch", nil)
	if code, text := r.wapiErr(t); r.status != 400 || code != "Client.Ibap.Proto" || text != "Unknown object type (record:nosuch)" {
		t.Fatalf("unknown object: %d %s", r.status, r.raw)
	}
}

func manyNetworks(n int) []SeedNetwork {
	out := make([]SeedNetwork, n)
	for i := range out {
		out[i] = SeedNetwork{Network: fmt.Sprintf("10.%d.%d.0/24", 100+i/256, i%256)}
	}
	return out
}

func TestMaxResultsAndPaging(t *testing.T) {
	s := newSim(t, Options{Networks: manyNetworks(1001)})

	r := s.do("GET", "network", nil)
	if code, text := r.wapiErr(t); r.status != 400 || code != "Client.Ibap.Proto" || text != "Result set too large (> 1000)" {
		t.Fatalf("default -1000: %d %s", r.status, r.raw)
	}
	var nets []map[string]any
	s.do("GET", "network?_max_results=10", nil).json(t, &nets)
	if len(nets) != 10 {
		t.Fatalf("_max_results=10 gave %d", len(nets))
	}
	if r := s.do("GET", "network?_max_results=-5", nil); r.status != 400 || !strings.Contains(string(r.raw), "Result set too large (> 5)") {
		t.Fatalf("_max_results=-5: %d %s", r.status, r.raw)
	}
	s.do("GET", "network?_max_results=2000", nil).json(t, &nets)
	if len(nets) != 1001 {
		t.Fatalf("_max_results=2000 gave %d", len(nets))
	}

	r = s.do("GET", "network?_paging=1&_max_results=300", nil)
	if code, text := r.wapiErr(t); r.status != 400 || code != "Client.Ibap.Proto" || text != "_return_as_object needs to be enabled for paging requests." {
		t.Fatalf("paging without _return_as_object: %d %s", r.status, r.raw)
	}

	seen := map[string]bool{}
	pages := 0
	path := "network?_paging=1&_return_as_object=1&_max_results=300&_return_fields=network"
	for {
		var page struct {
			Result     []struct{ Network string }
			NextPageID *string `json:"next_page_id"`
		}
		r := s.do("GET", path, nil)
		if r.status != 200 {
			t.Fatalf("page %d: %d %s", pages, r.status, r.raw)
		}
		r.json(t, &page)
		pages++
		for _, n := range page.Result {
			seen[n.Network] = true
		}
		if page.NextPageID == nil {
			break
		}
		path = "network?_page_id=" + url.QueryEscape(*page.NextPageID)
		if pages == 1 {
			defer func(stale string) {
				if r := s.do("GET", stale, nil); r.status != 400 {
					t.Errorf("reused page id: %d %s", r.status, r.raw)
				}
			}(path)
		}
	}
	if pages != 4 || len(seen) != 1001 {
		t.Fatalf("paging: %d pages, %d distinct networks", pages, len(seen))
	}
}

func TestUpdateRenameDeleteAndNotFound(t *testing.T) {
	s := newSim(t, Options{Networks: []SeedNetwork{{Network: "10.5.0.0/24"}},
		EADefinitions: []SeedEADefinition{{Name: "Owner"}, {Name: "Env"}}})
	ref := s.mustRef("POST", "record:host", host("u.example.com", "func:nextavailableip:10.5.0.0/24", map[string]string{"Owner": "alice"}))

	ref2 := s.mustRef("PUT", ref, map[string]any{
		"comment":   "updated",
		"extattrs+": map[string]any{"Env": map[string]any{"value": "prod"}},
		"aliases":   []string{"www.example.com"},
		"ipv4addrs": []any{map[string]any{"ipv4addr": "10.5.0.1", "mac": "AA-BB-CC-DD-EE-FF"}},
	})
	if ref2 != ref {
		t.Fatalf("PUT without rename changed the reference: %s -> %s", ref, ref2)
	}
	var got struct {
		Comment  string
		Aliases  []string
		ExtAttrs map[string]struct{ Value string } `json:"extattrs"`
		Addrs    []struct {
			IPv4Addr string `json:"ipv4addr"`
			MAC      string
		} `json:"ipv4addrs"`
	}
	s.do("GET", ref+"?_return_fields=comment,aliases,extattrs,ipv4addrs", nil).json(t, &got)
	if got.Comment != "updated" || len(got.Aliases) != 1 || got.ExtAttrs["Owner"].Value != "alice" ||
		got.ExtAttrs["Env"].Value != "prod" || len(got.Addrs) != 1 || got.Addrs[0].MAC != "aa:bb:cc:dd:ee:ff" {
		t.Fatalf("after PUT: %+v", got)
	}
	if r := s.do("PUT", ref, map[string]any{"zone": "x"}); r.status != 400 {
		t.Fatalf("read-only field: %d %s", r.status, r.raw)
	}
	if r := s.do("PUT", ref, map[string]any{"extattrs-": map[string]any{"Owner": map[string]any{}}}); r.status != 200 {
		t.Fatalf("extattrs-: %d %s", r.status, r.raw)
	}

	renamed := s.mustRef("PUT", ref, map[string]any{"name": "v.example.com"})
	if renamed == ref || !strings.HasSuffix(renamed, ":v.example.com/default") {
		t.Fatalf("rename: %s -> %s", ref, renamed)
	}
	r := s.do("GET", ref, nil)
	if code, text := r.wapiErr(t); r.status != 404 || code != "Client.Ibap.Data.NotFound" || text != "Reference "+ref+" not found" {
		t.Fatalf("old ref after rename: %d %s", r.status, r.raw)
	}
	if del := s.mustRef("DELETE", renamed, nil); del != renamed {
		t.Fatalf("DELETE answered %q", del)
	}
	for _, m := range []string{"GET", "PUT", "DELETE"} {
		if r := s.do(m, renamed, map[string]any{}); r.status != 404 {
			t.Fatalf("%s deleted ref: %d %s", m, r.status, r.raw)
		}
	}
}

func TestConcurrentCreatesNeverShareAnAddress(t *testing.T) {
	s := newSim(t, Options{StatePath: filepath.Join(t.TempDir(), "state.json"),
		Networks: []SeedNetwork{{Network: "10.6.0.0/25"}}}) // 126 usable
	const n = 130
	var wg sync.WaitGroup
	refs := make([]string, n)
	codes := make([]int, n)
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			obj := any("func:nextavailableip:10.6.0.0/25,default")
			if i%2 == 1 {
				obj = map[string]any{"_object_function": "next_available_ip", "_result_field": "ips", "_object": "network",
					"_object_parameters": map[string]any{"network": "10.6.0.0/25"}}
			}
			b, _ := json.Marshal(host(fmt.Sprintf("c%03d.example.com", i), obj, nil))
			req, _ := http.NewRequest("POST", s.ts.URL+"/wapi/v2.12/record:host", bytes.NewReader(b))
			req.SetBasicAuth(testUser, testPass)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Error(err)
				return
			}
			defer resp.Body.Close()
			codes[i] = resp.StatusCode
			_ = json.NewDecoder(resp.Body).Decode(&refs[i])
		}(i)
	}
	wg.Wait()
	created := 0
	for _, c := range codes {
		if c == http.StatusCreated {
			created++
		}
	}
	if created != 126 {
		t.Fatalf("created %d hosts, want 126 (codes %v)", created, codes)
	}
	seen := map[string]string{}
	for _, h := range s.srv.Hosts() {
		if other, dup := seen[h.IPv4Addrs[0]]; dup {
			t.Fatalf("%s and %s share %s", other, h.Name, h.IPv4Addrs[0])
		}
		seen[h.IPv4Addrs[0]] = h.Name
	}
}

func TestStateSurvivesRestart(t *testing.T) {
	path := filepath.Join(t.TempDir(), "grid", "state.json")
	opts := Options{StatePath: path, Networks: []SeedNetwork{{Network: "10.7.0.0/24", EAs: map[string]string{"Site": "lab"}}}}
	s := newSim(t, opts)
	ref := s.mustRef("POST", "record:host", host("p.example.com", "func:nextavailableip:10.7.0.0/24", map[string]string{"Site": "x"}))
	s.ts.Close()

	s2 := newSim(t, opts) // same file, same seeds: nothing duplicated
	var got []struct{ Name string }
	if r := s2.do("GET", ref, nil); r.status != 200 {
		t.Fatalf("reference after restart: %d %s", r.status, r.raw)
	}
	r := s2.do("GET", "record:host?*Site=x", nil)
	r.json(t, &got)
	if len(got) != 1 || got[0].Name != "p.example.com" {
		t.Fatalf("after restart: %s", r.raw)
	}
	var nets []any
	s2.do("GET", "network", nil).json(t, &nets)
	if len(nets) != 1 {
		t.Fatalf("seed network duplicated on restart: %d", len(nets))
	}
	s2.mustRef("POST", "record:host", host("q.example.com", "func:nextavailableip:10.7.0.0/24", nil))
	if ips := ipsOf(t, s2.do("GET", "record:host?name=q.example.com", nil)); ips[0] != "10.7.0.2" {
		t.Fatalf("allocation after restart gave %v", ips)
	}
}

func TestFailRateLatencyAndVersions(t *testing.T) {
	s := newSim(t, Options{FailRate: 1})
	if r := s.do("GET", "networkview", nil); r.status != 503 || !strings.Contains(string(r.raw), "Service Unavailable") {
		t.Fatalf("FailRate=1: %d %s", r.status, r.raw)
	}
	s.srv.SetFailRate(0.5)
	s.srv.randMu.Lock()
	s.srv.rand = mrand.New(mrand.NewPCG(1, 2))
	s.srv.randMu.Unlock()
	fails := 0
	for i := 0; i < 200; i++ {
		if s.do("GET", "networkview", nil).status == 503 {
			fails++
		}
	}
	if fails < 60 || fails > 140 {
		t.Fatalf("FailRate=0.5 failed %d of 200", fails)
	}
	s.srv.SetFailRate(0)
	if r := s.do("GET", "networkview", nil); r.status != 200 {
		t.Fatalf("FailRate=0: %d", r.status)
	}
	req, _ := http.NewRequest("GET", s.ts.URL+"/wapi/v2.13/networkview", nil)
	req.SetBasicAuth(testUser, testPass)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 400 {
		t.Fatalf("v2.13: %d", resp.StatusCode)
	}
	var schema struct {
		SupportedObjects []string `json:"supported_objects"`
	}
	s.do("GET", "?_schema", nil).json(t, &schema)
	if len(schema.SupportedObjects) != len(objectSpecs) {
		t.Fatalf("schema: %+v", schema)
	}
}

func TestNewRejectsBadOptions(t *testing.T) {
	if _, err := New(Options{}); err == nil {
		t.Fatal("no users accepted")
	}
	if _, err := New(Options{Users: map[string]string{"a": "b"}, FailRate: 2}); err == nil {
		t.Fatal("FailRate 2 accepted")
	}
	if _, err := New(Options{Users: map[string]string{"a": "b"}, Networks: []SeedNetwork{{Network: "10.0.0.1/24"}}}); err == nil {
		t.Fatal("non-canonical network accepted")
	}
}
