package calmapp

import (
	"fmt"
	"strings"
)

// Tags say who and what made an app. Calm v3 apps carry no labels a
// launch can set, so they live in the app's description, one key=value
// per line after a marker line, where Calm's UI shows them to operators.
type Tags struct {
	Owner, RequestID, Bundle, Environment string
	Managed                               bool // the marker is present
}

const tagMarker = "Managed by sas: do not edit the lines below."

// Description renders t as an app description.
func (t Tags) Description() string {
	return fmt.Sprintf("%s\nSAS-Owner=%s\nSAS-Request-ID=%s\nSAS-Bundle=%s\nSAS-Environment=%s",
		tagMarker, t.Owner, t.RequestID, t.Bundle, t.Environment)
}

// ParseTags reads the tags back from an app's description.
func ParseTags(description string) Tags {
	var t Tags
	marked := false
	for _, line := range strings.Split(description, "\n") {
		line = strings.TrimSpace(line)
		if line == tagMarker {
			marked = true
			continue
		}
		if !marked {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			continue
		}
		switch k {
		case "SAS-Owner":
			t.Owner = v
		case "SAS-Request-ID":
			t.RequestID = v
		case "SAS-Bundle":
			t.Bundle = v
		case "SAS-Environment":
			t.Environment = v
		}
	}
	t.Managed = marked && t.RequestID != ""
	return t
}
