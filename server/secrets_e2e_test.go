package server_test

import (
	"archive/zip"
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode"
	"unicode/utf8"

	vaultapi "github.com/hashicorp/vault/api"

	"github.com/sas-platform/terraform-provider-sas/internal/api"
	"github.com/sas-platform/terraform-provider-sas/internal/audit"
	"github.com/sas-platform/terraform-provider-sas/internal/devvault"
	"github.com/sas-platform/terraform-provider-sas/internal/executor/modulerun"
	simcalm "github.com/sas-platform/terraform-provider-sas/internal/sim/calm"
	"github.com/sas-platform/terraform-provider-sas/internal/store"
	"github.com/sas-platform/terraform-provider-sas/internal/testenv"
	"github.com/sas-platform/terraform-provider-sas/internal/vaultsetup"
	"github.com/sas-platform/terraform-provider-sas/server"
)

// The promise of docs/gateway/security.md § Secrets, end to end on the real
// Vault, the real Terraform and the Calm simulator: a secret a caller sends
// (a module run's secret_inputs, a Calm app's secret_variables) reaches the
// downstream system and nothing else — not an HTTP answer, an operation's
// log, a row of any table, the audit trail, a file under the gateway's data
// or module work directory, the gateway's trace-level logs, Vault's audit
// log — in any encoding, and no wrapping token made for it outlives its
// operation, whichever way the operation ends: succeeded, failed, cancelled
// while queued, or raced by eight identical creates under one key.
//
// Terraform's own files are the exception the promise allows: a module's
// state may hold what the module keeps, and Terraform's saved plan holds
// the variables' values while the run is live. Found there, a secret is
// reported (t.Logf "REPORT:"), and the file must be 0600 — and, for the
// plan, gone once the run ended.

// leakSecret is a secret value the tests send.
type leakSecret struct {
	label, value string
}

var leakSecrets = []leakSecret{
	{"double quote", `x"y`},
	{"markup", `<&>`},
	{"backslash", `back\slash`},
	{"non-ASCII", `pä§wörd`},
	// Short secrets occur inside ordinary words by chance ("Q" in "SQL"):
	// they are looked for where they stand as a value of their own.
	{"one character", "Q"},
	{"two characters", "Qz"},
	{"three characters", "Qz7"},
}

// asValueOnly: the secret is short and made of word characters, so only an
// occurrence delimited as a value (quoted, assigned, a JSON string) says
// anything about it. Other secrets are looked for as raw substrings in
// every encoding: `x"y` and `<&>` are short too, but their punctuation
// does not occur by chance.
func (s leakSecret) asValueOnly() bool {
	if utf8.RuneCountInString(s.value) >= 4 {
		return false
	}
	for _, r := range s.value {
		if !unicode.IsLetter(r) && !unicode.IsDigit(r) && r != '_' {
			return false
		}
	}
	return true
}

// leakForms are the encodings of v a leak could take: raw; JSON-escaped by
// encoding/json with and without HTML escaping; Go-quoted (strconv.Quote,
// QuoteToASCII); URL-escaped; base64 (standard and URL alphabets), whole
// and, for a value inside a longer base64 stream, the part that is the same
// at each of the three alignments.
func leakForms(v string) []string {
	var out []string
	add := func(s string) {
		if s != "" && !slices.Contains(out, s) {
			out = append(out, s)
		}
	}
	escapes := func(v string) []string {
		var out []string
		for _, html := range []bool{true, false} {
			var b bytes.Buffer
			enc := json.NewEncoder(&b)
			enc.SetEscapeHTML(html)
			_ = enc.Encode(v)
			out = append(out, unquoted(strings.TrimSpace(b.String())))
		}
		return append(out, unquoted(strconv.Quote(v)), unquoted(strconv.QuoteToASCII(v)))
	}
	add(v)
	for _, once := range escapes(v) {
		add(once)
		for _, twice := range escapes(once) { // JSON inside JSON, a quoted JSON text
			add(twice)
		}
	}
	add(url.QueryEscape(v))
	add(url.PathEscape(v))
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.URLEncoding} {
		add(enc.EncodeToString([]byte(v)))
		for k := range 3 {
			if core := base64Core(enc, v, k); len(core) >= 4 {
				add(core)
			}
		}
	}
	return out
}

func unquoted(q string) string { return strings.TrimSuffix(strings.TrimPrefix(q, `"`), `"`) }

// base64Core is what any base64 stream holding v after k (mod 3) other
// bytes shows of it whatever those bytes are: the groups made of v's bytes
// only.
func base64Core(enc *base64.Encoding, v string, k int) string {
	s := enc.WithPadding(base64.NoPadding).EncodeToString(append(make([]byte, k), v...))
	first, last := (k+2)/3, (k+len(v))/3-1
	if last < first {
		return ""
	}
	return s[4*first : 4*(last+1)]
}

// leakMatcher finds one secret in a text.
type leakMatcher struct {
	secret    leakSecret
	forms     []string
	valueOnly bool // only where a form stands as a value (asValueOnly)
}

func newLeakMatcher(s leakSecret) leakMatcher {
	if !s.asValueOnly() {
		return leakMatcher{secret: s, forms: leakForms(s.value)}
	}
	// A word-character value has the same JSON and Go-quoted forms as its
	// raw one; its base64 is looked for as a value too.
	return leakMatcher{secret: s, valueOnly: true, forms: []string{s.value, base64.StdEncoding.EncodeToString([]byte(s.value))}}
}

// find returns the form in which text holds the secret (for a short one,
// the form with what delimits it), or "".
func (m leakMatcher) find(text string) string {
	for _, f := range m.forms {
		if !m.valueOnly {
			if strings.Contains(text, f) {
				return f
			}
			continue
		}
		if text == f {
			return f
		}
		for from := 0; ; {
			i := strings.Index(text[from:], f)
			if i < 0 {
				break
			}
			i += from
			if j := i + len(f); standsAsValue(text[:i], text[j:]) {
				return text[max(0, i-12):min(len(text), j+12)]
			}
			from = i + 1
		}
	}
	return ""
}

// standsAsValue: what precedes and follows an occurrence delimit it as a
// value. Before: a quote, an escaped quote, '=', or ": " / "= " (key=value,
// key: value). After: a quote, an escaped quote or newline, white space, a
// separator or a closing bracket. A bare line of its own does not count:
// binary files such as SQLite pages hold "\nQ\n" by chance.
func standsAsValue(before, after string) bool {
	pre := false
	for _, p := range []string{`"`, `'`, `=`, `\"`, `: `, `= `} {
		pre = pre || strings.HasSuffix(before, p)
	}
	if !pre || after == "" {
		return false
	}
	if strings.HasPrefix(after, `\"`) || strings.HasPrefix(after, `\n`) {
		return true
	}
	return strings.ContainsRune("\"' \t\r\n,;&})]", rune(after[0]))
}

