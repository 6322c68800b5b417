package server_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sas-platform/terraform-provider-sas/internal/api"
	"github.com/sas-platform/terraform-provider-sas/internal/devstack"
	"github.com/sas-platform/terraform-provider-sas/internal/store"
	"github.com/sas-platform/terraform-provider-sas/internal/store/storetest"
	"github.com/sas-platform/terraform-provider-sas/internal/testenv"
	"github.com/sas-platform/terraform-provider-sas/internal/vaultsetup"
	"github.com/sas-platform/terraform-provider-sas/server"
)

func reservationBody(hostname, comment string) string {
	return fmt.Sprintf(`{"network":"sbx-app","hostname":%q,"dns_zone":"sbx.example.internal","comment":%q}`, hostname, comment)
}

func asOperation(t *testing.T, a answer, status int) api.Operation {
	t.Helper()
	var op api.Operation
	if err := json.Unmarshal(a.body, &op); err != nil || a.status != status {
		t.Fatalf("want %d with an operation: %d %s", status, a.status, a.body)
	}
	return op
}

// A create repeated with a new idempotency key — Terraform re-applying
// after it was killed before saving state — adopts the reservation the
// first one made: 200 with an operation already succeeded, the same
// resource, one host in Infoblox, and the adoption in the audit chain.
func TestCreateAdoptsTheObjectItAlreadyMade(t *testing.T) {
	sim := env.StartInfoblox(t)
	gw := env.StartGateway(t)
	tok := env.Caller(t, vaultsetup.CallerSpec{Entity: "adopter", Bundles: []string{sbx}})
	sb := func(c call) call { c.token, c.bundle, c.env = tok, sbx, "sbx"; return c }

	first := waitOperation(t, gw, tok, decodeOp(t, do(t, gw, sb(call{method: "POST", path: "/v1/ip-reservations",
		idempotencyKey: "apply-1", body: reservationBody("adopt-01", "made once")}))).ID)
	if first.State != api.OperationSucceeded {
		t.Fatalf("first create: %+v", first)
	}
	// The body may differ in what does not describe the object (defaults spelled out).
	again := asOperation(t, do(t, gw, sb(call{method: "POST", path: "/v1/ip-reservations", idempotencyKey: "apply-2",
		body: `{"network":"sbx-app","hostname":"adopt-01","dns_zone":"sbx.example.internal","dns_view":"default","comment":"made once","aliases":[]}`})), http.StatusOK)
	if again.State != api.OperationSucceeded || again.ID == first.ID || again.Result["resource_id"] != first.Result["resource_id"] ||
		again.Result["adopted"] != true || again.Result["ip_address"] != first.Result["ip_address"] {
		t.Fatalf("re-create: want an adoption of %v, got %+v", first.Result["resource_id"], again)
	}
	if n := len(sim.Hosts()); n != 1 {
		t.Fatalf("Infoblox holds %d hosts after the adoption, want 1", n)
	}
	recs := auditOf(t, gw, again.RequestID)
	if len(recs) != 1 || recs[0].Outcome != "adopted existing "+first.Result["resource_id"].(string) || recs[0].StatusCode != http.StatusOK {
		t.Fatalf("adoption audit: %+v", recs)
	}
	// The adoption is an operation like any other: its key replays it.
	replay := asOperation(t, do(t, gw, sb(call{method: "POST", path: "/v1/ip-reservations", idempotencyKey: "apply-2",
		body: `{"network":"sbx-app","hostname":"adopt-01","dns_zone":"sbx.example.internal","dns_view":"default","comment":"made once","aliases":[]}`})), http.StatusAccepted)
	if replay.ID != again.ID {
		t.Fatalf("replayed adoption key: got %s, want %s", replay.ID, again.ID)
	}
	// Deleting the adopted resource deletes the one host.
	del := waitOperation(t, gw, tok, decodeOp(t, do(t, gw, sb(call{method: "DELETE", path: "/v1/ip-reservations/" + first.Result["resource_id"].(string)}))).ID)
	if del.State != api.OperationSucceeded || len(sim.Hosts()) != 0 {
		t.Fatalf("delete: %+v, %d hosts left", del, len(sim.Hosts()))
	}
}

