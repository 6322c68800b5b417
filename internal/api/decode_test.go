package api

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

func fieldErrs(t *testing.T, err error) map[string]string {
	t.Helper()
	var ie *InvalidRequestError
	if !errors.As(err, &ie) {
		t.Fatalf("error %v (%T) is not an InvalidRequestError", err, err)
	}
	m := map[string]string{}
	for _, f := range ie.Fields {
		m[f.Path] = f.Message
	}
	return m
}

func TestDecodeKindAcceptsAGoodRequest(t *testing.T) {
	v, err := DecodeKind(KindIPReservation, ActionCreate, []byte(`{"network":"10.10.0.0/24","hostname":"Web-01","dns_zone":"sbx.example.internal.","mac":"00:50:56:aa:bb:cc","aliases":["www.sbx.example.internal"],"comment":"demo"}`), "")
	if err != nil {
		t.Fatal(err)
	}
	r := v.(*IPReservationRequest)
	if r.Hostname != "web-01" || r.DNSZone != "sbx.example.internal" {
		t.Errorf("not normalised: %+v", r)
	}
}

// The "AI hallucination" threat: a request that guesses at fields or
// values is refused, and the error names each wrong field.
func TestDecodeKindRefusesHallucinatedRequests(t *testing.T) {
	cases := []struct {
		name, kind, body string
		want             map[string]string // path -> message fragment
	}{
		{"unknown top-level field", KindIPReservation, `{"network":"10.10.0.0/24","hostname":"a","dns_zone":"x.y","privileged":true}`,
			map[string]string{"/privileged": "unknown field; allowed: aliases, change_ticket, comment"}},
		{"unknown nested field", KindCalmApp, `{"name":"a","project":"p","blueprint":"b","network":"n","size":{"vcpus":1,"memory_gib":1,"disk_gib":1,"gpus":4}}`,
			map[string]string{"/size/gpus": "unknown field"}},
		{"duplicate key", KindIPReservation, `{"network":"10.10.0.0/24","network":"10.30.0.0/24","hostname":"a","dns_zone":"x.y"}`,
			map[string]string{"/network": "appears more than once"}},
		{"bad CIDR", KindIPReservation, `{"network":"10.10.0.300/24","hostname":"a","dns_zone":"x.y"}`,
			map[string]string{"/network": "not a CIDR"}},
		{"host bits set", KindIPReservation, `{"network":"10.10.0.5/24","hostname":"a","dns_zone":"x.y"}`,
			map[string]string{"/network": "did you mean 10.10.0.0/24"}},
		{"bad hostname and zone", KindIPReservation, `{"network":"n","hostname":"-bad_","dns_zone":"nodots"}`,
			map[string]string{"/hostname": "DNS label", "/dns_zone": "not a fully qualified DNS name"}},
		{"wrong type", KindCalmApp, `{"name":"a","project":"p","blueprint":"b","network":"n","size":{"vcpus":"lots","memory_gib":1,"disk_gib":1}}`,
			map[string]string{"/size/vcpus": "must be an integer"}},
		{"size out of range", KindCalmApp, `{"name":"a","project":"p","blueprint":"b","network":"n","size":{"vcpus":0,"memory_gib":1,"disk_gib":1}}`,
			map[string]string{"/size/vcpus": "outside 1–64"}},
		{"missing required", KindModuleRun, `{}`, map[string]string{"/module": "required"}},
		{"bad ticket", KindModuleRun, `{"module":"m","change_ticket":"please"}`, map[string]string{"/change_ticket": "change ticket id"}},
		{"trailing data", KindModuleRun, `{"module":"m"} {"module":"n"}`, map[string]string{"": "more than one JSON value"}},
		{"not an object", KindModuleRun, `["m"]`, map[string]string{"": "must be a JSON object"}},
		{"empty", KindModuleRun, ``, map[string]string{"": "empty"}},
		{"too deep", KindModuleRun, `{"module":"m","variables":{"a":` + strings.Repeat(`{"a":`, 10) + `1` + strings.Repeat(`}`, 11) + `}`,
			map[string]string{"/variables/a/a/a/a/a/a/a/a": "nested deeper"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := DecodeKind(tc.kind, ActionCreate, []byte(tc.body), "")
			got := fieldErrs(t, err)
			for path, frag := range tc.want {
				if !strings.Contains(got[path], frag) {
					t.Errorf("field %q: got %q, want it to mention %q (all: %v)", path, got[path], frag, got)
				}
			}
		})
	}
}

