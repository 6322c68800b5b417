package provider

import (
	"context"

	"github.com/hashicorp/terraform-plugin-log/tflog"
)

// tflogAdapter lets the gateway client's retry logging reach tflog, where
// the token is masked (see Configure).
type tflogAdapter struct{ ctx context.Context }

func fields(kv []any) map[string]any {
	m := make(map[string]any, len(kv)/2)
	for i := 0; i+1 < len(kv); i += 2 {
		if k, ok := kv[i].(string); ok {
			m[k] = kv[i+1]
		}
	}
	return m
}

func (a tflogAdapter) Error(msg string, kv ...any) { tflog.Error(a.ctx, msg, fields(kv)) }
func (a tflogAdapter) Info(msg string, kv ...any)  { tflog.Info(a.ctx, msg, fields(kv)) }
func (a tflogAdapter) Debug(msg string, kv ...any) { tflog.Debug(a.ctx, msg, fields(kv)) }
func (a tflogAdapter) Warn(msg string, kv ...any)  { tflog.Warn(a.ctx, msg, fields(kv)) }
