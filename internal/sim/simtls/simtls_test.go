package simtls_test

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/sas-platform/terraform-provider-sas/internal/sim/simtls"
)

func serve(t *testing.T, cfg *tls.Config) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{
		Handler:           http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "ok") }),
		TLSConfig:         cfg,
		ReadHeaderTimeout: 5 * time.Second,
		ErrorLog:          log.New(io.Discard, "", 0), // the refused handshakes are the point
	}
	go func() { _ = srv.ServeTLS(ln, "", "") }()
	t.Cleanup(func() { _ = srv.Close() })
	return ln.Addr().String()
}

func client(pool *x509.CertPool) *http.Client {
	return &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12},
	}}
}

// TestRoundTripTrustsOnlyTheCA: a client whose pool holds only CAPEM talks
// to the server on every loopback name; a client with the system roots (or
// another bundle's CA) is refused.
func TestRoundTripTrustsOnlyTheCA(t *testing.T) {
	b, err := simtls.SelfSigned("calm.sim.internal")
	if err != nil {
		t.Fatal(err)
	}
	addr := serve(t, b.ServerConfig)
	_, port, _ := net.SplitHostPort(addr)

	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(b.CAPEM) {
		t.Fatal("CAPEM does not parse")
	}
	for _, host := range []string{"127.0.0.1", "localhost"} {
		resp, err := client(pool).Get("https://" + net.JoinHostPort(host, port) + "/")
		if err != nil {
			t.Fatalf("%s: %v", host, err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if string(body) != "ok" {
			t.Fatalf("%s: body %q", host, body)
		}
	}

	other, err := simtls.SelfSigned()
	if err != nil {
		t.Fatal(err)
	}
	wrong := x509.NewCertPool()
	wrong.AppendCertsFromPEM(other.CAPEM)
	for name, p := range map[string]*x509.CertPool{"other CA": wrong, "system roots": nil} {
		_, err := client(p).Get("https://" + addr + "/")
		var ua x509.UnknownAuthorityError
		if err == nil || !errors.As(err, &ua) {
			t.Fatalf("%s: want an unknown-authority error, got %v", name, err)
		}
	}
}

func TestCertificatesCoverTheLoopbackNamesForAYear(t *testing.T) {
	b, err := simtls.SelfSigned("10.1.2.3", "gw.example.internal")
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := x509.ParseCertificate(b.ServerConfig.Certificates[0].Certificate[0])
	if err != nil {
		t.Fatal(err)
	}
	for _, h := range []string{"127.0.0.1", "::1", "localhost", "10.1.2.3", "gw.example.internal"} {
		if err := leaf.VerifyHostname(h); err != nil {
			t.Errorf("%s: %v", h, err)
		}
	}
	if err := leaf.VerifyHostname("example.com"); err == nil {
		t.Error("certificate also valid for example.com")
	}
	if d := leaf.NotAfter.Sub(leaf.NotBefore); d < 364*24*time.Hour || d > 366*24*time.Hour {
		t.Errorf("validity %v", d)
	}
	if leaf.IsCA {
		t.Error("server certificate is a CA")
	}
}

func TestWriteCA(t *testing.T) {
	b, err := simtls.SelfSigned()
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "data", "calm-ca.pem")
	if err := b.WriteCA(path); err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o644 {
		t.Errorf("mode %v", st.Mode().Perm())
	}
	got, _ := os.ReadFile(path)
	if string(got) != string(b.CAPEM) {
		t.Error("file differs from CAPEM")
	}
	if err := (&simtls.Bundle{}).WriteCA(path); err == nil {
		t.Error("an empty bundle wrote a CA")
	}
}