// The scanner the tests below rely on finds each secret in every encoding
// and every place it could stand, and the short ones only as values: a
// scanner that found nothing would make every absence below vacuous.
func TestLeakScannerFindsEveryEncoding(t *testing.T) {
	for _, s := range leakSecrets {
		m := newLeakMatcher(s)
		embed := func(how, text string) {
			if m.find(text) == "" {
				t.Errorf("%s %q: not found %s in %q", s.label, s.value, how, text)
			}
		}
		j, _ := json.Marshal(map[string]string{"initial_secret": s.value})
		embed("in JSON (HTML-escaped)", string(j))
		var b bytes.Buffer
		enc := json.NewEncoder(&b)
		enc.SetEscapeHTML(false)
		_ = enc.Encode(map[string]any{"outer": string(j)})
		embed("in JSON inside JSON", b.String())
		embed("Go-quoted", "value="+strconv.Quote(s.value)+" next")
		embed("Go-quoted ASCII", "value="+strconv.QuoteToASCII(s.value)+"\n")
		embed("hclog key=value", "2025-01-01T00:00:00Z [TRACE] gateway: step: secret="+s.value+"\n")
		embed("URL query", "https://calm.example/api?password="+url.QueryEscape(s.value)+"&x=1")
		embed("base64 JSON string", `{"b64":"`+base64.StdEncoding.EncodeToString([]byte(s.value))+`"}`)
		if !s.asValueOnly() {
			embed("raw in a sentence", "the password is "+s.value+"!")
			for k := range 3 {
				// A value inside a longer base64 stream shows its own
				// characters only in the groups its bytes fill: a 3-byte
				// value at another alignment than 0 shows fewer than 4,
				// which say nothing (chance matches them).
				if len(base64Core(base64.StdEncoding, s.value, k)) < 4 {
					continue
				}
				embed(fmt.Sprintf("inside base64 at alignment %d", k),
					base64.StdEncoding.EncodeToString([]byte(strings.Repeat("#", 6+k)+s.value+"tail of the stream")))
			}
			continue
		}
		if f := m.find("\x00\x9f\n" + s.value + "\n\x00"); f != "" {
			t.Errorf("%s %q: found %q on a line of its own in binary", s.label, s.value, f)
		}
		for _, word := range []string{"SQL" + s.value + "ite", "a" + s.value, s.value + "b", "x_" + s.value} {
			if f := m.find(`"` + word + `" is a word, not the secret`); f != "" {
				t.Errorf("%s %q: found %q inside the word %q", s.label, s.value, f, word)
			}
		}
	}
}

// leakRun is one create carrying one secret, and what became of it.
type leakRun struct {
	secret leakSecret
	tok    string
	// marker is a non-secret value of the request (its name): the sinks
	// that keep the request show it, so the scan is seen to read them.
	marker string
	op     api.Operation
	// requestIDs are the requests that carried the secret (8 in a race).
	requestIDs []string
}

// leakRig is a gateway under watch: every answer it gave the test, its
// trace-level logs, its data and module work directories, the wrapping
// tokens its operations held, and Vault as it was before it started.
type leakRig struct {
	t                *testing.T
	gw               *testenv.Gateway
	dataDir, workDir string
	logs             *syncBuffer
	collection       string // the resources' path: module-runs or calm-apps
	tfSpy            string // the Terraform spy's record ("" when the rig runs no modules)
	vaultAuditFrom   int64  // the size of Vault's audit log when the rig started
	wrapsBefore      map[string]bool

	mu       sync.Mutex
	answers  map[string]string // every distinct answer → the request it answered
	handOffs map[string]string // wrapping-token accessors the operations table held → operation id
	// liveFiles are the work directory's files seen holding a secret while
	// runs were live; liveStamps the size and time of each file last scanned.
	liveFiles  map[string]*liveFile
	liveStamps map[string]string
}

func startLeakRig(t *testing.T, collection string, configure ...func(*server.Config)) *leakRig {
	t.Helper()
	r := &leakRig{t: t, logs: &syncBuffer{}, collection: collection, answers: map[string]string{}, handOffs: map[string]string{},
		liveFiles: map[string]*liveFile{}, liveStamps: map[string]string{}}
	r.wrapsBefore = map[string]bool{}
	for acc := range liveWrappingTokens(t) {
		r.wrapsBefore[acc] = true
	}
	if fi, err := os.Stat(env.VaultAuditLog()); err == nil {
		r.vaultAuditFrom = fi.Size()
	}
	dirs := func(c *server.Config) { r.dataDir, r.workDir = c.DataDir, c.ModuleWorkDir }
	r.gw = env.StartGateway(t, append(append([]func(*server.Config){traceLogs(r.logs)}, configure...), dirs)...)
	if r.gw.Gateway.Store().Driver != store.DriverSQLite || r.dataDir == "" || r.workDir == "" {
		t.Fatalf("the rig needs SQLite and both directories: driver %s, data %q, work %q", r.gw.Gateway.Store().Driver, r.dataDir, r.workDir)
	}
	// The operations table holds each wrapping token's accessor while the
	// token waits: remember every one seen, to ask Vault about it at the end.
	ctx, stop := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	every := func(d time.Duration, f func(context.Context)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				f(ctx)
				select {
				case <-ctx.Done():
				case <-time.After(d):
				}
			}
		}()
	}
	every(5*time.Millisecond, r.noteHandOffs)
	// What Terraform writes while a run is live (its saved plan holds the
	// variables' values) is looked at too: it must be private and gone by
	// the end.
	every(50*time.Millisecond, r.noteLiveFiles)
	t.Cleanup(func() { stop(); wg.Wait() }) // before the gateway closes its store
	return r
}

// liveFile is a file in the module work directory, seen holding a secret
// while a run was live.
type liveFile struct {
	mode    os.FileMode
	secrets map[string]string // secret value → where and as what
}

