package audit

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// Key files. The gateway keeps its audit keys in <data-dir>/keys/ (dir mode
// 0700); `sas-server dev` generates them there (EnsureKeys), and
// `sas-server audit verify` reads them from there unless told otherwise.
//
//	audit-signing.pem  Ed25519 private key, PEM block "PRIVATE KEY" holding
//	                   PKCS#8 DER (what `openssl genpkey -algorithm ed25519`
//	                   writes). Mode 0600. Signs checkpoints.
//	audit-verify.pem   Ed25519 public key, PEM block "PUBLIC KEY" holding
//	                   PKIX DER (`openssl pkey -pubout`). Mode 0644. Checks
//	                   checkpoints; keep a copy off the gateway's host.
//	audit-hmac.key     the accessor HMAC key, at least 32 bytes: hex (what
//	                   EnsureKeys writes: 64 hex digits and a newline),
//	                   else standard or URL base64, else the raw bytes —
//	                   tried in that order after trimming white space.
//	                   Mode 0600.
const (
	KeysDirName        = "keys"
	SigningKeyFileName = "audit-signing.pem"
	VerifyKeyFileName  = "audit-verify.pem"
	HMACKeyFileName    = "audit-hmac.key"
)

// MinHMACKeyLen is the shortest accessor HMAC key accepted.
const MinHMACKeyLen = 32

// KeyPaths says where the audit key files are.
type KeyPaths struct {
	Signing string // Ed25519 private key (PKCS#8 PEM)
	Verify  string // Ed25519 public key (PKIX PEM)
	HMAC    string // accessor HMAC key
}

// DefaultKeyPaths are the key files inside a gateway data dir.
func DefaultKeyPaths(dataDir string) KeyPaths {
	dir := filepath.Join(dataDir, KeysDirName)
	return KeyPaths{
		Signing: filepath.Join(dir, SigningKeyFileName),
		Verify:  filepath.Join(dir, VerifyKeyFileName),
		HMAC:    filepath.Join(dir, HMACKeyFileName),
	}
}

// EnsureKeys creates whichever key files in p are missing, for development
// (`sas-server dev`): a new signing key with its verify key, a new HMAC
// key. It never overwrites a file, and refuses to create a signing key
// when a verify key already exists without one (checkpoints signed by a
// new key would not verify against the published one).
func EnsureKeys(p KeyPaths) error {
	for _, f := range []string{p.Signing, p.Verify, p.HMAC} {
		if err := os.MkdirAll(filepath.Dir(f), 0o700); err != nil {
			return fmt.Errorf("audit keys: %w", err)
		}
	}
	signingExists, err := exists(p.Signing)
	if err != nil {
		return err
	}
	verifyExists, err := exists(p.Verify)
	if err != nil {
		return err
	}
	switch {
	case !signingExists && verifyExists:
		return fmt.Errorf("audit keys: %s exists but its signing key %s does not; restore the signing key or remove the verify key", p.Verify, p.Signing)
	case !signingExists:
		_, priv, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			return err
		}
		if err := writeNew(p.Signing, EncodeSigningKey(priv), 0o600); err != nil {
			return err
		}
		if err := writeNew(p.Verify, EncodeVerifyKey(priv.Public().(ed25519.PublicKey)), 0o644); err != nil {
			return err
		}
	case !verifyExists:
		priv, err := LoadSigningKey(p.Signing)
		if err != nil {
			return err
		}
		if err := writeNew(p.Verify, EncodeVerifyKey(priv.Public().(ed25519.PublicKey)), 0o644); err != nil {
			return err
		}
	}
	hmacExists, err := exists(p.HMAC)
	if err != nil {
		return err
	}
	if !hmacExists {
		key := make([]byte, MinHMACKeyLen)
		if _, err := rand.Read(key); err != nil {
			return err
		}
		if err := writeNew(p.HMAC, []byte(hex.EncodeToString(key)+"\n"), 0o600); err != nil {
			return err
		}
	}
	return nil
}

// LoadOptions reads the signing and HMAC keys; CheckpointEvery is left at
// its default.
func LoadOptions(p KeyPaths) (Options, error) {
	sk, err := LoadSigningKey(p.Signing)
	if err != nil {
		return Options{}, err
	}
	hk, err := LoadHMACKey(p.HMAC)
	if err != nil {
		return Options{}, err
	}
	return Options{HMACKey: hk, SigningKey: sk}, nil
}

// EncodeSigningKey is the PEM PKCS#8 form LoadSigningKey reads.
func EncodeSigningKey(k ed25519.PrivateKey) []byte {
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		panic(err) // cannot fail for a well-formed ed25519 key
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
}

