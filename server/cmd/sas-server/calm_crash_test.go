package main

import (
	"database/sql"
	"fmt"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/sas-platform/terraform-provider-sas/internal/devstack"
	simcalm "github.com/sas-platform/terraform-provider-sas/internal/sim/calm"
	"github.com/sas-platform/terraform-provider-sas/internal/store"
)

const calmCrashN = 4

// calmCrashStack is the converge stack plus a Calm whose launches take long
// enough to be killed in the middle of.
func calmCrashStack(t *testing.T) (*convergeStack, *simcalm.Server) {
	t.Helper()
	calm := env.StartCalm(t, func(o *devstack.CalmOptions) { o.LaunchTime, o.ProvisionTime = 4*time.Second, 2*time.Second })
	return startConvergeStack(t), calm
}

func calmCrashConfig(prefix string) string {
	return fmt.Sprintf(`resource "sas_calm_app" "a" {
  count     = %d
  name      = format("%s-%%d", count.index)
  project   = "sas-sbx"
  blueprint = "linux-vm-sandbox"
  network   = "sbx-app"
  size      = { vcpus = 1, memory_gib = 2, disk_gib = 20 }
}
`, calmCrashN, prefix)
}

// launchesSent counts the calm_app operations that have checkpointed a
// Calm launch request: launches Calm accepted.
func launchesSent(t *testing.T, st *convergeStack) int {
	return st.count(t, `SELECT count(*) FROM operations WHERE kind = 'calm_app' AND checkpoint_json LIKE '%launch_request_id%'`)
}

// killMidLaunch waits until Calm accepted a launch and kill, and proves
// the kill landed mid-launch: launches sent, not all apps there yet.
func killMidLaunch(t *testing.T, st *convergeStack, calm *simcalm.Server, tf *tfProcess, what string, kill func() error) {
	t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for launchesSent(t, st) == 0 {
		select {
		case <-tf.exited:
			t.Fatalf("terraform ended (%v) before any launch was sent\n%s", exitStatus(tf.err), tfDiagnostics(tf.output()))
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("no launch sent after 2m\n%s", tail(tf.output(), 30))
		}
	}
	if err := kill(); err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	sent, apps := launchesSent(t, st), len(calm.Apps())
	if sent == 0 || apps >= calmCrashN {
		t.Fatalf("%s with %d launches sent and %d of %d apps in Calm: not mid-launch", what, sent, apps, calmCrashN)
	}
	t.Logf("%s with %d launches sent and %d of %d apps in Calm", what, sent, apps, calmCrashN)
}

// convergeApps re-applies and checks Calm made every app exactly once —
// counting every app it ever made, deleted ones included — then destroys.
func convergeApps(t *testing.T, st *convergeStack, calm *simcalm.Server, ws *tfWorkspace, prefix string) {
	t.Helper()
	out, err := ws.run(t, "apply", "-auto-approve", "-input=false", "-no-color")
	if err != nil {
		t.Fatalf("re-apply: %v\n%s", exitStatus(err), tfDiagnostics(out))
	}
	made := map[string]int{}
	for _, a := range calm.Apps() {
		made[a.Name]++
		if a.State != "running" {
			t.Errorf("app %s (%s) is %s after the re-apply", a.Name, a.UUID, a.State)
		}
	}
	for i := range calmCrashN {
		if n := made[fmt.Sprintf("%s-%d", prefix, i)]; n != 1 {
			t.Errorf("Calm made app %s-%d %d times, want once", prefix, i, n)
		}
	}
	if len(made) != calmCrashN {
		t.Errorf("Calm holds apps %v, want %d", made, calmCrashN)
	}
	if t.Failed() {
		t.FailNow()
	}
	t.Logf("re-apply adopted %d apps", adoptions(out))
	if out, err := ws.run(t, "destroy", "-auto-approve", "-input=false", "-no-color"); err != nil {
		t.Fatalf("destroy: %v\n%s", exitStatus(err), tfDiagnostics(out))
	}
	for _, a := range calm.Apps() {
		if a.State != "deleted" {
			t.Errorf("app %s is %s after destroy", a.Name, a.State)
		}
	}
}

// The gateway SIGKILLed while Calm runs launches it started, restarted:
// each launch is followed from its checkpointed request id, none is sent
// twice, and the re-apply converges with one app per resource.
func TestKilledGatewayMidLaunchMakesEachAppOnce(t *testing.T) {
	st, calm := calmCrashStack(t)
	ws := st.workspaceWith(t, calmCrashConfig("gwkill"))
	first := ws.start(t, "apply", "-auto-approve", "-input=false", "-no-color")
	killMidLaunch(t, st, calm, first, "gateway SIGKILLed", func() error {
		if err := st.gw.cmd.Process.Signal(syscall.SIGKILL); err != nil {
			return err
		}
		<-st.gw.exited
		return nil
	})
	time.Sleep(convergeGatewayDown)
	st.gw = st.serve(t)
	if err := first.wait(); err != nil {
		t.Logf("first apply: %v\n%s", exitStatus(err), tfDiagnostics(first.output()))
	}
	st.logOperations(t)
	convergeApps(t, st, calm, ws, "gwkill")
}

// terraform (and its provider) SIGKILLed mid-launch: the gateway finishes
// the launches, and the re-apply adopts them instead of launching again.
func TestKilledTerraformMidLaunchConvergesWithEachAppOnce(t *testing.T) {
	st, calm := calmCrashStack(t)
	ws := st.workspaceWith(t, calmCrashConfig("tfkill"))
	first := ws.start(t, "apply", "-auto-approve", "-input=false", "-no-color")
	killMidLaunch(t, st, calm, first, "terraform SIGKILLed", func() error {
		if err := syscall.Kill(-first.cmd.Process.Pid, syscall.SIGKILL); err != nil {
			return err
		}
		<-first.exited
		return nil
	})
	convergeApps(t, st, calm, ws, "tfkill")
}

func (st *convergeStack) logOperations(t *testing.T) {
	db, err := sql.Open("sqlite", "file:"+filepath.Join(st.data, store.SQLiteFile)+"?mode=ro&_pragma=busy_timeout(5000)")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	rows, err := db.Query(`SELECT id, action, state, attempts, error, checkpoint_json FROM operations ORDER BY created_ns`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	for rows.Next() {
		var id, action, state, e, cp string
		var n int
		_ = rows.Scan(&id, &action, &state, &n, &e, &cp)
		t.Logf("op %s %s %s attempts=%d error=%q checkpoint=%s", id, action, state, n, e, cp)
	}
}