func TestDecodeKindPrefixesPaths(t *testing.T) {
	_, err := DecodeKind(KindIPReservation, ActionCreate, []byte(`{"network":"bad cidr/1","hostname":"a","dns_zone":"x.y"}`), "/request")
	if _, ok := fieldErrs(t, err)["/request/network"]; !ok {
		t.Fatalf("paths not prefixed: %v", err)
	}
}

func TestUpdateNeedsAField(t *testing.T) {
	_, err := DecodeKind(KindIPReservation, ActionUpdate, []byte(`{}`), "")
	if _, ok := fieldErrs(t, err)[""]; !ok {
		t.Fatal(err)
	}
	if _, err := DecodeKind(KindIPReservation, ActionUpdate, []byte(`{"network":"10.0.0.0/8"}`), ""); err == nil {
		t.Fatal("an update may not change the network")
	}
}

// fuzzDecode: whatever the bytes, decoding either succeeds or fails with an
// InvalidRequestError (a 4xx) — never a panic, never another error type.
func fuzzDecode(f *testing.F, kind, action string, seeds ...string) {
	for _, s := range seeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		_, err := DecodeKind(kind, action, body, "")
		if err == nil {
			return
		}
		var ie *InvalidRequestError
		if !errors.As(err, &ie) || len(ie.Fields) == 0 {
			t.Fatalf("decode error %T %v is not a field-naming InvalidRequestError", err, err)
		}
	})
}

func FuzzDecodeIPReservation(f *testing.F) {
	fuzzDecode(f, KindIPReservation, ActionCreate,
		`{"network":"10.10.0.0/24","hostname":"web-01","dns_zone":"sbx.example.internal"}`,
		`{"network":"sbx-app","hostname":"a","dns_zone":"x.y","aliases":["a.x.y"],"mac":"00:50:56:aa:bb:cc"}`,
		`{"network":"10.10.0.0/24","network":1}`, `{"a":{"b":[1,2,{"c":null}]}}`, `[]`, `"x"`, `{`, `{"hostname":"\u0000"}`)
}

func FuzzDecodeIPReservationUpdate(f *testing.F) {
	fuzzDecode(f, KindIPReservation, ActionUpdate, `{"comment":"x"}`, `{"mac":null}`, `{"aliases":[]}`, `{"aliases":[1]}`)
}

func FuzzDecodeCalmApp(f *testing.F) {
	fuzzDecode(f, KindCalmApp, ActionCreate,
		`{"name":"app","project":"sas-sbx","blueprint":"sbx-linux","network":"sbx-app","size":{"vcpus":2,"memory_gib":4,"disk_gib":40},"variables":{"A":"b"}}`,
		`{"size":{"vcpus":1e400}}`, `{"size":[]}`, `{"variables":{"":""}}`)
}

func FuzzDecodeModuleRun(f *testing.F) {
	fuzzDecode(f, KindModuleRun, ActionCreate,
		`{"module":"s3-bucket","version":"1.2.3","variables":{"name":"x","tags":{"a":"b"}}}`,
		`{"module":"m","variables":{"x":[[[[[[[[[1]]]]]]]]]}}`, `{"module":"m","version":"v1.0.0-rc.1"}`)
}

func FuzzDecodeDecision(f *testing.F) {
	for _, s := range []string{
		`{"kind":"ip_reservation","action":"create","environment":"sbx","request":{"network":"10.10.0.0/24","hostname":"a","dns_zone":"x.y"}}`,
		`{"kind":"calm_app","action":"delete"}`, `{"kind":"nope","action":"create","request":{}}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		var d DecisionRequest
		err := DecodeStrict(body, &d)
		if err == nil {
			err = d.Validate()
		}
		if err == nil && d.Request != nil {
			raw, _ := json.Marshal(d.Request)
			_, err = DecodeKind(d.Kind, d.Action, raw, "/request")
		}
		var ie *InvalidRequestError
		if err != nil && (!errors.As(err, &ie) || len(ie.Fields) == 0) {
			t.Fatalf("decision decode error %T %v is not a field-naming InvalidRequestError", err, err)
		}
	})
}