// noteLiveFiles scans the module work directory's files that changed since
// last time (and the entries of the zip files among them: saved plans) for
// the secrets. Providers installed under .terraform are not looked at.
func (r *leakRig) noteLiveFiles(ctx context.Context) {
	_ = filepath.WalkDir(r.workDir, func(p string, d os.DirEntry, err error) error {
		if err != nil || ctx.Err() != nil {
			return nil
		}
		if d.IsDir() && d.Name() == "providers" && filepath.Base(filepath.Dir(p)) == ".terraform" {
			return filepath.SkipDir
		}
		if !d.Type().IsRegular() {
			return nil
		}
		fi, err := d.Info()
		if err != nil {
			return nil
		}
		stamp := fmt.Sprintf("%d %d", fi.Size(), fi.ModTime().UnixNano())
		r.mu.Lock()
		seen := r.liveStamps[p] == stamp
		r.liveStamps[p] = stamp
		r.mu.Unlock()
		if seen {
			return nil
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return nil
		}
		texts := map[string]string{p: string(b)}
		if zr, err := zip.NewReader(bytes.NewReader(b), int64(len(b))); err == nil {
			for _, f := range zr.File {
				if rc, err := f.Open(); err == nil {
					e, _ := io.ReadAll(rc)
					rc.Close()
					texts[p+" (zip entry "+f.Name+")"] = string(e)
				}
			}
		}
		for where, text := range texts {
			for _, s := range leakSecrets {
				found := newLeakMatcher(s).find(text)
				if msgpack := string([]byte{0xa0 | byte(len(s.value))}) + s.value; found == "" && s.asValueOnly() && strings.Contains(text, msgpack) {
					found = msgpack // a saved plan keeps values as msgpack strings: a length byte, then the bytes
				}
				if found != "" {
					r.mu.Lock()
					lf := r.liveFiles[p]
					if lf == nil {
						lf = &liveFile{mode: fi.Mode().Perm(), secrets: map[string]string{}}
						r.liveFiles[p] = lf
					}
					lf.secrets[s.value] = fmt.Sprintf("%s as %q", where, found)
					r.mu.Unlock()
				}
			}
		}
		return nil
	})
}

func (r *leakRig) noteHandOffs(ctx context.Context) {
	rows, err := r.gw.Gateway.Store().DB.QueryContext(ctx, `SELECT id, secrets_accessor FROM operations WHERE secrets_accessor <> ''`)
	if err != nil {
		return
	}
	defer rows.Close()
	for rows.Next() {
		var id, acc string
		if rows.Scan(&id, &acc) == nil {
			r.mu.Lock()
			r.handOffs[acc] = id
			r.mu.Unlock()
		}
	}
}

// do sends c and keeps the answer (status, headers, body) for the scan.
func (r *leakRig) do(c call) answer {
	r.t.Helper()
	a := do(r.t, r.gw, c)
	var text strings.Builder
	fmt.Fprintf(&text, "HTTP %d\n", a.status)
	for k, vs := range a.header {
		fmt.Fprintf(&text, "%s: %s\n", k, strings.Join(vs, ", "))
	}
	text.WriteString("\n")
	text.Write(a.body)
	r.mu.Lock()
	r.answers[text.String()] = c.method + " " + c.path
	r.mu.Unlock()
	return a
}

// wait polls the operation until it ends (module runs queue behind each other: up to 5 minutes).
func (r *leakRig) wait(tok, id string) api.Operation {
	r.t.Helper()
	deadline := time.Now().Add(5 * time.Minute)
	for time.Now().Before(deadline) {
		a := r.do(call{method: "GET", path: "/v1/operations/" + id, token: tok})
		var op api.Operation
		if err := json.Unmarshal(a.body, &op); err != nil || a.status != 200 {
			r.t.Fatalf("operation %s: %d %s", id, a.status, a.body)
		}
		switch op.State {
		case api.OperationSucceeded, api.OperationFailed, api.OperationCancelled:
			return op
		}
		time.Sleep(200 * time.Millisecond)
	}
	r.t.Fatalf("operation %s not finished after 5 minutes", id)
	return api.Operation{}
}

// create sends one create carrying run's secret and keeps its request id.
func (r *leakRig) create(run *leakRun, body, key string) answer {
	r.t.Helper()
	a := r.do(call{method: "POST", path: "/v1/" + r.collection, token: run.tok, bundle: sbx, env: "sbx", idempotencyKey: key, body: body})
	r.mu.Lock()
	run.requestIDs = append(run.requestIDs, a.header.Get(api.HeaderRequestID))
	r.mu.Unlock()
	return a
}

// jsonBody encodes v without HTML escaping: the request carries `<&>` as is.
func jsonBody(v any) string {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		panic(err)
	}
	return b.String()
}

func rotationBody(name, secret string) string {
	return jsonBody(map[string]any{"name": name, "module": "platform/secret-rotation", "version": "1.0.0",
		"inputs": map[string]any{"service": name, "rotation_days": 14}, "secret_inputs": map[string]string{"initial_secret": secret}})
}

func calmSecretBody(name, secret string) string {
	return jsonBody(map[string]any{"name": name, "project": "sas-sbx", "blueprint": "linux-vm-sandbox", "network": "sbx-app",
		"size": map[string]int{"vcpus": 1, "memory_gib": 2, "disk_gib": 20}, "secret_variables": map[string]string{"ADMIN_PASSWORD": secret}})
}

// newRuns gives each secret its own caller (a caller may have only 4
// unfinished module runs) and a name that says which ending it is for.
func newRuns(t *testing.T, prefix string) []*leakRun {
	runs := make([]*leakRun, len(leakSecrets))
	for i, s := range leakSecrets {
		name := fmt.Sprintf("%s-%d", prefix, i)
		runs[i] = &leakRun{secret: s, marker: name, tok: env.Caller(t, vaultsetup.CallerSpec{Entity: "leak-" + name, Bundles: []string{sbx}})}
	}
	return runs
}

// terraformSpy is a Terraform that notes, for each command, the SHA-256 of
// the secret input it was given in its environment, then runs the real
// one: the proof that each secret reached Terraform. The note is kept
// outside the gateway's directories.
func terraformSpy(t *testing.T) (configure func(*server.Config), record string) {
	t.Helper()
	root, err := devvault.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	record = filepath.Join(dir, "seen")
	script := fmt.Sprintf(`#!/bin/sh
if [ -n "${TF_VAR_initial_secret+set}" ]; then
  printf '%%s %%s\n' "$1" "$(printf '%%s' "$TF_VAR_initial_secret" | sha256sum | cut -c1-64)" >> '%s'
fi
exec '%s' "$@"
`, record, filepath.Join(root, "bin", "terraform"))
	spy := filepath.Join(dir, "terraform")
	if err := os.WriteFile(spy, []byte(script), 0o700); err != nil {
		t.Fatal(err)
	}
	return func(c *server.Config) { c.TerraformPath = spy }, record
}

// startModuleRig is a rig whose module runs go through the Terraform spy.
func startModuleRig(t *testing.T, configure ...func(*server.Config)) *leakRig {
	t.Helper()
	spy, record := terraformSpy(t)
	r := startLeakRig(t, "module-runs", append([]func(*server.Config){spy}, configure...)...)
	r.tfSpy = record
	return r
}

// terraformSaw counts the Terraform commands that ran with secret, by command.
func (r *leakRig) terraformSaw(secret string) map[string]int {
	r.t.Helper()
	sum := sha256.Sum256([]byte(secret))
	want := hex.EncodeToString(sum[:])
	out := map[string]int{}
	b, err := os.ReadFile(r.tfSpy)
	if err != nil && !os.IsNotExist(err) {
		r.t.Fatal(err)
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		if cmd, h, ok := strings.Cut(sc.Text(), " "); ok && h == want {
			out[cmd]++
		}
	}
	return out
}