// A create repeated while the first is still running joins it: same
// operation, one host.
func TestCreateJoinsTheUnfinishedCreateOfTheSameObject(t *testing.T) {
	sim := env.StartInfoblox(t, func(o *devstack.InfobloxOptions) { o.Latency = 400 * time.Millisecond })
	gw := env.StartGateway(t)
	tok := env.Caller(t, vaultsetup.CallerSpec{Entity: "joiner", Bundles: []string{sbx}})
	sb := func(c call) call { c.token, c.bundle, c.env = tok, sbx, "sbx"; return c }
	first := decodeOp(t, do(t, gw, sb(call{method: "POST", path: "/v1/ip-reservations", idempotencyKey: "k-1", body: reservationBody("join-01", "x")})))
	secondAnswer := do(t, gw, sb(call{method: "POST", path: "/v1/ip-reservations", idempotencyKey: "k-2", body: reservationBody("join-01", "x")}))
	second := decodeOp(t, secondAnswer)
	if second.ID != first.ID {
		t.Fatalf("second create got operation %s (%s), want the unfinished %s", second.ID, second.State, first.ID)
	}
	if op := waitOperation(t, gw, tok, first.ID); op.State != api.OperationSucceeded {
		t.Fatalf("create: %+v", op)
	}
	if n := len(sim.Hosts()); n != 1 {
		t.Fatalf("Infoblox holds %d hosts, want 1", n)
	}
	if recs := auditOf(t, gw, secondAnswer.header.Get(api.HeaderRequestID)); len(recs) != 1 || recs[0].Outcome != "joined unfinished create "+first.ID {
		t.Fatalf("join audit: %+v", recs)
	}
}

// A name that is taken is never made twice and never handed to someone
// else: a different spec is a conflict naming the resource and the fields,
// another owner's object a conflict that does not describe it.
func TestCreateOfATakenNameIsAConflict(t *testing.T) {
	sim := env.StartInfoblox(t)
	gw := env.StartGateway(t)
	owner := env.Caller(t, vaultsetup.CallerSpec{Entity: "name-owner", Bundles: []string{sbx}})
	other := env.Caller(t, vaultsetup.CallerSpec{Entity: "name-squatter", Bundles: []string{sbx}})
	as := func(tok string, c call) call { c.token, c.bundle, c.env = tok, sbx, "sbx"; return c }
	made := waitOperation(t, gw, owner, decodeOp(t, do(t, gw, as(owner, call{method: "POST", path: "/v1/ip-reservations", body: reservationBody("taken-01", "original")}))).ID)
	id := made.Result["resource_id"].(string)

	a := do(t, gw, as(owner, call{method: "POST", path: "/v1/ip-reservations", body: reservationBody("taken-01", "changed")}))
	if a.status != http.StatusConflict || a.problem.Type != api.ProblemNaturalKeyConflict ||
		!strings.Contains(a.problem.Detail, `"default/taken-01.sbx.example.internal" already exists as `+id) ||
		!strings.Contains(a.problem.Detail, "different comment") || !strings.Contains(a.problem.Detail, "terraform import") {
		t.Fatalf("same owner, other spec: %d %+v", a.status, a.problem)
	}
	a = do(t, gw, as(other, call{method: "POST", path: "/v1/ip-reservations", body: reservationBody("taken-01", "original")}))
	if a.status != http.StatusConflict || a.problem.Type != api.ProblemNaturalKeyConflict ||
		!strings.Contains(a.problem.Detail, "belongs to another caller") || strings.Contains(a.problem.Detail, id) {
		t.Fatalf("other owner: %d %+v", a.status, a.problem)
	}
	hosts := sim.Hosts()
	if len(hosts) != 1 || hosts[0].Comment != "original" {
		t.Fatalf("Infoblox after two refused creates: %+v", hosts)
	}
	if n := operationCount(t, gw); n != 1 {
		t.Fatalf("%d operations stored, want 1 (conflicts store nothing)", n)
	}
}

