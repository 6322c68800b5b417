// Package simtls gives the simulators the TLS an appliance serves: a
// private certificate authority and a server certificate for the loopback
// names, made fresh at start. In development the CA is written to the data
// directory so clients trust exactly it (and nothing is ever run with
// certificate checks switched off).
package simtls

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"time"

	"github.com/sas-platform/terraform-provider-sas/internal/atomicfile"
)

// Validity is how long the certificates SelfSigned makes are good for.
const Validity = 365 * 24 * time.Hour

// Bundle is a server TLS configuration and the CA that signed it.
type Bundle struct {
	// ServerConfig serves the server certificate (TLS 1.2 or later).
	ServerConfig *tls.Config
	// CAPEM is the CA certificate, PEM-encoded: the one root a client needs.
	CAPEM []byte
}

// SelfSigned makes an ECDSA P-256 CA and a server certificate it signs for
// 127.0.0.1, ::1 and localhost plus hosts (names or IP addresses), valid
// for a year. The CA's key is dropped once the server certificate is
// signed, so nothing else can ever be issued under it.
func SelfSigned(hosts ...string) (*Bundle, error) {
	now := time.Now()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("simtls: CA key: %w", err)
	}
	caTmpl := &x509.Certificate{
		SerialNumber:          serial(),
		Subject:               pkix.Name{CommonName: "sas simulator CA", Organization: []string{"sas dev stack"}},
		NotBefore:             now.Add(-5 * time.Minute), // tolerate small clock skew
		NotAfter:              now.Add(Validity),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		return nil, fmt.Errorf("simtls: CA certificate: %w", err)
	}
	ca, err := x509.ParseCertificate(caDER)
	if err != nil {
		return nil, fmt.Errorf("simtls: CA certificate: %w", err)
	}

	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("simtls: server key: %w", err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial(),
		Subject:      pkix.Name{CommonName: "localhost", Organization: []string{"sas dev stack"}},
		NotBefore:    now.Add(-5 * time.Minute),
		NotAfter:     now.Add(Validity),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
		DNSNames:     []string{"localhost"},
	}
	for _, h := range hosts {
		if h == "" {
			continue
		}
		if ip := net.ParseIP(h); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		return nil, fmt.Errorf("simtls: server certificate: %w", err)
	}
	return &Bundle{
		ServerConfig: &tls.Config{
			MinVersion:   tls.VersionTLS12,
			Certificates: []tls.Certificate{{Certificate: [][]byte{der, caDER}, PrivateKey: key}},
		},
		CAPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}),
	}, nil
}

// WriteCA writes the CA certificate to path (mode 0644: it is public),
// replacing the file atomically so a client never reads half of it.
func (b *Bundle) WriteCA(path string) error {
	if b == nil || len(b.CAPEM) == 0 {
		return errors.New("simtls: no CA to write")
	}
	if err := atomicfile.Write(path, b.CAPEM, 0o644); err != nil { //nolint:gosec // a CA certificate is public
		return fmt.Errorf("simtls: %w", err)
	}
	return nil
}

// serial is a random 128-bit certificate serial number, as RFC 5280 asks
// (positive, unpredictable).
func serial() *big.Int {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		panic(err) // crypto/rand does not fail on supported platforms
	}
	return n.Add(n, big.NewInt(1))
}
