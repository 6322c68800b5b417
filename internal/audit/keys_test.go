package audit_test

import (
	"bytes"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sas-platform/terraform-provider-sas/internal/audit"
)

func TestEnsureKeysCreatesLoadableKeysOnce(t *testing.T) {
	dataDir := t.TempDir()
	p := audit.DefaultKeyPaths(dataDir)
	if p.Signing != filepath.Join(dataDir, "keys", "audit-signing.pem") ||
		p.Verify != filepath.Join(dataDir, "keys", "audit-verify.pem") ||
		p.HMAC != filepath.Join(dataDir, "keys", "audit-hmac.key") {
		t.Fatalf("default paths %+v", p)
	}
	if err := audit.EnsureKeys(p); err != nil {
		t.Fatal(err)
	}
	for _, path := range []string{p.Signing, p.HMAC, filepath.Dir(p.HMAC)} {
		fi, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm()&0o077 != 0 {
			t.Errorf("%s: mode %v, want no group or other access", path, fi.Mode())
		}
	}
	opts, err := audit.LoadOptions(p)
	if err != nil {
		t.Fatal(err)
	}
	pub, err := audit.LoadVerifyKey(p.Verify)
	if err != nil {
		t.Fatal(err)
	}
	if !pub.Equal(opts.SigningKey.Public()) {
		t.Error("verify key does not match the signing key")
	}
	if len(opts.HMACKey) != 32 {
		t.Errorf("HMAC key is %d bytes", len(opts.HMACKey))
	}
	// A verify key file may also be the private key.
	if pub2, err := audit.LoadVerifyKey(p.Signing); err != nil || !pub2.Equal(pub) {
		t.Errorf("LoadVerifyKey(signing key) = %v, %v", pub2, err)
	}

	before := map[string][]byte{}
	for _, f := range []string{p.Signing, p.Verify, p.HMAC} {
		before[f], _ = os.ReadFile(f)
	}
	if err := audit.EnsureKeys(p); err != nil {
		t.Fatal(err)
	}
	for f, b := range before {
		if now, _ := os.ReadFile(f); !bytes.Equal(now, b) {
			t.Errorf("EnsureKeys rewrote %s", f)
		}
	}

	// A lost verify key is re-derived; a lost signing key is not replaced.
	os.Remove(p.Verify)
	if err := audit.EnsureKeys(p); err != nil {
		t.Fatal(err)
	}
	if now, _ := os.ReadFile(p.Verify); !bytes.Equal(now, before[p.Verify]) {
		t.Error("re-derived verify key differs")
	}
	os.Remove(p.Signing)
	if err := audit.EnsureKeys(p); err == nil || !strings.Contains(err.Error(), "restore the signing key") {
		t.Errorf("EnsureKeys without the signing key = %v", err)
	}
}

func TestParseHMACKeyFormats(t *testing.T) {
	key := bytes.Repeat([]byte{0xA5, 0x01}, 20) // 40 bytes
	for name, in := range map[string]string{
		"hex":        hex.EncodeToString(key) + "\n",
		"base64":     base64.StdEncoding.EncodeToString(key),
		"base64url":  base64.RawURLEncoding.EncodeToString(key) + "\n",
		"raw binary": string(key),
	} {
		got, err := audit.ParseHMACKey([]byte(in))
		if err != nil || !bytes.Equal(got, key) {
			t.Errorf("%s: %x, %v", name, got, err)
		}
	}
	if _, err := audit.ParseHMACKey([]byte("short")); err == nil {
		t.Error("short key accepted")
	}
	if _, err := audit.ParseHMACKey([]byte(hex.EncodeToString(make([]byte, 16)))); err != nil {
		// 32 hex characters are taken as 32 raw bytes, not 16 decoded ones.
		t.Errorf("32-character key refused: %v", err)
	}
}

func TestParseKeysRejectWrongTypes(t *testing.T) {
	pub, priv, _ := ed25519.GenerateKey(nil)
	if _, err := audit.ParseSigningKey(audit.EncodeVerifyKey(pub)); err == nil {
		t.Error("public key accepted as signing key")
	}
	if _, err := audit.ParseVerifyKey([]byte("not pem")); err == nil {
		t.Error("garbage accepted as verify key")
	}
	if k, err := audit.ParseSigningKey(audit.EncodeSigningKey(priv)); err != nil || !k.Equal(priv) {
		t.Errorf("round trip: %v", err)
	}
}
