package server_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sas-platform/terraform-provider-sas/internal/api"
	"github.com/sas-platform/terraform-provider-sas/internal/devstack"
	"github.com/sas-platform/terraform-provider-sas/internal/vaultsetup"
	"github.com/sas-platform/terraform-provider-sas/server"
)

// A caller over its rate gets 429 with Retry-After; another caller is unaffected.
func TestRateLimitPerIdentity(t *testing.T) {
	gw := env.StartGateway(t, func(c *server.Config) { c.RateLimit, c.RateBurst = 1, 3 })
	greedy := env.Caller(t, vaultsetup.CallerSpec{Entity: "greedy", Bundles: []string{sbx}})
	polite := env.Caller(t, vaultsetup.CallerSpec{Entity: "polite", Bundles: []string{sbx}})
	var limited answer
	for i := 0; i < 6; i++ {
		if a := do(t, gw, call{method: "GET", path: "/v1/identity", token: greedy}); a.status == http.StatusTooManyRequests {
			limited = a
			break
		}
	}
	if limited.status != http.StatusTooManyRequests || limited.problem.Type != api.ProblemRateLimited {
		t.Fatal("never rate limited after 6 requests at 1/s with burst 3")
	}
	if s, err := strconv.Atoi(limited.header.Get("Retry-After")); err != nil || s < 1 {
		t.Errorf("Retry-After = %q", limited.header.Get("Retry-After"))
	}
	if a := do(t, gw, call{method: "GET", path: "/v1/identity", token: polite}); a.status != http.StatusOK {
		t.Fatalf("another identity was limited too: %d", a.status)
	}
}

// Serve speaks TLS when configured (plain HTTP is refused off loopback).
func TestServeTLS(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile, pool := selfSigned(t, dir)
	cfg := server.Config{
		ListenAddr: "127.0.0.1:0", TLSCertFile: certFile, TLSKeyFile: keyFile,
		VaultAddr: env.VaultAddr, VaultLogin: env.GatewayLogin, DataDir: dir,
		BundleDir: "../examples/bundles", GenerateAuditKeys: true,
	}
	gw, err := server.New(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer gw.Close()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = gw.Serve(t.Context(), ln) }()
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}, Timeout: 10 * time.Second}
	resp, err := client.Get("https://" + ln.Addr().String() + "/v1/sys/health")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 || resp.TLS == nil || resp.TLS.Version < tls.VersionTLS12 {
		t.Fatalf("status %d, tls %+v", resp.StatusCode, resp.TLS)
	}
}

func selfSigned(t *testing.T, dir string) (certFile, keyFile string, pool *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "sas-test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, IsCA: true, BasicConstraintsValid: true}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kb, _ := x509.MarshalPKCS8PrivateKey(key)
	certFile, keyFile = filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")
	_ = os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600)
	_ = os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kb}), 0o600)
	cert, _ := x509.ParseCertificate(der)
	pool = x509.NewCertPool()
	pool.AddCert(cert)
	return certFile, keyFile, pool
}

// An unfinished operation is cancelled by its owner: the cancel is audited
// before it is stored, the waiting step is woken (not left to its backoff),
// compensation runs, and the operation ends cancelled with nothing made.
func TestCancelAnUnfinishedOperation(t *testing.T) {
	sim := env.StartInfoblox(t, func(o *devstack.InfobloxOptions) { o.FailRate = 1 }) // every call 503: the create keeps retrying
	gw := env.StartGateway(t)
	tok := env.Caller(t, vaultsetup.CallerSpec{Entity: "canceller", Bundles: []string{sbx}})
	op := decodeOp(t, do(t, gw, call{method: "POST", path: "/v1/ip-reservations", token: tok, bundle: sbx, env: "sbx", body: goodReservation}))
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if cur, _ := gw.Gateway.OperationFor(op.ID); cur.Error != "" {
			break // a failed attempt: the operation now waits out its backoff
		}
		if time.Now().After(deadline) {
			t.Fatal("no failed attempt against a grid that answers 503")
		}
	}
	other := env.Caller(t, vaultsetup.CallerSpec{Entity: "bystander", Bundles: []string{sbx}})
	if a := do(t, gw, call{method: "POST", path: "/v1/operations/" + op.ID + "/cancel", token: other}); a.status != http.StatusNotFound {
		t.Fatalf("another caller cancels: %d %s", a.status, a.body)
	}
	asked := time.Now()
	a := do(t, gw, call{method: "POST", path: "/v1/operations/" + op.ID + "/cancel", token: tok})
	var got api.Operation
	if err := json.Unmarshal(a.body, &got); err != nil || a.status != http.StatusAccepted || !got.CancelRequested {
		t.Fatalf("cancel: %d %s", a.status, a.body)
	}
	// Compensation needs the grid too: it is retried until the grid answers.
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if cur, _ := gw.Gateway.OperationFor(op.ID); strings.Contains(cur.Error, "compensation failed") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the woken step did not try to compensate")
		}
	}
	sim.SetFailRate(0)
	if a := do(t, gw, call{method: "POST", path: "/v1/operations/" + op.ID + "/cancel", token: tok}); a.status != http.StatusAccepted {
		t.Fatalf("second cancel (wakes it again): %d %s", a.status, a.body)
	}
	done := waitOperation(t, gw, tok, op.ID)
	if done.State != api.OperationCancelled {
		t.Fatalf("after cancel: %+v", done)
	}
	t.Logf("cancelled %s after the request", time.Since(asked).Round(time.Millisecond))
	if n := len(sim.Hosts()); n != 0 {
		t.Fatalf("%d hosts after a cancelled create", n)
	}
	recs := auditOf(t, gw, a.problem.RequestID)
	if reqID := a.header.Get(api.HeaderRequestID); reqID != "" {
		recs = auditOf(t, gw, reqID)
	}
	if len(recs) != 1 || recs[0].Action != api.ActionCancel || recs[0].Outcome != "cancel requested" || recs[0].TargetID != op.ID {
		t.Fatalf("cancel request audited as %+v", recs)
	}
	var ended bool
	for _, r := range auditOf(t, gw, op.RequestID) {
		ended = ended || r.Outcome == "operation cancelled; compensation ran"
	}
	if !ended {
		t.Fatal("the cancellation itself is not in the trail")
	}
	if a := do(t, gw, call{method: "POST", path: "/v1/operations/" + op.ID + "/cancel", token: tok}); a.status != http.StatusConflict || a.problem.Type != api.ProblemOperationDone {
		t.Fatalf("cancel of a cancelled operation: %d %s", a.status, a.body)
	}
}