// secretEvents are the audit records about the secrets of the requests.
func (r *leakRig) secretEvents(requestIDs ...string) []audit.Record {
	r.t.Helper()
	var out []audit.Record
	for _, id := range requestIDs {
		for _, rec := range auditOf(r.t, r.gw, id) {
			if strings.HasPrefix(rec.Outcome, "request secrets") {
				out = append(out, rec)
			}
		}
	}
	return out
}

func countOutcomes(recs []audit.Record, prefix string) int {
	n := 0
	for _, rec := range recs {
		if strings.HasPrefix(rec.Outcome, prefix) {
			n++
		}
	}
	return n
}

func outcomesOf(recs []audit.Record) []string {
	out := make([]string, len(recs))
	for i, rec := range recs {
		out[i] = rec.Outcome
	}
	return out
}

// leakSink is one place sas keeps or says something: its texts, each named.
type leakSink struct {
	name  string
	texts map[string]string // where → text
}

// jsonLeaves adds every string inside a JSON text (a value stored raw is
// then seen raw, one stored as JSON text inside JSON is seen once escaped).
func jsonLeaves(where, text string, into map[string]string) {
	var v any
	if json.Unmarshal([]byte(text), &v) != nil {
		return
	}
	i := 0
	var walk func(v any)
	walk = func(v any) {
		switch v := v.(type) {
		case string:
			into[fmt.Sprintf("%s (string %d)", where, i)] = v
			i++
			jsonLeaves(where+" (JSON inside)", v, into)
		case []any:
			for _, e := range v {
				walk(e)
			}
		case map[string]any:
			for k, e := range v {
				walk(k)
				walk(e)
			}
		}
	}
	walk(v)
}

// readBack asks the gateway, as each run's caller, for everything it tells
// about the run: the operation, its log, its resource and the caller's list.
func (r *leakRig) readBack(runs []*leakRun) map[string]string {
	r.t.Helper()
	logs := map[string]string{}
	for _, run := range runs {
		if a := r.do(call{method: "GET", path: "/v1/operations/" + run.op.ID, token: run.tok}); a.status != 200 {
			r.t.Errorf("GET operation %s: %d %s", run.op.ID, a.status, a.body)
		}
		a := r.do(call{method: "GET", path: "/v1/operations/" + run.op.ID + "/log", token: run.tok})
		if a.status != 200 {
			r.t.Errorf("GET the log of %s: %d %s", run.op.ID, a.status, a.body)
		}
		logs["the log of "+run.op.ID] = string(a.body)
		var l api.OperationLog
		_ = json.Unmarshal(a.body, &l)
		for i, s := range l.Steps {
			logs[fmt.Sprintf("the log of %s, step %d", run.op.ID, i)] = s.Text
		}
		if id, _ := run.op.Result["resource_id"].(string); id != "" {
			if a := r.do(call{method: "GET", path: "/v1/" + r.collection + "/" + id, token: run.tok, bundle: sbx, env: "sbx"}); a.status != 200 {
				r.t.Errorf("GET %s %s: %d %s", r.collection, id, a.status, a.body)
			}
		}
		r.do(call{method: "GET", path: "/v1/" + r.collection, token: run.tok, bundle: sbx, env: "sbx"})
	}
	return logs
}

// sinks gathers every place sas keeps or says something.
func (r *leakRig) sinks(opLogs map[string]string) []leakSink {
	r.t.Helper()
	answers := leakSink{name: "HTTP answers", texts: map[string]string{}}
	r.mu.Lock()
	i := 0
	for text, req := range r.answers {
		where := fmt.Sprintf("answer %d to %s", i, req)
		answers.texts[where] = text
		if _, body, ok := strings.Cut(text, "\n\n"); ok {
			jsonLeaves(where, body, answers.texts)
		}
		i++
	}
	r.mu.Unlock()

	logs := leakSink{name: "operation logs", texts: map[string]string{}}
	for where, text := range opLogs {
		logs.texts[where] = text
		jsonLeaves(where, text, logs.texts)
	}

	rows := leakSink{name: "database rows", texts: map[string]string{}}
	db := r.gw.Gateway.Store().DB
	tq, err := db.Query(`SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name`)
	if err != nil {
		r.t.Fatal(err)
	}
	var tables []string
	for tq.Next() {
		var name string
		if err := tq.Scan(&name); err != nil {
			r.t.Fatal(err)
		}
		tables = append(tables, name)
	}
	tq.Close()
	if len(tables) < 5 {
		r.t.Fatalf("only tables %v", tables)
	}
	for _, table := range tables {
		q, err := db.Query(`SELECT * FROM "` + table + `"`)
		if err != nil {
			r.t.Fatalf("read %s: %v", table, err)
		}
		cols, _ := q.Columns()
		for n := 0; q.Next(); n++ {
			vals := make([]any, len(cols))
			ptrs := make([]any, len(cols))
			for i := range vals {
				ptrs[i] = &vals[i]
			}
			if err := q.Scan(ptrs...); err != nil {
				r.t.Fatalf("scan %s: %v", table, err)
			}
			for i, v := range vals {
				var s string
				switch v := v.(type) {
				case nil:
				case []byte:
					s = string(v)
				case string:
					s = v
				default:
					s = fmt.Sprint(v)
				}
				where := fmt.Sprintf("%s.%s, row %d", table, cols[i], n)
				rows.texts[where] = s
				jsonLeaves(where, s, rows.texts)
			}
		}
		if err := q.Err(); err != nil {
			r.t.Fatalf("read %s: %v", table, err)
		}
		q.Close()
	}

	trail := leakSink{name: "audit trail", texts: map[string]string{}}
	for after := int64(0); ; {
		recs, next, err := r.gw.Gateway.AuditChain().Query(context.Background(), audit.Filter{After: after, Limit: audit.MaxQueryLimit})
		if err != nil {
			r.t.Fatal(err)
		}
		for _, rec := range recs {
			b, _ := json.Marshal(rec)
			where := fmt.Sprintf("audit record %d (%s)", rec.Seq, rec.Outcome)
			trail.texts[where] = string(b)
			jsonLeaves(where, string(b), trail.texts)
		}
		if next == 0 {
			break
		}
		after = next
	}

	gwLogs := leakSink{name: "gateway logs", texts: map[string]string{"the gateway's trace-level log": r.logs.String()}}

	vaultLog := leakSink{name: "Vault's audit log", texts: map[string]string{}}
	if b, err := os.ReadFile(env.VaultAuditLog()); err == nil && int64(len(b)) >= r.vaultAuditFrom {
		vaultLog.texts["Vault's audit log since the gateway started"] = string(b[r.vaultAuditFrom:])
	}
	return []leakSink{answers, logs, rows, trail, gwLogs, vaultLog}
}

