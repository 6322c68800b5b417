package calm

import (
	"strings"
	"testing"
)

func TestFilterGrammar(t *testing.T) {
	attrs := set("name", "state", "project_name")
	row := map[string]string{"name": "web;1,a(b)", "state": "running", "project_name": "sas-dev"}
	get := func(a string) string { return row[a] }
	cases := []struct {
		filter string
		want   bool
	}{
		{"", true},
		{"state==running", true},
		{"state!=running", false},
		{"state==RUNNING", false}, // case-sensitive, as the doc says
		{"name==web%3B1%2Ca%28b%29", true},
		{"name=cs=%3B1", true},
		{"name=cs=web2", false},
		// AND binds tighter than OR: (false;true),true is true...
		{"state==stopped;project_name==sas-dev,name==web%3B1%2Ca%28b%29", true},
		// ...and false,(true;false) is false.
		{"state==stopped,project_name==sas-dev;state==error", false},
		{"(state==stopped,state==running);project_name==sas-dev", true},
		{"(state==stopped,state==error);project_name==sas-dev", false},
		{"((state==running))", true},
		// calm-dsl's case-insensitive name query is an anchored pattern.
		{"(name==.*[w|W][e|E][b|B].*)", true},
		{"name==.*[x|X].*", false},
		{"name==web.*", true},
		{"name==eb.*", false}, // anchored
		// Escaped metacharacters are literal, not a pattern.
		{"name==web%2A", false},
		{"project_name==sas-dev", true},
		{"project_name==sas.dev", false}, // '.' alone is not a pattern trigger
	}
	for _, c := range cases {
		f, err := parseFilter(c.filter, attrs)
		if err != nil {
			t.Errorf("%q: %v", c.filter, err)
			continue
		}
		if got := f.match(get); got != c.want {
			t.Errorf("%q matched %v, want %v", c.filter, got, c.want)
		}
	}
}

func TestFilterErrors(t *testing.T) {
	attrs := set("name", "state")
	for filter, want := range map[string]string{
		"colour==red":         `unknown attribute "colour"`,
		"name":                "expected an operator",
		"name==":              "empty value",
		"name=gt=3":           "unsupported operator =gt=",
		"name==a;":            "expected a comparison",
		"(name==a":            "missing )",
		"name==a)":            `unexpected ')'`,
		"name==a(b)":          "unescaped (",
		"name==%zz":           "bad percent-escape",
		"name==[":             "not a valid pattern",
		";name==a":            "expected a selector",
		"name==a,,state==b":   "expected a selector",
		"name==a;state=cs=":   "empty value",
		"state==running,name": "expected an operator",
	} {
		_, err := parseFilter(filter, attrs)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: error %v, want it to say %q", filter, err, want)
		}
	}
}

func TestAllocateSkipsReservedAndUsedAddresses(t *testing.T) {
	st := &store{}
	got, err := st.allocate("10.0.0.0/29", 5, "", fakeNow)
	if err != nil {
		t.Fatal(err)
	}
	// .0 network, .1 gateway, .7 broadcast are never handed out.
	if strings.Join(got, " ") != "10.0.0.2 10.0.0.3 10.0.0.4 10.0.0.5 10.0.0.6" {
		t.Fatalf("got %v", got)
	}
	if _, err := st.allocate("10.0.0.0/29", 6, "", fakeNow); err == nil || err.status != 409 {
		t.Fatalf("6 addresses in a /29: %v", err)
	}
	st.Apps = append(st.Apps, &app{Name: "a", State: "running", VMs: []*vm{{Address: "10.0.0.2"}}})
	got, _ = st.allocate("10.0.0.0/29", 1, "", fakeNow)
	if got[0] != "10.0.0.3" {
		t.Fatalf("got %v", got)
	}
	for first, status := range map[string]int{"10.0.0.2": 409, "10.0.0.1": 422, "10.0.0.7": 422, "10.0.1.5": 422} {
		if _, err := st.allocate("10.0.0.0/29", 1, first, fakeNow); err == nil || err.status != status {
			t.Errorf("IP_ADDRESS %s: %v, want %d", first, err, status)
		}
	}
	got, _ = st.allocate("10.0.0.0/29", 2, "10.0.0.6", fakeNow)
	if strings.Join(got, " ") != "10.0.0.6 10.0.0.3" {
		t.Fatalf("got %v", got)
	}
	for _, bad := range []string{"10.0.0.1/24", "10.0.0.0/31", "fd00::/64", "nonsense"} {
		if _, err := st.allocate(bad, 1, "", fakeNow); err == nil {
			t.Errorf("%s accepted", bad)
		}
	}
}

var fakeNow = mustTime("2030-01-02T03:04:05Z")
