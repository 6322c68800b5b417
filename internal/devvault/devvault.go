// Package devvault starts and stops the vault-dev binary (a real, in-memory
// Vault built by `make tools`) for the test environment and `sas-server dev`.
package devvault

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	vaultapi "github.com/hashicorp/vault/api"

	"github.com/sas-platform/terraform-provider-sas/internal/vault"
	"github.com/sas-platform/terraform-provider-sas/internal/vaultsetup"
)

// ModulePath is the sas Go module; FindRepoTool walks up to the directory holding it.
const ModulePath = "github.com/sas-platform/terraform-provider-sas"

// Server is a running vault-dev process.
type Server struct {
	Addr      string
	rootToken string
	cmd       *exec.Cmd
	dir       string
	exited    chan struct{}
	waitErr   error
}

// Process is the vault-dev process (tests pause it to play an outage).
func (s *Server) Process() *os.Process { return s.cmd.Process }

// RootToken is the dev server's root token. Only set-up code uses it; the
// gateway never sees it.
func (s *Server) RootToken() string { return s.rootToken }

// AdminClient returns a Vault client holding the root token.
func (s *Server) AdminClient() (*vaultapi.Client, error) {
	c, err := vault.NewClient(s.Addr)
	if err != nil {
		return nil, err
	}
	c.SetToken(s.rootToken)
	return c, nil
}

// Start runs the vault-dev binary at bin with its state under dir and
// waits until it serves. Its stderr goes to dir/vault-dev.log.
func Start(ctx context.Context, bin, dir string) (*Server, error) {
	if _, err := os.Stat(bin); err != nil {
		return nil, fmt.Errorf("vault-dev binary %s: %w (run `make tools` to build it)", bin, err)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	info := filepath.Join(dir, "vault-dev.json")
	_ = os.Remove(info)
	logf, err := os.OpenFile(filepath.Join(dir, "vault-dev.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return nil, err
	}
	defer logf.Close()

	cmd := exec.Command(bin, "-listen", "127.0.0.1:0", "-info-file", info)
	cmd.Stdout = logf
	cmd.Stderr = logf
	// Its own process group, so a Ctrl-C aimed at a test run reaches it
	// through us (we stop it) rather than racing us.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGTERM}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", bin, err)
	}
	s := &Server{cmd: cmd, dir: dir, exited: make(chan struct{})}
	go func() { s.waitErr = cmd.Wait(); close(s.exited) }()

	deadline := time.NewTimer(60 * time.Second)
	defer deadline.Stop()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			s.Stop()
			return nil, ctx.Err()
		case <-deadline.C:
			s.Stop()
			return nil, fmt.Errorf("vault-dev did not report its address within 60s; see %s", filepath.Join(dir, "vault-dev.log"))
		case <-s.exited:
			return nil, fmt.Errorf("vault-dev exited during start (%v); see %s", s.waitErr, filepath.Join(dir, "vault-dev.log"))
		case <-tick.C:
			b, err := os.ReadFile(info)
			if err != nil {
				continue
			}
			var v struct {
				Addr      string `json:"addr"`
				RootToken string `json:"root_token"`
			}
			if err := json.Unmarshal(b, &v); err != nil {
				return nil, fmt.Errorf("vault-dev info file: %w", err)
			}
			s.Addr, s.rootToken = v.Addr, v.RootToken
			return s, s.waitHealthy(ctx)
		}
	}
}

func (s *Server) waitHealthy(ctx context.Context) error {
	c, err := vault.NewClient(s.Addr)
	if err != nil {
		return err
	}
	for i := 0; i < 100; i++ {
		h, err := c.Sys().HealthWithContext(ctx)
		if err == nil && h.Initialized && !h.Sealed {
			return nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	s.Stop()
	return fmt.Errorf("vault-dev at %s never became healthy", s.Addr)
}

// Stop terminates the server and waits for it (SIGKILL after 10s).
func (s *Server) Stop() error {
	if s == nil || s.cmd.Process == nil {
		return nil
	}
	select {
	case <-s.exited:
		return nil
	default:
	}
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.exited:
	case <-time.After(10 * time.Second):
		_ = s.cmd.Process.Kill()
		<-s.exited
	}
	var ee *exec.ExitError
	if s.waitErr != nil && !errors.As(s.waitErr, &ee) {
		return s.waitErr
	}
	return nil
}

// FindRepoTool returns <repo>/bin/<name>, where <repo> is the nearest
// directory above the working directory whose go.mod declares ModulePath.
func FindRepoTool(name string) (string, error) {
	root, err := RepoRoot()
	if err != nil {
		return "", err
	}
	return filepath.Join(root, "bin", name), nil
}

// RepoRoot finds the sas repository root from the working directory.
func RepoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		b, err := os.ReadFile(filepath.Join(dir, "go.mod"))
		if err == nil && strings.HasPrefix(strings.TrimSpace(string(b)), "module "+ModulePath+"\n") {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("no go.mod for %s above the working directory", ModulePath)
		}
		dir = parent
	}
}

// StartConfigured starts vault-dev and configures it exactly as the
// operator guide configures a production Vault (vaultsetup.Plan). It
// returns the server and a fresh secret_id for the gateway's AppRole.
func StartConfigured(ctx context.Context, bin, dir string, o vaultsetup.Options) (*Server, vaultsetup.AppRoleCredentials, error) {
	s, err := Start(ctx, bin, dir)
	if err != nil {
		return nil, vaultsetup.AppRoleCredentials{}, err
	}
	fail := func(err error) (*Server, vaultsetup.AppRoleCredentials, error) {
		_ = s.Stop()
		return nil, vaultsetup.AppRoleCredentials{}, err
	}
	admin, err := s.AdminClient()
	if err != nil {
		return fail(err)
	}
	if err := vaultsetup.Apply(ctx, admin, vaultsetup.Plan(o)); err != nil {
		return fail(err)
	}
	creds, err := vaultsetup.IssueGatewayCredentials(ctx, admin)
	if err != nil {
		return fail(err)
	}
	return s, creds, nil
}