// Concurrent requests with one idempotency key all get the one operation,
// on one replica or two, on SQLite and PostgreSQL; the key with another
// body is a 409. Creates of one object under different keys converge on
// one resource.
func TestConcurrentRequestsWithOneKey(t *testing.T) {
	for _, driver := range []string{store.DriverSQLite, store.DriverPostgres} {
		t.Run(driver, func(t *testing.T) {
			sim := env.StartInfoblox(t)
			replicas := twoReplicas(t, driver)
			tok := env.Caller(t, vaultsetup.CallerSpec{Entity: "racer-" + driver, Bundles: []string{sbx}})
			const rounds, racers = 12, 4
			for round := 0; round < rounds; round++ {
				key := fmt.Sprintf("race-%d", round)
				body := reservationBody(fmt.Sprintf("race-%02d", round), "same")
				ids := make([]string, racers)
				atOnce(racers, func(i int) {
					a := do(t, replicas[i%2], call{method: "POST", path: "/v1/ip-reservations", token: tok, bundle: sbx, env: "sbx", idempotencyKey: key, body: body})
					var op api.Operation
					if err := json.Unmarshal(a.body, &op); err != nil || a.status != http.StatusAccepted {
						t.Errorf("round %d racer %d: %d %s", round, i, a.status, a.body)
					}
					ids[i] = op.ID
				})
				for i := 1; i < racers; i++ {
					if ids[i] != ids[0] {
						t.Fatalf("round %d: racers got operations %v, want one", round, ids)
					}
				}
				a := do(t, replicas[round%2], call{method: "POST", path: "/v1/ip-reservations", token: tok, bundle: sbx, env: "sbx",
					idempotencyKey: key, body: reservationBody(fmt.Sprintf("race-%02d", round), "other")})
				if a.status != http.StatusConflict || a.problem.Type != api.ProblemIdempotency {
					t.Fatalf("round %d: reused key, other body: %d %+v", round, a.status, a.problem)
				}
			}

			// One object, many keys, both replicas: one resource, one host.
			resources := make([]string, racers)
			atOnce(racers, func(i int) {
				a := do(t, replicas[i%2], call{method: "POST", path: "/v1/ip-reservations", token: tok, bundle: sbx, env: "sbx",
					idempotencyKey: fmt.Sprintf("many-%d", i), body: reservationBody("many-keys", "same")})
				var op api.Operation
				if err := json.Unmarshal(a.body, &op); err != nil || (a.status != http.StatusAccepted && a.status != http.StatusOK) {
					t.Errorf("racer %d: %d %s", i, a.status, a.body)
					return
				}
				resources[i], _ = waitOperation(t, replicas[0], tok, op.ID).Result["resource_id"].(string)
			})
			for i := range resources {
				if resources[i] == "" || resources[i] != resources[0] {
					t.Fatalf("creates of one object under different keys ended in resources %v, want one", resources)
				}
			}
			names := map[string]int{}
			for _, h := range sim.Hosts() {
				names[h.Name]++
			}
			for name, n := range names {
				if n != 1 {
					t.Errorf("Infoblox holds %s %d times", name, n)
				}
			}
			if names["many-keys.sbx.example.internal"] != 1 || len(names) != rounds+1 {
				t.Fatalf("Infoblox holds %v", names)
			}
		})
	}
}

// atOnce runs f(0) … f(n-1) concurrently and waits for all of them.
func atOnce(n int, f func(i int)) {
	var wg sync.WaitGroup
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() { defer wg.Done(); f(i) }()
	}
	wg.Wait()
}

// twoReplicas starts two gateways sharing one database, as two replicas
// behind a load balancer would: one SQLite file, or one PostgreSQL schema.
func twoReplicas(t *testing.T, driver string) [2]*testenv.Gateway {
	t.Helper()
	shared := func(c *server.Config) {}
	if driver == store.DriverPostgres {
		dsnFile := filepath.Join(t.TempDir(), "dsn")
		if err := os.WriteFile(dsnFile, []byte(storetest.Config(t, store.DriverPostgres).DSN), 0o600); err != nil {
			t.Fatal(err)
		}
		shared = func(c *server.Config) { c.PostgresDSNFile = dsnFile }
	}
	first := env.StartGateway(t, shared)
	dir := first.Gateway.DataDir()
	second := env.StartGateway(t, shared, func(c *server.Config) { c.DataDir = dir })
	return [2]*testenv.Gateway{first, second}
}