// around is what surrounds the first occurrence of found in text.
func around(text, found string) string {
	i := strings.Index(text, found)
	if i < 0 {
		return clip(text, 400)
	}
	return strconv.Quote(text[max(0, i-300):min(len(text), i+len(found)+300)])
}

// files are the gateway's data and module work directories' files.
func (r *leakRig) files() map[string]string {
	r.t.Helper()
	out := map[string]string{}
	for _, dir := range []string{r.dataDir, r.workDir} {
		err := filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
			if err != nil {
				if os.IsNotExist(err) {
					return nil // a run's working directory removed as we walked
				}
				return err
			}
			if d.Type().IsRegular() {
				if b, err := os.ReadFile(p); err == nil {
					out[p] = string(b)
				}
			}
			return nil
		})
		if err != nil && !os.IsNotExist(err) {
			r.t.Fatal(err)
		}
	}
	return out
}

// assertNoTrace: after every run ended, no secret is anywhere sas keeps or
// says anything, and no wrapping token made for them is alive in Vault.
func (r *leakRig) assertNoTrace(runs []*leakRun) {
	r.t.Helper()
	for _, run := range runs {
		if op, err := r.gw.Gateway.OperationFor(run.op.ID); err != nil || !slices.Contains([]string{api.OperationSucceeded, api.OperationFailed, api.OperationCancelled}, op.State) {
			r.t.Fatalf("assertNoTrace before operation %s ended: %s %v", run.op.ID, op.State, err)
		}
	}
	matchers := make([]leakMatcher, len(leakSecrets))
	for i, s := range leakSecrets {
		matchers[i] = newLeakMatcher(s)
	}
	start := time.Now()
	opLogs := r.readBack(runs)
	sinks := r.sinks(opLogs)
	r.t.Logf("read back and gathered in %s", time.Since(start).Round(time.Millisecond))

	for _, sink := range sinks {
		if len(sink.texts) == 0 {
			r.t.Errorf("nothing to scan in %s", sink.name)
		}
		wheres := make([]string, 0, len(sink.texts))
		for where := range sink.texts {
			wheres = append(wheres, where)
		}
		sort.Strings(wheres)
		reported := map[string]bool{}
		for _, where := range wheres {
			for _, m := range matchers {
				if f := m.find(sink.texts[where]); f != "" && !reported[m.secret.value] {
					reported[m.secret.value] = true // once per secret and sink
					r.t.Errorf("%s: secret %s %q found as %q in %s:\n%s", sink.name, m.secret.label, m.secret.value, f, where, around(sink.texts[where], f))
				}
			}
		}
	}

	r.t.Logf("sinks scanned after %s", time.Since(start).Round(time.Millisecond))
	files := r.files()
	if len(files) == 0 {
		r.t.Error("no file in the data and work directories to scan")
	}
	names := make([]string, 0, len(files))
	for p := range files {
		names = append(names, p)
	}
	sort.Strings(names)
	for _, p := range names {
		for _, m := range matchers {
			if m.valueOnly && !utf8.ValidString(files[p]) {
				// A binary file (the SQLite database and its WAL) holds a
				// one-to-three-byte value between delimiters by chance; its
				// rows are scanned as text above, column by column.
				continue
			}
			f := m.find(files[p])
			if f == "" {
				continue
			}
			if strings.Contains(p, string(filepath.Separator)+"module-state"+string(filepath.Separator)) {
				// Terraform's own state may hold what a module keeps; the
				// promise is about what sas writes. Report it, private.
				fi, err := os.Stat(p)
				if err != nil || fi.Mode().Perm() != 0o600 {
					r.t.Errorf("Terraform state %s holds secret %s %q and is not 0600 (%v, %v)", p, m.secret.label, m.secret.value, fi.Mode(), err)
				}
				r.t.Logf("REPORT: Terraform state %s (0600) holds secret %s %q as %q", p, m.secret.label, m.secret.value, f)
				continue
			}
			r.t.Errorf("file %s holds secret %s %q as %q", p, m.secret.label, m.secret.value, f)
		}
	}

	// The scan reads what it claims to: each place shows a non-secret
	// value of the requests (their names), or their operations.
	canary := func(sink string, texts map[string]string, want ...string) {
		for _, text := range texts {
			for _, w := range want {
				if strings.Contains(text, w) {
					return
				}
			}
		}
		r.t.Errorf("the scan of %s is blind: none of %v appears in it", sink, want)
	}
	var markers, opIDs []string
	for _, run := range runs {
		markers = append(markers, run.marker)
		opIDs = append(opIDs, run.op.ID)
	}
	for _, sink := range sinks {
		switch sink.name {
		case "HTTP answers", "audit trail", "gateway logs":
			canary(sink.name, sink.texts, opIDs...)
		case "database rows":
			canary(sink.name, sink.texts, markers...)
		case "operation logs":
			for _, run := range runs {
				if run.op.Kind == api.KindModuleRun && run.op.State != api.OperationCancelled {
					canary(sink.name, sink.texts, "Plan: ") // Terraform's plan, as the log keeps it
					break
				}
			}
		case "Vault's audit log":
			canary(sink.name, sink.texts, "sys/wrapping/wrap")
		}
	}
	canary("files", files, markers...)
	r.mu.Lock()
	live := make(map[string]*liveFile, len(r.liveFiles))
	for p, lf := range r.liveFiles {
		live[p] = lf
	}
	r.mu.Unlock()
	for p, lf := range live {
		for v, what := range lf.secrets {
			if lf.mode != 0o600 {
				r.t.Errorf("while a run was live, %s (mode %v) held secret %q: %s", p, lf.mode, v, what)
			}
			r.t.Logf("REPORT: while a run was live, Terraform's %s (mode %v, in the run's private directory) held secret %q: %s", filepath.Base(p), lf.mode, v, what)
		}
		if _, err := os.Stat(p); !os.IsNotExist(err) {
			r.t.Errorf("%s, which held secrets while a run was live, is still there after the runs ended (%v)", p, err)
		}
	}
	r.t.Logf("files scanned after %s (%d files of the work directory held a secret while runs were live)", time.Since(start).Round(time.Millisecond), len(live))

	r.assertNoWrappingTokenLeft(runs)
	r.t.Logf("Vault asked after %s", time.Since(start).Round(time.Millisecond))
}

// liveWrappingTokens are the response-wrapping tokens alive anywhere in
// Vault, by accessor, as its operator would find them.
func liveWrappingTokens(t *testing.T) map[string]*vaultapi.Secret {
	t.Helper()
	accs, err := env.Admin().Logical().List("auth/token/accessors")
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]*vaultapi.Secret{}
	if accs == nil {
		return out
	}
	keys, _ := accs.Data["keys"].([]any)
	for _, k := range keys {
		acc, _ := k.(string)
		s, err := env.Admin().Auth().Token().LookupAccessor(acc)
		if err != nil || s == nil {
			continue // gone since it was listed
		}
		if s.Data["path"] == "sys/wrapping/wrap" {
			out[acc] = s
		}
	}
	return out
}

