package tfrun

import (
	"encoding/json"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"unicode/utf8"
)

// testSecrets are the secret values the redaction tests hold a run to:
// 1–3 characters, JSON's and HTML's special characters, a backslash,
// non-ASCII, and a long one with HCL template sequences.
var testSecrets = []string{"a", "ab", `x"y`, "<&>", `back\slash`, "pä§wörd", "Zk9${tmpl}%{x}-Q7<v>&w=\"q\"\\n-40-chars!!!"}

func TestTestSecretsCoverTheCases(t *testing.T) {
	if n := utf8.RuneCountInString(testSecrets[len(testSecrets)-1]); n != 40 {
		t.Fatalf("the long secret has %d characters, want 40", n)
	}
}

// secretForms is how each secret may be written in a log, a plan or a
// file: raw, JSON-escaped (encoding/json, HTML escaping on and off, ASCII
// only), quoted as Terraform prints strings (%q, %+q), and escaped twice
// (a jsonencode() printed by Terraform). It is written here independently
// of the redactor, so the tests do not check the redactor against itself.
func secretForms(s string) []string {
	goJSON := func(s string) string { b, _ := json.Marshal(s); return string(b[1 : len(b)-1]) }
	plainJSON := func(s string) string {
		var b strings.Builder
		enc := json.NewEncoder(&b)
		enc.SetEscapeHTML(false)
		_ = enc.Encode(s)
		out := strings.TrimSuffix(b.String(), "\n")
		return out[1 : len(out)-1]
	}
	quote := func(s string) string { q := strconv.Quote(s); return q[1 : len(q)-1] }
	quoteASCII := func(s string) string { q := strconv.QuoteToASCII(s); return q[1 : len(q)-1] }
	asciiJSON := func(s string) string { return quoteASCII(goJSON(s)) } // close enough: \u escapes of non-ASCII
	one := []func(string) string{goJSON, plainJSON, quote, quoteASCII}
	seen := map[string]bool{}
	var out []string
	add := func(f string) {
		if !seen[f] {
			seen[f] = true
			out = append(out, f)
		}
	}
	add(s)
	for _, e := range one {
		add(e(s))
		for _, e2 := range one {
			add(e2(e(s)))
		}
	}
	add(strings.ReplaceAll(asciiJSON(s), `\\u`, `\u`))
	return out
}

// leaks says which forms of secret text holds. A secret of fewer than 4
// characters counts only where it stands as a value: not inside a word.
func leaks(text, secret string) []string {
	var found []string
	short := utf8.RuneCountInString(secret) < shortSecret
	for _, f := range secretForms(secret) {
		if !short {
			if strings.Contains(text, f) {
				found = append(found, f)
			}
			continue
		}
		re := regexp.QuoteMeta(f)
		if r, _ := utf8.DecodeRuneInString(secret); isWordRune(r) {
			re = `(?:^|[^\p{L}\p{N}_])` + re
		}
		if r, _ := utf8.DecodeLastRuneInString(secret); isWordRune(r) {
			re += `(?:$|[^\p{L}\p{N}_])`
		}
		if compiled(re).MatchString(text) {
			found = append(found, f)
		}
	}
	return found
}

var regexps sync.Map

func compiled(re string) *regexp.Regexp {
	if c, ok := regexps.Load(re); ok {
		return c.(*regexp.Regexp)
	}
	c := regexp.MustCompile(re)
	regexps.Store(re, c)
	return c
}

// Every form of every secret, in the contexts Terraform prints values in,
// is redacted — also when the stream splits it across writes anywhere.
func TestRedactorRemovesEveryForm(t *testing.T) {
	r := newRedactor(testSecrets)
	for _, s := range testSecrets {
		for _, f := range secretForms(s) {
			for _, ctx := range []string{`  + input = "%s"`, `{"value":"%s","x":1}`, "%s", `Error: bad value %s.`, "echo = [\n  \"%s\",\n]", `"[\"%s\"]"`} {
				text := fmt.Sprintf(ctx, f)
				if got := leaks(r.clean(text), s); len(got) > 0 {
					t.Errorf("secret %q in %q: %q left", s, text, got)
				}
				// The same through a stream, split at every byte.
				for cut := 0; cut <= len(text); cut++ {
					var log strings.Builder
					run := &Run{redact: r, log: &log}
					w := &redactingStream{run: run}
					_, _ = w.Write([]byte(text[:cut]))
					_, _ = w.Write([]byte(text[cut:]))
					_ = w.flush()
					if got := leaks(log.String(), s); len(got) > 0 {
						t.Fatalf("secret %q in %q split at %d: %q left in %q", s, text, cut, got, log.String())
					}
				}
			}
		}
	}
}

// A short secret is redacted where it is a value, not inside words; text
// without secrets passes unchanged.
func TestRedactorShortSecretsOnlyAsValues(t *testing.T) {
	r := newRedactor([]string{"a", "ab", "é"})
	for in, want := range map[string]string{
		"Terraform will perform the following actions": "Terraform will perform the following actions",
		`  + input = "a"`:     `  + input = "(redacted)"`,
		`value = a`:           `value = (redacted)`,
		`list = [a, ab, abc]`: `list = [(redacted), (redacted), abc]`,
		`{"k":"\na"}`:         `{"k":"\n(redacted)"}`,
		`"\u0026ab"`:          `"\u0026(redacted)"`,
		`"\u00e9" and café`:   `"(redacted)" and café`,
		"Plan: 1 to add, 0 to change, 0 to destroy.": "Plan: 1 to add, 0 to change, 0 to destroy.",
	} {
		if got := r.clean(in); got != want {
			t.Errorf("clean(%q) = %q, want %q", in, got, want)
		}
	}
}

// A secret given decomposed (NFD) is found composed (Terraform normalises
// to NFC), and a multi-line secret line by line (Terraform's heredocs).
func TestRedactorNormalisationAndLines(t *testing.T) {
	r := newRedactor([]string{"pa\u0308ssword", "first-line-of-key\n  second-line-of-key"})
	for _, in := range []string{"pässword", `"p\u00e4ssword"`, "<<-EOT\n    first-line-of-key\n    second-line-of-key\nEOT"} {
		if got := r.clean(in); strings.Contains(got, "ssword") || strings.Contains(got, "line-of-key") {
			t.Errorf("clean(%q) = %q", in, got)
		}
	}
	if got := newRedactor([]string{" ", ""}).clean("a b"); got != "a b" {
		t.Errorf("a blank secret redacted %q", got)
	}
}
