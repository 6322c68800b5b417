package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sas-platform/terraform-provider-sas/internal/audit"
	"github.com/sas-platform/terraform-provider-sas/internal/store"
	"github.com/sas-platform/terraform-provider-sas/internal/store/storetest"
)

// seedAuditStore writes n records (checkpoint every 10) with the data
// dir's own keys, as a gateway would, and closes everything.
func seedAuditStore(t *testing.T, dataDir string, cfg store.Config, n int) {
	t.Helper()
	ctx := context.Background()
	paths := audit.DefaultKeyPaths(dataDir)
	if err := audit.EnsureKeys(paths); err != nil {
		t.Fatal(err)
	}
	opts, err := audit.LoadOptions(paths)
	if err != nil {
		t.Fatal(err)
	}
	opts.CheckpointEvery = 10
	st, err := store.Open(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	c, err := audit.New(ctx, st, opts)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for i := 1; i <= n; i++ {
		if _, err := c.Append(ctx, audit.Record{
			RequestID: fmt.Sprintf("req-%03d", i), OwnerEntityID: "ent-1", OwnerName: "alice",
			TokenAccessor: "acc", Decision: audit.DecisionAllow, StatusCode: 202, Kind: "ip_reservation", Action: "create",
		}); err != nil {
			t.Fatal(err)
		}
	}
}

// isolateAuditEnv keeps the caller's SAS_* settings out of the command.
func isolateAuditEnv(t *testing.T) {
	for _, k := range []string{"SAS_DATA_DIR", "SAS_POSTGRES_DSN", "SAS_POSTGRES_DSN_FILE"} {
		t.Setenv(k, "")
	}
}

func runAuditCmd(args ...string) (stdout, stderr string, err error) {
	var out, errb strings.Builder
	err = runAudit(context.Background(), args, &out, &errb)
	return out.String(), errb.String(), err
}

func TestAuditVerifyCommand(t *testing.T) {
	isolateAuditEnv(t)
	for _, driver := range storetest.Drivers {
		t.Run(driver, func(t *testing.T) {
			dataDir := t.TempDir()
			cfg := storetest.Config(t, driver)
			flags := []string{"--data-dir", dataDir}
			if driver == store.DriverSQLite {
				cfg.DataDir = dataDir
			} else {
				flags = append(flags, "--postgres-dsn", cfg.DSN)
			}
			seedAuditStore(t, dataDir, cfg, 25)

			out, _, err := runAuditCmd(append([]string{"verify"}, flags...)...)
			if err != nil {
				t.Fatalf("verify intact store: %v\n%s", err, out)
			}
			if !strings.Contains(out, "audit chain intact: 25 records") || !strings.Contains(out, "latest at seq 20") {
				t.Errorf("summary: %s", out)
			}

			out, _, err = runAuditCmd(append([]string{"verify", "--format", "json"}, flags...)...)
			var rep audit.Report
			if err != nil || json.Unmarshal([]byte(out), &rep) != nil || rep.Records != 25 || !rep.Intact() {
				t.Errorf("json report: %v\n%s", err, out)
			}

			out, _, err = runAuditCmd(append([]string{"export", "--format", "jsonl"}, flags...)...)
			if err != nil {
				t.Fatal(err)
			}
			lines := 0
			sc := bufio.NewScanner(strings.NewReader(out))
			for sc.Scan() {
				var r audit.Record
				if err := json.Unmarshal(sc.Bytes(), &r); err != nil || r.Seq != int64(lines+1) || r.Hash == "" {
					t.Fatalf("export line %d: %v %s", lines+1, err, sc.Text())
				}
				lines++
			}
			if lines != 25 {
				t.Errorf("export: %d lines", lines)
			}

			// Tamper: edit one record's owner.
			st, err := store.Open(context.Background(), cfg)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := st.DB.Exec(`UPDATE audit_records SET owner_name = 'mallory' WHERE seq = 13`); err != nil {
				t.Fatal(err)
			}
			st.Close()
			out, _, err = runAuditCmd(append([]string{"verify"}, flags...)...)
			if !errors.Is(err, audit.ErrChainBroken) {
				t.Fatalf("verify edited store = %v, want a broken chain\n%s", err, out)
			}
			for _, s := range []string{err.Error(), out} {
				if !strings.Contains(s, "seq 13 (request_id req-013)") {
					t.Errorf("does not name the edited record: %s", s)
				}
			}
		})
	}
}

func TestAuditVerifyCommandFindsDevLayoutAndRefusesWhatIsMissing(t *testing.T) {
	isolateAuditEnv(t)
	devDir := t.TempDir()
	gw := filepath.Join(devDir, "gateway") // `sas-server dev` puts the gateway's store here
	seedAuditStore(t, gw, store.Config{DataDir: gw}, 3)
	if out, _, err := runAuditCmd("verify", "--data-dir", devDir); err != nil || !strings.Contains(out, "3 records") {
		t.Errorf("verify dev data dir: %v\n%s", err, out)
	}

	empty := t.TempDir()
	if _, _, err := runAuditCmd("verify", "--data-dir", empty, "--verify-key", audit.DefaultKeyPaths(gw).Verify); err == nil || !strings.Contains(err.Error(), "no audit store") {
		t.Errorf("verify empty dir = %v", err)
	}
	if _, err := os.Stat(filepath.Join(empty, store.SQLiteFile)); err == nil {
		t.Error("verify created a database")
	}
	if _, _, err := runAuditCmd("verify", "--data-dir", empty); err == nil || !strings.Contains(err.Error(), "verify key") {
		t.Errorf("verify without keys = %v", err)
	}
	if _, _, err := runAuditCmd("export", "--data-dir", gw, "--format", "csv"); err == nil {
		t.Error("export csv succeeded")
	}
	if _, _, err := runAuditCmd("frobnicate"); err == nil {
		t.Error("unknown subcommand succeeded")
	}
	if _, _, err := runAuditCmd(); err == nil {
		t.Error("no subcommand succeeded")
	}
}
