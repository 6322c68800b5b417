package operations

import (
	"context"
	"time"

	"github.com/sas-platform/terraform-provider-sas/internal/api"
)

// AppendLog keeps what a step of operation id printed (already redacted).
func (b *Book) AppendLog(ctx context.Context, id string, attempt int, text string) error {
	_, err := b.st.DB.ExecContext(ctx, `INSERT INTO operation_logs (operation_id, attempt, created_ns, text) VALUES ($1, $2, $3, $4)`,
		id, attempt, time.Now().UnixNano(), text)
	return err
}

// Log is the owner's operation's log, oldest step first.
func (b *Book) Log(ctx context.Context, id, ownerEntityID string) (api.OperationLog, error) {
	if _, err := b.Get(ctx, id, ownerEntityID); err != nil {
		return api.OperationLog{}, err
	}
	rows, err := b.st.DB.QueryContext(ctx, `SELECT attempt, created_ns, text FROM operation_logs WHERE operation_id = $1 ORDER BY created_ns`, id)
	if err != nil {
		return api.OperationLog{}, err
	}
	defer rows.Close()
	out := api.OperationLog{OperationID: id, Steps: []api.OperationLogStep{}}
	for rows.Next() {
		var s api.OperationLogStep
		var ns int64
		if err := rows.Scan(&s.Attempt, &ns, &s.Text); err != nil {
			return out, err
		}
		s.At = time.Unix(0, ns).UTC()
		out.Steps = append(out.Steps, s)
	}
	return out, rows.Err()
}