// Clients that hang up at any moment never leave an allow half-done: every
// create audited as accepted has its operation stored, every stored
// operation its accepted record — whenever the client went away.
func TestAbandonedRequestsAreStillWhole(t *testing.T) {
	env.StartInfoblox(t)
	gw := env.StartGateway(t)
	tok := env.Caller(t, vaultsetup.CallerSpec{Entity: "quitter", Bundles: []string{sbx}})
	// Calibrate: how long a whole create takes here (race detector, load).
	var full time.Duration
	for i := 0; i < 5; i++ {
		start := time.Now()
		decodeOp(t, do(t, gw, call{method: "POST", path: "/v1/ip-reservations", token: tok, bundle: sbx, env: "sbx", body: reservationBody(fmt.Sprintf("calib-%d", i), "")}))
		full = max(full, time.Since(start))
	}
	const n = 200
	var answered atomic.Int64
	var wg sync.WaitGroup
	sem := make(chan struct{}, 10)
	for i := 0; i < n; i++ {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			// Hang up somewhere between "just sent" and "answered".
			ctx, cancel := context.WithTimeout(context.Background(), time.Duration(rand.Int64N(int64(2*full))))
			defer cancel()
			req, _ := http.NewRequestWithContext(ctx, "POST", gw.URL+"/v1/ip-reservations", strings.NewReader(reservationBody(fmt.Sprintf("quit-%03d", i), "")))
			req.Header.Set(api.HeaderVaultToken, tok)
			req.Header.Set(api.HeaderPolicyBundle, sbx)
			req.Header.Set(api.HeaderEnvironment, "sbx")
			if resp, err := http.DefaultClient.Do(req); err == nil {
				if resp.StatusCode == http.StatusAccepted {
					answered.Add(1)
				}
				resp.Body.Close()
			}
		}()
	}
	wg.Wait()
	// Handlers whose clients left finish on their own; the invariant must
	// hold once they have, so poll for it rather than guess how long.
	var accepted, stored, notStored map[string]bool
	var broken []string
	for deadline := time.Now().Add(20 * time.Second); ; {
		accepted, stored, notStored = createBook(t, gw)
		broken = broken[:0]
		for rid := range accepted {
			if !stored[rid] && !notStored[rid] {
				broken = append(broken, "request "+rid+" audited as accepted, but its operation was neither stored nor its failure audited")
			}
		}
		for rid := range stored {
			if !accepted[rid] {
				broken = append(broken, "operation of request "+rid+" stored without an accepted audit record")
			}
		}
		if len(broken) == 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	for _, b := range broken {
		t.Error(b)
	}
	// The store was healthy throughout: a hang-up is no reason not to store.
	if len(notStored) > 0 || len(stored) != len(accepted) {
		t.Errorf("%d accepted, %d stored, %d audited as not stored: hang-ups cancelled stores", len(accepted), len(stored), len(notStored))
	}
	// Proof the hang-ups landed mid-request: allows whose client never saw the answer.
	abandoned := len(accepted) - 5 - int(answered.Load())
	if abandoned <= 0 {
		t.Fatalf("%d creates accepted, %d answered: no client hung up after its allow was audited; the test proved nothing", len(accepted)-5, answered.Load())
	}
	t.Logf("%d of %d creates accepted, %d of them after their client had hung up; %d stored, %d audited as not stored",
		len(accepted)-5, n, abandoned, len(stored)-5, len(notStored))
}

// createBook reads, by request id, which creates the audit chain holds as
// accepted or as not stored, and which have an operation.
func createBook(t *testing.T, gw *testenv.Gateway) (accepted, stored, notStored map[string]bool) {
	t.Helper()
	accepted, stored, notStored = map[string]bool{}, map[string]bool{}, map[string]bool{}
	db := gw.Gateway.Store().DB
	rows, err := db.Query(`SELECT request_id, outcome FROM audit_records WHERE kind = 'ip_reservation' AND action = 'create'`)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var rid, outcome string
		if err := rows.Scan(&rid, &outcome); err != nil {
			t.Fatal(err)
		}
		switch {
		case outcome == "accepted":
			accepted[rid] = true
		case strings.HasPrefix(outcome, "operation not stored"):
			notStored[rid] = true
		}
	}
	rows.Close()
	rows, err = db.Query(`SELECT request_id FROM operations`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	for rows.Next() {
		var rid string
		if err := rows.Scan(&rid); err != nil {
			t.Fatal(err)
		}
		stored[rid] = true
	}
	return accepted, stored, notStored
}

