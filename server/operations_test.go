package server_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/sas-platform/terraform-provider-sas/internal/api"
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