// EncodeVerifyKey is the PEM PKIX form LoadVerifyKey reads.
func EncodeVerifyKey(k ed25519.PublicKey) []byte {
	der, err := x509.MarshalPKIXPublicKey(k)
	if err != nil {
		panic(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
}

// LoadSigningKey reads an Ed25519 private key from a PEM "PRIVATE KEY"
// (PKCS#8) file.
func LoadSigningKey(path string) (ed25519.PrivateKey, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("audit signing key: %w", err)
	}
	k, err := ParseSigningKey(b)
	if err != nil {
		return nil, fmt.Errorf("audit signing key %s: %w", path, err)
	}
	return k, nil
}

// ParseSigningKey parses PEM PKCS#8 Ed25519.
func ParseSigningKey(b []byte) (ed25519.PrivateKey, error) {
	block, _ := pem.Decode(b)
	if block == nil || block.Type != "PRIVATE KEY" {
		return nil, errors.New(`want a PEM "PRIVATE KEY" block (PKCS#8 Ed25519)`)
	}
	k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return nil, err
	}
	ek, ok := k.(ed25519.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("key is %T, want Ed25519", k)
	}
	return ek, nil
}

// LoadVerifyKey reads an Ed25519 public key from a PEM "PUBLIC KEY" (PKIX)
// file; given the PEM private key instead, it derives the public key.
func LoadVerifyKey(path string) (ed25519.PublicKey, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("audit verify key: %w", err)
	}
	k, err := ParseVerifyKey(b)
	if err != nil {
		return nil, fmt.Errorf("audit verify key %s: %w", path, err)
	}
	return k, nil
}

// ParseVerifyKey parses PEM PKIX Ed25519 (or PKCS#8, deriving the public key).
func ParseVerifyKey(b []byte) (ed25519.PublicKey, error) {
	block, _ := pem.Decode(b)
	if block == nil {
		return nil, errors.New(`want a PEM "PUBLIC KEY" block (PKIX Ed25519)`)
	}
	switch block.Type {
	case "PUBLIC KEY":
		k, err := x509.ParsePKIXPublicKey(block.Bytes)
		if err != nil {
			return nil, err
		}
		ek, ok := k.(ed25519.PublicKey)
		if !ok {
			return nil, fmt.Errorf("key is %T, want Ed25519", k)
		}
		return ek, nil
	case "PRIVATE KEY":
		sk, err := ParseSigningKey(b)
		if err != nil {
			return nil, err
		}
		return sk.Public().(ed25519.PublicKey), nil
	}
	return nil, fmt.Errorf(`PEM block %q, want "PUBLIC KEY"`, block.Type)
}

// LoadHMACKey reads the accessor HMAC key (hex, base64 or raw; see above).
func LoadHMACKey(path string) ([]byte, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("audit HMAC key: %w", err)
	}
	k, err := ParseHMACKey(b)
	if err != nil {
		return nil, fmt.Errorf("audit HMAC key %s: %w", path, err)
	}
	return k, nil
}

// ParseHMACKey decodes hex, then base64 (standard, then URL-safe, padded
// or not), then takes the raw bytes; the key must be ≥ MinHMACKeyLen bytes.
func ParseHMACKey(b []byte) ([]byte, error) {
	s := strings.TrimSpace(string(b))
	if k, err := hex.DecodeString(s); err == nil && len(k) >= MinHMACKeyLen {
		return k, nil
	}
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		if k, err := enc.DecodeString(s); err == nil && len(k) >= MinHMACKeyLen {
			return k, nil
		}
	}
	if len(b) >= MinHMACKeyLen {
		return append([]byte(nil), b...), nil
	}
	return nil, fmt.Errorf("key too short: need at least %d bytes", MinHMACKeyLen)
}

// KeyID names a verify key in checkpoints: the first 16 hex digits of the
// SHA-256 of the raw 32-byte public key.
func KeyID(k ed25519.PublicKey) string {
	sum := sha256.Sum256(k)
	return hex.EncodeToString(sum[:8])
}

func exists(path string) (bool, error) {
	_, err := os.Stat(path)
	if err == nil {
		return true, nil
	}
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	return false, fmt.Errorf("audit keys: %w", err)
}

func writeNew(path string, b []byte, mode os.FileMode) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode)
	if err != nil {
		return fmt.Errorf("audit keys: %w", err)
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		return fmt.Errorf("audit keys: %w", err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("audit keys: %w", err)
	}
	return f.Close()
}