// wrappingAlive asks Vault whether the token of an accessor lives.
func wrappingAlive(t *testing.T, accessor string) bool {
	t.Helper()
	s, err := env.Admin().Auth().Token().LookupAccessor(accessor)
	if err == nil {
		return s != nil
	}
	if strings.Contains(err.Error(), "invalid accessor") {
		return false
	}
	t.Fatalf("lookup-accessor: %v", err)
	return false
}

// assertNoWrappingTokenLeft: no wrapping token made since the rig started
// is alive; none whose wrap the trail records for these requests is; none
// the operations table ever held is; the operations hold no hand-off.
func (r *leakRig) assertNoWrappingTokenLeft(runs []*leakRun) {
	r.t.Helper()
	chain := r.gw.Gateway.AuditChain()
	live := liveWrappingTokens(r.t)
	byHMAC := map[string]string{}
	for acc, s := range live {
		byHMAC[chain.HashAccessor(acc)] = acc
		if !r.wrapsBefore[acc] {
			owner := "no request of this test"
			for _, rec := range mustQuery(r.t, chain, audit.Filter{AccessorHMAC: chain.HashAccessor(acc), Limit: audit.MaxQueryLimit}) {
				owner = fmt.Sprintf("operation %s (request %s): %q", rec.TargetID, rec.RequestID, rec.Outcome)
			}
			r.t.Errorf("a wrapping token made while the gateway ran is alive in Vault: accessor %s, created %v, ttl %v; %s",
				acc, s.Data["creation_time"], s.Data["ttl"], owner)
		}
	}
	for _, run := range runs {
		ev := r.secretEvents(run.requestIDs...)
		if countOutcomes(ev, "request secrets wrapped for the operation's executor") == 0 {
			r.t.Errorf("%s: the trail records no hand-off of the secrets of %s through Vault: %q", run.marker, run.op.ID, outcomesOf(ev))
		}
		for _, rec := range ev {
			if acc, ok := byHMAC[rec.TokenAccessorHMAC]; ok && rec.TokenAccessorHMAC != "" {
				r.t.Errorf("%s: the wrapping token of %q (operation %s) is alive in Vault (accessor %s)", run.marker, rec.Outcome, run.op.ID, acc)
			}
		}
		var state, sealed, acc string
		if err := r.gw.Gateway.Store().DB.QueryRow(`SELECT secrets_handoff, secrets_wrapped, secrets_accessor FROM operations WHERE id = $1`, run.op.ID).
			Scan(&state, &sealed, &acc); err != nil {
			r.t.Fatal(err)
		}
		if sealed != "" || acc != "" || (state != "gone" && state != "") {
			r.t.Errorf("%s: operation %s ended %s still holds a hand-off: state %q, sealed %d bytes, accessor %q", run.marker, run.op.ID, run.op.State, state, len(sealed), acc)
		}
	}
	r.mu.Lock()
	held := cloneMap(r.handOffs)
	r.mu.Unlock()
	for acc, opID := range held {
		if wrappingAlive(r.t, acc) {
			r.t.Errorf("the wrapping token operation %s held (accessor %s) is alive in Vault after it ended", opID, acc)
		}
	}
	r.t.Logf("%d wrapping tokens seen in the operations table, none alive; %d wrapping tokens alive in Vault from before", len(held), len(r.wrapsBefore))
}

