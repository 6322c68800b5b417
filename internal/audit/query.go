package audit

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/sas-platform/terraform-provider-sas/internal/store"
)

// Query limits.
const (
	DefaultQueryLimit = 100
	MaxQueryLimit     = 1000
)

// Filter selects records for Query; zero fields match everything. Results
// are in seq order.
type Filter struct {
	Owner        string    // owner entity id or owner name
	RequestID    string    //
	AccessorHMAC string    // AuditChain.HashAccessor of a token accessor
	Since        time.Time // records at or after
	Until        time.Time // records before
	Decision     Decision  //
	After        int64     // cursor: records with seq greater than this
	Limit        int       // page size: DefaultQueryLimit when 0, at most MaxQueryLimit
}

// Query returns one page of records matching f and the cursor for the next
// page (pass it as Filter.After), 0 when this is the last page.
func (c *AuditChain) Query(ctx context.Context, f Filter) ([]Record, int64, error) {
	return Query(ctx, c.st, f)
}

// Query is AuditChain.Query for readers that hold no keys (auditors, the CLI).
func Query(ctx context.Context, st *store.Store, f Filter) ([]Record, int64, error) {
	limit := f.Limit
	switch {
	case limit == 0:
		limit = DefaultQueryLimit
	case limit < 0:
		return nil, 0, fmt.Errorf("audit: query limit %d is negative", limit)
	case limit > MaxQueryLimit:
		limit = MaxQueryLimit
	}
	if f.Decision != "" && !f.Decision.Valid() {
		return nil, 0, fmt.Errorf("audit: query: decision %q is not allow, deny, refused or error", f.Decision)
	}
	var where []string
	var args []any
	arg := func(v any) string {
		args = append(args, v)
		return "$" + strconv.Itoa(len(args))
	}
	where = append(where, "seq > "+arg(f.After))
	if f.Owner != "" {
		p := arg(f.Owner)
		where = append(where, "(owner_entity_id = "+p+" OR owner_name = "+p+")")
	}
	if f.RequestID != "" {
		where = append(where, "request_id = "+arg(f.RequestID))
	}
	if f.AccessorHMAC != "" {
		where = append(where, "token_accessor_hmac = "+arg(f.AccessorHMAC))
	}
	if !f.Since.IsZero() {
		where = append(where, "ts_ns >= "+arg(f.Since.UnixNano()))
	}
	if !f.Until.IsZero() {
		where = append(where, "ts_ns < "+arg(f.Until.UnixNano()))
	}
	if f.Decision != "" {
		where = append(where, "decision = "+arg(string(f.Decision)))
	}
	q := `SELECT ` + columns + ` FROM audit_records WHERE ` + strings.Join(where, " AND ") +
		` ORDER BY seq LIMIT ` + arg(limit+1)
	rows, err := st.DB.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, 0, fmt.Errorf("audit: query: %w", err)
	}
	defer rows.Close()
	var out []Record
	for rows.Next() {
		var w row
		if err := rows.Scan(w.scanArgs()...); err != nil {
			return nil, 0, fmt.Errorf("audit: query: %w", err)
		}
		r, err := w.record()
		if err != nil {
			return nil, 0, err
		}
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, 0, fmt.Errorf("audit: query: %w", err)
	}
	var next int64
	if len(out) > limit {
		out = out[:limit]
		next = out[limit-1].Seq
	}
	return out, next, nil
}

// Export writes every record, in seq order, to w. The only format is
// "jsonl": one Record JSON object per line (Record.MarshalJSON; the same
// members as the canonical encoding minus "v", plus "hash").
func (c *AuditChain) Export(ctx context.Context, w io.Writer, format string) error {
	return Export(ctx, c.st, w, format)
}

// Export is AuditChain.Export for readers that hold no keys.
func Export(ctx context.Context, st *store.Store, w io.Writer, format string) error {
	if format != "jsonl" {
		return fmt.Errorf("audit: export format %q is not supported (use jsonl)", format)
	}
	bw := bufio.NewWriter(w)
	enc := json.NewEncoder(bw)
	enc.SetEscapeHTML(false)
	var after int64
	for {
		page, next, err := Query(ctx, st, Filter{After: after, Limit: MaxQueryLimit})
		if err != nil {
			return err
		}
		for _, r := range page {
			if err := enc.Encode(r); err != nil {
				return fmt.Errorf("audit: export: %w", err)
			}
		}
		if next == 0 {
			break
		}
		after = next
	}
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("audit: export: %w", err)
	}
	return nil
}
