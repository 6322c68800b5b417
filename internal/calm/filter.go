package calm

import (
	"fmt"
	"strings"
)

// FIQL operators Calm's list calls understand.
const (
	OpEqual    = "=="
	OpNotEqual = "!="
	OpContains = "=cs="
)

// FIQL is a filter for Calm's list calls, built so values cannot change
// its meaning: Filter("name", "==", "a;b") is name==a%3Bb, not two
// comparisons. ";" is AND, "," is OR, and AND binds tighter, so And puts
// parentheses around an OR operand.
type FIQL struct {
	expr string
	or   bool // top level is an OR: needs parentheses inside an AND
}

// Filter is the comparison attr op value, with value percent-encoded as
// FIQL requires (everything but letters, digits and -._~).
func Filter(attr, op, value string) FIQL {
	return FIQL{expr: attr + op + EscapeFIQL(value)}
}

// And is f AND each of others (zero filters are skipped).
func (f FIQL) And(others ...FIQL) FIQL {
	parts := []string{}
	for _, g := range append([]FIQL{f}, others...) {
		switch {
		case g.expr == "":
		case g.or:
			parts = append(parts, "("+g.expr+")")
		default:
			parts = append(parts, g.expr)
		}
	}
	return FIQL{expr: strings.Join(parts, ";")}
}

// Or is f OR each of others (zero filters are skipped).
func (f FIQL) Or(others ...FIQL) FIQL {
	parts := []string{}
	for _, g := range append([]FIQL{f}, others...) {
		if g.expr != "" {
			parts = append(parts, g.expr)
		}
	}
	return FIQL{expr: strings.Join(parts, ","), or: len(parts) > 1}
}

// String is the filter as sent in a list body.
func (f FIQL) String() string { return f.expr }

// IsZero reports whether f filters nothing.
func (f FIQL) IsZero() bool { return f.expr == "" }

// EscapeFIQL percent-encodes every byte of s except ASCII letters, digits
// and -._~, so FIQL's ; , ( ) = ! and a regular expression's * [ ] | are
// taken literally.
func EscapeFIQL(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '.' || c == '_' || c == '~' {
			b.WriteByte(c)
			continue
		}
		fmt.Fprintf(&b, "%%%02X", c)
	}
	return b.String()
}
