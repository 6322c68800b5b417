package provider

import "testing"

func TestAttributePath(t *testing.T) {
	for pointer, want := range map[string]string{
		"/network":        "network",
		"/aliases/1":      "aliases[1]",
		"/size/vcpus":     "size.vcpus",
		"/variables/a~1b": "variables.a/b",
	} {
		p, ok := attributePath(pointer)
		if !ok || p.String() != want {
			t.Errorf("attributePath(%q) = %q, %v; want %q", pointer, p.String(), ok, want)
		}
	}
	if _, ok := attributePath(""); ok {
		t.Error("an empty pointer has no attribute")
	}
}
