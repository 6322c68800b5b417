package policy

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// testKeyPair returns PEM private and public keys for alg.
func testKeyPair(t testing.TB, alg string) (private, public string) {
	t.Helper()
	var key crypto.Signer
	var err error
	switch alg {
	case "ES256":
		key, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case "RS256", "PS256":
		key, err = rsa.GenerateKey(rand.Reader, 2048)
	default:
		t.Fatalf("no test key for %s", alg)
	}
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	pub, err := x509.MarshalPKIXPublicKey(key.Public())
	if err != nil {
		t.Fatal(err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})),
		string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pub}))
}

func TestSignedBundles(t *testing.T) {
	for _, alg := range []string{"ES256", "RS256"} {
		t.Run(alg, func(t *testing.T) {
			private, public := testKeyPair(t, alg)
			keys := []VerificationKey{{ID: "sas-policy-2025", Algorithm: alg, PublicKey: public}}
			dir := t.TempDir()
			sbx := copyBundle(t, "fedramp_sbx_default", dir)
			if err := Sign(sbx, SigningKey{ID: "sas-policy-2025", Algorithm: alg, PrivateKey: private}); err != nil {
				t.Fatal(err)
			}

			e := load(t, Options{Dir: dir, VerificationKeys: keys})
			info, _ := e.Bundle("fedramp_sbx_default")
			if info.Error != "" || !info.Signed {
				t.Fatalf("signed bundle: %+v", info)
			}
			if allow, _ := evalSbx(t, e); !allow {
				t.Fatal("signed bundle denied")
			}

			// Tampering with a signed file is refused.
			data := filepath.Join(sbx, "data.json")
			orig, _ := os.ReadFile(data)
			tampered := strings.Replace(string(orig), `"max_vcpus": 2`, `"max_vcpus": 64`, 1)
			if err := os.WriteFile(data, []byte(tampered), 0o644); err != nil {
				t.Fatal(err)
			}
			refused(t, e, "digest mismatch")
			if err := os.WriteFile(data, orig, 0o644); err != nil {
				t.Fatal(err)
			}
			if err := e.Reload(context.Background()); err != nil {
				t.Fatal(err)
			}
			if allow, _ := evalSbx(t, e); !allow {
				t.Fatal("restored bundle denied")
			}

			// So is a file the signature does not cover.
			extra := filepath.Join(sbx, "backdoor.rego")
			if err := os.WriteFile(extra, []byte("package sas.policy\n\nbackdoor := true\n"), 0o644); err != nil {
				t.Fatal(err)
			}
			refused(t, e, "not included in bundle signature")
			if err := os.Remove(extra); err != nil {
				t.Fatal(err)
			}

			// And a signed tarball loads too.
			tarDir := t.TempDir()
			tarBundle(t, sbx, filepath.Join(tarDir, "fedramp_sbx_default.tar.gz"))
			te := load(t, Options{Dir: tarDir, VerificationKeys: keys})
			if allow, _ := evalSbx(t, te); !allow {
				info, _ := te.Bundle("fedramp_sbx_default")
				t.Fatalf("signed tarball denied: %s", info.Error)
			}
		})
	}
}

// refused reloads e and checks the sbx bundle now denies with a
// policy_error mentioning want.
func refused(t *testing.T, e *Evaluator, want string) {
	t.Helper()
	if err := e.Reload(context.Background()); err != nil {
		t.Fatal(err)
	}
	d, _ := e.Evaluate(context.Background(), "fedramp_sbx_default", ipInput("fedramp_sbx_default", "sbx", sbxIPRequest()))
	v := mustDeny(t, d, RulePolicyError)
	if !strings.Contains(v.Message, want) {
		t.Errorf("policy_error = %q, want it to mention %q", v.Message, want)
	}
}

func TestUnsignedBundleRefusedWhenKeysConfigured(t *testing.T) {
	_, public := testKeyPair(t, "ES256")
	dir := t.TempDir()
	copyBundle(t, "fedramp_sbx_default", dir)
	e := load(t, Options{Dir: dir, VerificationKeys: []VerificationKey{{ID: "k1", Algorithm: "ES256", PublicKey: public}}})
	d, _ := e.Evaluate(context.Background(), "fedramp_sbx_default", ipInput("fedramp_sbx_default", "sbx", sbxIPRequest()))
	v := mustDeny(t, d, RulePolicyError)
	if !strings.Contains(v.Message, ".signatures.json") {
		t.Errorf("message = %q", v.Message)
	}
}

func TestBundleSignedByAnotherKeyRefused(t *testing.T) {
	private, _ := testKeyPair(t, "ES256")
	_, otherPublic := testKeyPair(t, "ES256")
	dir := t.TempDir()
	sbx := copyBundle(t, "fedramp_sbx_default", dir)
	if err := Sign(sbx, SigningKey{ID: "k1", Algorithm: "ES256", PrivateKey: private}); err != nil {
		t.Fatal(err)
	}
	e := load(t, Options{Dir: dir, VerificationKeys: []VerificationKey{{ID: "k1", Algorithm: "ES256", PublicKey: otherPublic}}})
	d, _ := e.Evaluate(context.Background(), "fedramp_sbx_default", ipInput("fedramp_sbx_default", "sbx", sbxIPRequest()))
	v := mustDeny(t, d, RulePolicyError)
	if !strings.Contains(v.Message, "verify") {
		t.Errorf("message = %q", v.Message)
	}
}

func TestVerificationKeysValidated(t *testing.T) {
	dir := t.TempDir()
	copyBundle(t, "fedramp_sbx_default", dir)
	_, public := testKeyPair(t, "ES256")
	for name, keys := range map[string][]VerificationKey{
		"symmetric":   {{ID: "k", Algorithm: "HS256", PublicKey: "secret"}},
		"not PEM":     {{ID: "k", Algorithm: "ES256", PublicKey: "not a key"}},
		"no id":       {{Algorithm: "ES256", PublicKey: public}},
		"unknown alg": {{ID: "k", Algorithm: "XX999", PublicKey: public}},
		"duplicate":   {{ID: "k", Algorithm: "ES256", PublicKey: public}, {ID: "k", Algorithm: "ES256", PublicKey: public}},
	} {
		if _, err := Load(context.Background(), Options{Dir: dir, VerificationKeys: keys}); err == nil {
			t.Errorf("%s: want an error", name)
		}
	}
}
