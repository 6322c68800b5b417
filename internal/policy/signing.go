package policy

import (
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/bundle"
	opakeys "github.com/open-policy-agent/opa/v1/keys"
)

// VerificationKey is a public key that may sign bundles (OPA bundle
// signing: a JWT in .signatures.json listing every file's SHA-256).
type VerificationKey struct {
	// ID is the key id: the JWT "kid" header names the key that signed a
	// bundle. With a single key configured, every bundle must be signed by
	// it whatever its kid says.
	ID string
	// Algorithm is RS256/384/512, PS256/384/512 or ES256/384/512.
	// Symmetric (HS*) algorithms are refused: whoever can verify could sign.
	Algorithm string
	// PublicKey is the PEM-encoded public key (or certificate).
	PublicKey string
}

// SigningKey signs a bundle directory (see Sign).
type SigningKey struct {
	ID         string
	Algorithm  string
	PrivateKey string // PEM (PKCS#1, PKCS#8 or SEC 1)
}

// verification is the validated form of Options.VerificationKeys.
type verification struct {
	keys  map[string]*bundle.KeyConfig
	keyID string
}

func newVerification(keys []VerificationKey) (*verification, error) {
	if len(keys) == 0 {
		return nil, nil
	}
	v := &verification{keys: map[string]*bundle.KeyConfig{}}
	for i, k := range keys {
		if k.ID == "" {
			return nil, fmt.Errorf("policy: verification key %d: id is required", i)
		}
		if _, dup := v.keys[k.ID]; dup {
			return nil, fmt.Errorf("policy: verification key %q is configured twice", k.ID)
		}
		alg := strings.ToUpper(k.Algorithm)
		if alg == "" {
			alg = "RS256"
		}
		if strings.HasPrefix(alg, "HS") {
			return nil, fmt.Errorf("policy: verification key %q: %s is symmetric; use a public-key algorithm (RS256, PS256, ES256, ...)", k.ID, alg)
		}
		if !opakeys.IsSupportedAlgorithm(alg) {
			return nil, fmt.Errorf("policy: verification key %q: unsupported algorithm %q", k.ID, k.Algorithm)
		}
		if err := checkPublicKey(k.PublicKey); err != nil {
			return nil, fmt.Errorf("policy: verification key %q: %w", k.ID, err)
		}
		v.keys[k.ID] = &bundle.KeyConfig{Key: k.PublicKey, Algorithm: alg}
	}
	if len(keys) == 1 {
		v.keyID = keys[0].ID
	}
	return v, nil
}

// checkPublicKey fails unless pemKey is a PEM public key or certificate.
func checkPublicKey(pemKey string) error {
	block, _ := pem.Decode([]byte(pemKey))
	if block == nil {
		return errors.New("public key is not PEM")
	}
	var err error
	switch block.Type {
	case "PUBLIC KEY":
		_, err = x509.ParsePKIXPublicKey(block.Bytes)
	case "RSA PUBLIC KEY":
		_, err = x509.ParsePKCS1PublicKey(block.Bytes)
	case "CERTIFICATE":
		_, err = x509.ParseCertificate(block.Bytes)
	default:
		err = fmt.Errorf("PEM block %q is not a public key or certificate", block.Type)
	}
	return err
}

// config returns a fresh OPA verification config (signature required).
func (v *verification) config() *bundle.VerificationConfig {
	return bundle.NewVerificationConfig(v.keys, v.keyID, "", nil)
}

// Sign writes dir/.signatures.json: an OPA bundle signature over every file
// of the bundle directory, made with key. It is what `opa sign --bundle`
// produces, so either tool can sign bundles for the gateway.
func Sign(dir string, key SigningKey) error {
	if key.PrivateKey == "" {
		return errors.New("policy: sign: no private key")
	}
	// Read without verification; an existing signature is replaced.
	loader := bundle.NewDirectoryLoader(dir).WithFilter(func(abspath string, _ os.FileInfo, _ int) bool {
		return filepath.Base(abspath) == ".signatures.json"
	})
	b, err := bundle.NewCustomReader(loader).
		WithRegoVersion(ast.RegoV1).
		WithSkipBundleVerification(true).
		Read()
	if err != nil {
		return fmt.Errorf("policy: sign %s: %w", dir, err)
	}
	alg := key.Algorithm
	if alg == "" {
		alg = "RS256"
	}
	if err := b.GenerateSignature(bundle.NewSigningConfig(key.PrivateKey, alg, ""), key.ID, true); err != nil {
		return fmt.Errorf("policy: sign %s: %w", dir, err)
	}
	out, err := json.MarshalIndent(b.Signatures, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, ".signatures.json"), append(out, '\n'), 0o644)
}