func cloneMap(m map[string]string) map[string]string {
	out := make(map[string]string, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

func mustQuery(t *testing.T, chain *audit.AuditChain, f audit.Filter) []audit.Record {
	t.Helper()
	recs, _, err := chain.Query(context.Background(), f)
	if err != nil {
		t.Fatal(err)
	}
	return recs
}

// cancelQueued asserts each run waits in the queue with its secrets handed
// over — a wrapping token alive in Vault, its accessor on the operation —
// then cancels it. The holder must still be running afterwards: no run
// cancelled here was ever picked up.
func (r *leakRig) cancelQueued(runs []*leakRun, holder api.Operation) {
	r.t.Helper()
	for _, run := range runs {
		if op, _ := r.gw.Gateway.OperationFor(run.op.ID); op.State != api.OperationPending {
			r.t.Fatalf("%s: operation %s is %s, want pending behind %s", run.marker, run.op.ID, op.State, holder.ID)
		}
		var acc string
		if err := r.gw.Gateway.Store().DB.QueryRow(`SELECT secrets_accessor FROM operations WHERE id = $1`, run.op.ID).Scan(&acc); err != nil {
			r.t.Fatal(err)
		}
		if acc == "" || !wrappingAlive(r.t, acc) {
			r.t.Fatalf("%s: queued operation %s holds no live wrapping token (accessor %q): the check after the cancel would prove nothing", run.marker, run.op.ID, acc)
		}
		r.mu.Lock()
		r.handOffs[acc] = run.op.ID
		r.mu.Unlock()
		a := r.do(call{method: "POST", path: "/v1/operations/" + run.op.ID + "/cancel", token: run.tok})
		var got api.Operation
		if err := json.Unmarshal(a.body, &got); err != nil || a.status != http.StatusAccepted || !got.CancelRequested {
			r.t.Fatalf("%s: cancel %s: %d %s", run.marker, run.op.ID, a.status, a.body)
		}
	}
	if op, _ := r.gw.Gateway.OperationFor(holder.ID); op.State != api.OperationRunning {
		r.t.Fatalf("the holder %s is %s: the queued runs may have been picked up before their cancel", holder.ID, op.State)
	}
}

// cancelledUnopened: the run ended cancelled, its secrets never unwrapped,
// their token revoked unused.
func (r *leakRig) cancelledUnopened(run *leakRun) {
	r.t.Helper()
	if run.op.State != api.OperationCancelled {
		r.t.Errorf("%s: operation %s ended %s (%s), want cancelled", run.marker, run.op.ID, run.op.State, run.op.Error)
	}
	// Destroyed unused: by the compensation (the executor forgets them) or
	// as the operation ended.
	ev := r.secretEvents(run.requestIDs...)
	destroyed := 0
	for _, rec := range ev {
		if strings.HasPrefix(rec.Outcome, "request secrets destroyed") && strings.HasSuffix(rec.Outcome, "their unused wrapping token was revoked") {
			destroyed++
		}
	}
	if countOutcomes(ev, "request secrets unwrapped") != 0 || destroyed != 1 {
		r.t.Errorf("%s: audit of the secrets of %s: %q", run.marker, run.op.ID, outcomesOf(ev))
	}
}

// race sends 8 identical creates under one key at once: every answer names
// one operation, the trail says the others replayed or joined it, and only
// one hand-off is made.
func (r *leakRig) race(run *leakRun, body string) {
	r.t.Helper()
	const racers = 8
	key := "race-" + run.marker
	ids := make([]string, racers)
	statuses := make([]int, racers)
	atOnce(racers, func(i int) {
		a := r.create(run, body, key)
		var op api.Operation
		_ = json.Unmarshal(a.body, &op)
		ids[i], statuses[i] = op.ID, a.status
	})
	for i := range ids {
		if ids[i] == "" || ids[i] != ids[0] || statuses[i] != http.StatusAccepted {
			r.t.Fatalf("%s: racers got %v with statuses %v; want one operation, 202 for all", run.marker, ids, statuses)
		}
	}
	run.op.ID = ids[0]
	others := 0
	for _, id := range run.requestIDs {
		for _, rec := range auditOf(r.t, r.gw, id) {
			if rec.Outcome == "idempotent replay of "+run.op.ID || rec.Outcome == "joined unfinished create "+run.op.ID {
				others++
				break
			}
		}
	}
	if len(run.requestIDs) != racers || others != racers-1 {
		r.t.Errorf("%s: %d of %d racing requests (%v) are recorded as replaying or joining %s, want %d", run.marker, others, len(run.requestIDs), run.requestIDs, run.op.ID, racers-1)
	}
}

// onlyOneHandOff: of the racing requests, only the one that created the
// operation wrapped the secrets.
func (r *leakRig) onlyOneHandOff(run *leakRun) {
	r.t.Helper()
	if ev := r.secretEvents(run.requestIDs...); countOutcomes(ev, "request secrets wrapped for the operation's executor") != 1 {
		r.t.Errorf("%s: %d hand-offs for one operation: %q", run.marker, countOutcomes(ev, "request secrets wrapped for the operation's executor"), outcomesOf(ev))
	}
}

// A module run's secret input, on every ending of the run.
func TestModuleRunSecretsLeaveNoTrace(t *testing.T) {
	t.Run("succeeded", func(t *testing.T) {
		r := startModuleRig(t)
		runs := newRuns(t, "mr-ok")
		for _, run := range runs {
			run.op = decodeOp(t, r.create(run, rotationBody(run.marker, run.secret.value), ""))
		}
		key, err := audit.LoadHMACKey(audit.DefaultKeyPaths(r.dataDir).HMAC)
		if err != nil {
			t.Fatal(err)
		}
		for _, run := range runs {
			run.op = r.wait(run.tok, run.op.ID)
			if run.op.State != api.OperationSucceeded {
				t.Fatalf("%s: %s: %s", run.marker, run.op.State, run.op.Error)
			}
			// The executor had the very value, and Terraform ran with it.
			fps, _ := run.op.Result["secret_input_fingerprints"].(map[string]any)
			if want := modulerun.SecretInputFingerprint(key, "initial_secret", run.secret.value); fps["initial_secret"] != want {
				t.Errorf("%s: fingerprint %v, want %s: the executor did not get the secret", run.marker, fps, want)
			}
			if saw := r.terraformSaw(run.secret.value); saw["plan"] == 0 || saw["apply"] == 0 {
				t.Errorf("%s: Terraform ran with secret %q in %v; want plan and apply", run.marker, run.secret.value, saw)
			}
		}
		r.assertNoTrace(runs)
	})

	t.Run("failed", func(t *testing.T) {
		// The bundle approves the module but not time_rotating in its
		// plans: each run is planned with its secret, then denied.
		bundles := copyBundles(t)
		path := filepath.Join(bundles, sbx, "data.json")
		raw, _ := os.ReadFile(path)
		edited := bytes.Replace(raw, []byte(`"platform/secret-rotation": {"versions": ["1.0.0"], "resource_types": ["terraform_data", "time_rotating"]`),
			[]byte(`"platform/secret-rotation": {"versions": ["1.0.0"], "resource_types": ["terraform_data"]`), 1)
		if bytes.Equal(edited, raw) {
			t.Fatal("the bundle edit changed nothing: the shipped data.json moved")
		}
		if err := os.WriteFile(path, edited, 0o644); err != nil {
			t.Fatal(err)
		}
		r := startModuleRig(t, func(c *server.Config) { c.BundleDir = bundles })
		runs := newRuns(t, "mr-denied")
		for _, run := range runs {
			run.op = decodeOp(t, r.create(run, rotationBody(run.marker, run.secret.value), ""))
		}
		for _, run := range runs {
			run.op = r.wait(run.tok, run.op.ID)
			if run.op.State != api.OperationFailed || !strings.Contains(run.op.Error, "nothing was applied") {
				t.Fatalf("%s: want failed with the plan's denial, got %s: %s", run.marker, run.op.State, run.op.Error)
			}
			if saw := r.terraformSaw(run.secret.value); saw["plan"] == 0 || saw["apply"] != 0 {
				t.Errorf("%s: Terraform ran with secret %q in %v; want a plan and no apply", run.marker, run.secret.value, saw)
			}
		}
		r.assertNoTrace(runs)
	})

	t.Run("cancelled while queued", func(t *testing.T) {
		r := startModuleRig(t, func(c *server.Config) { c.WorkersPerKind = 1 })
		gater := env.Caller(t, vaultsetup.CallerSpec{Entity: "leak-gate-holder", Bundles: []string{sbx}})
		holder := decodeOp(t, r.do(call{method: "POST", path: "/v1/module-runs", token: gater, bundle: sbx, env: "sbx",
			body: `{"name":"hold-the-worker","module":"platform/deploy-gate","version":"1.0.0","inputs":{"release":"v1","settle":"20s"}}`}))
		waitFor(t, "the gate holding the worker to run", func() bool {
			op, _ := r.gw.Gateway.OperationFor(holder.ID)
			return op.State == api.OperationRunning
		})
		runs := newRuns(t, "mr-queued")
		for _, run := range runs {
			run.op = decodeOp(t, r.create(run, rotationBody(run.marker, run.secret.value), ""))
		}
		r.cancelQueued(runs, holder)
		for _, run := range runs {
			run.op = r.wait(run.tok, run.op.ID)
			r.cancelledUnopened(run)
			if saw := r.terraformSaw(run.secret.value); len(saw) != 0 {
				t.Errorf("%s: a cancelled queued run reached Terraform: %v", run.marker, saw)
			}
		}
		if op := r.wait(gater, holder.ID); op.State != api.OperationSucceeded {
			t.Fatalf("the holder: %s: %s", op.State, op.Error)
		}
		r.assertNoTrace(runs)
	})

	t.Run("same key raced", func(t *testing.T) {
		r := startModuleRig(t)
		runs := newRuns(t, "mr-race")
		for _, run := range runs {
			r.race(run, rotationBody(run.marker, run.secret.value))
		}
		if n := operationCount(t, r.gw); n != len(runs) {
			t.Errorf("%d operations for %d raced creates, want one each", n, len(runs))
		}
		for _, run := range runs {
			run.op = r.wait(run.tok, run.op.ID)
			if run.op.State != api.OperationSucceeded {
				t.Fatalf("%s: %s: %s", run.marker, run.op.State, run.op.Error)
			}
			if saw := r.terraformSaw(run.secret.value); saw["apply"] != 1 {
				t.Errorf("%s: Terraform ran with secret %q in %v; want exactly one apply", run.marker, run.secret.value, saw)
			}
			r.onlyOneHandOff(run)
		}
		r.assertNoTrace(runs)
	})
}

// A Calm app's secret variable, on every ending of the create.
func TestCalmAppSecretsLeaveNoTrace(t *testing.T) {
	reachedCalm := func(t *testing.T, sim *simcalm.Server, run *leakRun) {
		t.Helper()
		app, ok := appOf(sim, run.op.RequestID)
		if !ok {
			t.Errorf("%s: Calm holds no app for request %s", run.marker, run.op.RequestID)
			return
		}
		if got := app.SecretHashes[simcalm.VarPassword]; got != simcalm.SecretSHA256(run.secret.value) {
			t.Errorf("%s: Calm holds %s %q for %s, want the SHA-256 of %q", run.marker, simcalm.VarPassword, got, app.Name, run.secret.value)
		}
	}

	t.Run("succeeded", func(t *testing.T) {
		env.StartInfoblox(t)
		sim := env.StartCalm(t)
		r := startLeakRig(t, "calm-apps")
		runs := newRuns(t, "calm-ok")
		for _, run := range runs {
			run.op = decodeOp(t, r.create(run, calmSecretBody(run.marker, run.secret.value), ""))
		}
		for _, run := range runs {
			run.op = r.wait(run.tok, run.op.ID)
			if run.op.State != api.OperationSucceeded {
				t.Fatalf("%s: %s: %s", run.marker, run.op.State, run.op.Error)
			}
			reachedCalm(t, sim, run)
		}
		r.assertNoTrace(runs)
	})

	t.Run("failed", func(t *testing.T) {
		env.StartInfoblox(t)
		sim := env.StartCalm(t)
		r := startLeakRig(t, "calm-apps")
		// Four launches fail in Calm; the other three apps fail while they
		// provision (Calm holds them, with their secret, until compensation
		// deletes them).
		const failedLaunches = 4
		sim.FailNextLaunches(failedLaunches, "cluster sbx-01 has no capacity")
		sim.FailNextProvisions(len(leakSecrets)-failedLaunches, "cloud-init failed")
		runs := newRuns(t, "calm-failed")
		for _, run := range runs {
			run.op = decodeOp(t, r.create(run, calmSecretBody(run.marker, run.secret.value), ""))
		}
		provisioned := 0
		for _, run := range runs {
			run.op = r.wait(run.tok, run.op.ID)
			if run.op.State != api.OperationFailed {
				t.Fatalf("%s: want failed, got %s: %s", run.marker, run.op.State, run.op.Error)
			}
			if ev := r.secretEvents(run.requestIDs...); countOutcomes(ev, "request secrets unwrapped") == 0 {
				t.Errorf("%s: the secrets of %s never reached the executor: %q", run.marker, run.op.ID, outcomesOf(ev))
			}
			if _, ok := appOf(sim, run.op.RequestID); ok {
				provisioned++
				reachedCalm(t, sim, run)
			}
		}
		if provisioned != len(leakSecrets)-failedLaunches {
			t.Errorf("%d apps reached Calm, want %d", provisioned, len(leakSecrets)-failedLaunches)
		}
		r.assertNoTrace(runs)
	})

	t.Run("cancelled while queued", func(t *testing.T) {
		env.StartInfoblox(t)
		sim := env.StartCalm(t)
		r := startLeakRig(t, "calm-apps", func(c *server.Config) { c.WorkersPerKind = 1 })
		// Calm answers slowly while the holder's step waits on it: the
		// environment's one Calm worker is held.
		sim.SetLatency(12 * time.Second)
		holderTok := env.Caller(t, vaultsetup.CallerSpec{Entity: "leak-calm-holder", Bundles: []string{sbx}})
		holder := decodeOp(t, r.do(call{method: "POST", path: "/v1/calm-apps", token: holderTok, bundle: sbx, env: "sbx",
			body: `{"name":"hold-the-worker","project":"sas-sbx","blueprint":"linux-vm-sandbox","network":"sbx-app","size":{"vcpus":1,"memory_gib":2,"disk_gib":20}}`}))
		waitFor(t, "the holder to run", func() bool {
			op, _ := r.gw.Gateway.OperationFor(holder.ID)
			return op.State == api.OperationRunning
		})
		runs := newRuns(t, "calm-queued")
		for _, run := range runs {
			run.op = decodeOp(t, r.create(run, calmSecretBody(run.marker, run.secret.value), ""))
		}
		r.cancelQueued(runs, holder)
		sim.SetLatency(0)
		for _, run := range runs {
			run.op = r.wait(run.tok, run.op.ID)
			r.cancelledUnopened(run)
			if app, ok := appOf(sim, run.op.RequestID); ok {
				t.Errorf("%s: a cancelled queued create reached Calm: %+v", run.marker, app)
			}
		}
		if op := r.wait(holderTok, holder.ID); op.State != api.OperationSucceeded {
			t.Fatalf("the holder: %s: %s", op.State, op.Error)
		}
		r.assertNoTrace(runs)
	})

	t.Run("same key raced", func(t *testing.T) {
		env.StartInfoblox(t)
		sim := env.StartCalm(t)
		r := startLeakRig(t, "calm-apps")
		runs := newRuns(t, "calm-race")
		for _, run := range runs {
			r.race(run, calmSecretBody(run.marker, run.secret.value))
		}
		if n := operationCount(t, r.gw); n != len(runs) {
			t.Errorf("%d operations for %d raced creates, want one each", n, len(runs))
		}
		for _, run := range runs {
			run.op = r.wait(run.tok, run.op.ID)
			if run.op.State != api.OperationSucceeded {
				t.Fatalf("%s: %s: %s", run.marker, run.op.State, run.op.Error)
			}
			reachedCalm(t, sim, run)
			r.onlyOneHandOff(run)
		}
		names := map[string]int{}
		for _, a := range sim.Apps() {
			names[a.Name]++
		}
		for _, run := range runs {
			if names[run.marker] != 1 {
				t.Errorf("Calm holds %d apps named %s, want 1", names[run.marker], run.marker)
			}
		}
		r.assertNoTrace(runs)
	})
}