// A name Infoblox holds that sas did not make for this caller is never
// taken over: the create fails saying whose it is and what to do, and the
// host is left as it was.
func TestCreateOfANameTakenOutsideSasFails(t *testing.T) {
	sim := env.StartInfoblox(t)
	gw := env.StartGateway(t)
	tok := env.Caller(t, vaultsetup.CallerSpec{Entity: "late-comer", Bundles: []string{sbx}})
	kv, err := env.Admin().KVv2(vaultsetup.KVMount).Get(t.Context(), "sbx/infoblox")
	if err != nil {
		t.Fatal(err)
	}
	// An Infoblox admin makes the host by hand, with WAPI, untagged.
	req, _ := http.NewRequest("POST", strings.TrimSuffix(sim.URL(), "/")+"/record:host", strings.NewReader(
		`{"name":"manual-01.sbx.example.internal","view":"default","comment":"made by hand","ipv4addrs":[{"ipv4addr":"10.10.0.200"}]}`))
	req.SetBasicAuth(kv.Data["username"].(string), kv.Data["password"].(string))
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("hand-made host: %d %s", resp.StatusCode, b)
	}
	op := waitOperation(t, gw, tok, decodeOp(t, do(t, gw, call{method: "POST", path: "/v1/ip-reservations", token: tok, bundle: sbx, env: "sbx",
		body: reservationBody("manual-01", "")})).ID)
	if op.State != api.OperationFailed || !strings.Contains(op.Error, "Infoblox already holds host manual-01.sbx.example.internal in view default") ||
		!strings.Contains(op.Error, "made outside sas") || !strings.Contains(op.Error, "choose another hostname") {
		t.Fatalf("create over a hand-made host: %+v", op)
	}
	if hosts := sim.Hosts(); len(hosts) != 1 || hosts[0].Comment != "made by hand" {
		t.Fatalf("Infoblox after the refused create: %+v", hosts)
	}
}

// A destroy cut short, then an apply: the object being deleted is not
// adopted (it is about to vanish); once the delete is done the create
// makes it anew.
func TestCreateDoesNotAdoptWhatIsBeingDeleted(t *testing.T) {
	sim := env.StartInfoblox(t, func(o *devstack.InfobloxOptions) { o.Latency = 300 * time.Millisecond })
	gw := env.StartGateway(t)
	tok := env.Caller(t, vaultsetup.CallerSpec{Entity: "redo", Bundles: []string{sbx}})
	sb := func(c call) call { c.token, c.bundle, c.env = tok, sbx, "sbx"; return c }
	made := waitOperation(t, gw, tok, decodeOp(t, do(t, gw, sb(call{method: "POST", path: "/v1/ip-reservations", body: reservationBody("redo-01", "")}))).ID)
	id := made.Result["resource_id"].(string)
	del := decodeOp(t, do(t, gw, sb(call{method: "DELETE", path: "/v1/ip-reservations/" + id})))
	a := do(t, gw, sb(call{method: "POST", path: "/v1/ip-reservations", body: reservationBody("redo-01", "")}))
	if a.status != http.StatusConflict || !strings.Contains(a.problem.Detail, "being deleted by operation "+del.ID) {
		t.Fatalf("create while its object is being deleted: %d %+v", a.status, a.problem)
	}
	if op := waitOperation(t, gw, tok, del.ID); op.State != api.OperationSucceeded {
		t.Fatalf("delete: %+v", op)
	}
	again := waitOperation(t, gw, tok, decodeOp(t, do(t, gw, sb(call{method: "POST", path: "/v1/ip-reservations", body: reservationBody("redo-01", "")}))).ID)
	if again.State != api.OperationSucceeded || again.Result["adopted"] == true || again.Result["resource_id"] == id || len(sim.Hosts()) != 1 {
		t.Fatalf("create after the delete: %+v, %d hosts", again, len(sim.Hosts()))
	}
}
