package operations

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/sas-platform/terraform-provider-sas/internal/store"
)

// ErrResourceNotFound means no such resource for this owner.
var ErrResourceNotFound = errors.New("resource not found")

// Resource is something an operation created and sas now manages.
type Resource struct {
	ID            string
	Kind          string
	OwnerEntityID string
	Owner         string
	Bundle        string
	Environment   string
	Spec          json.RawMessage // the create request, as decoded
	Attributes    map[string]any  // what the downstream assigned (ip, ref, tags…)
	OperationID   string
	NaturalKey    string // e.g. "default/web-01.sbx.example.internal"; unique per kind
	CreatedAt     time.Time
	UpdatedAt     time.Time
}

// PutResource inserts or replaces a resource.
func (b *Book) PutResource(ctx context.Context, r Resource) error {
	attrs, err := json.Marshal(r.Attributes)
	if err != nil {
		return err
	}
	now := time.Now().UnixNano()
	return b.st.WriteTx(ctx, func(ctx context.Context, q store.Querier) error {
		res, err := q.ExecContext(ctx, `UPDATE resources SET spec_json = $1, attributes_json = $2, updated_ns = $3 WHERE id = $4`,
			string(r.Spec), string(attrs), now, r.ID)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n > 0 {
			return nil
		}
		_, err = q.ExecContext(ctx, `INSERT INTO resources (id, kind, owner_entity_id, owner_name, bundle, environment, spec_json, attributes_json, operation_id, natural_key, created_ns, updated_ns)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $11)`,
			r.ID, r.Kind, r.OwnerEntityID, r.Owner, r.Bundle, r.Environment, string(r.Spec), string(attrs), r.OperationID, r.NaturalKey, now)
		return err
	})
}

// DeleteResource forgets a resource.
func (b *Book) DeleteResource(ctx context.Context, id string) error {
	_, err := b.st.DB.ExecContext(ctx, `DELETE FROM resources WHERE id = $1`, id)
	return err
}

const resourceColumns = `id, kind, owner_entity_id, owner_name, bundle, environment, spec_json, attributes_json, operation_id, natural_key, created_ns, updated_ns`

// GetResource returns the resource of kind with id owned by the Vault
// entity ownerEntityID. The entity id alone is the owner: names change and
// are chosen by people, ids are neither.
func (b *Book) GetResource(ctx context.Context, kind, id, ownerEntityID string) (Resource, error) {
	if ownerEntityID == "" {
		return Resource{}, ErrResourceNotFound
	}
	row := b.st.DB.QueryRowContext(ctx, `SELECT `+resourceColumns+` FROM resources WHERE id = $1 AND kind = $2 AND owner_entity_id = $3`,
		id, kind, ownerEntityID)
	r, err := scanResource(row.Scan)
	if errors.Is(err, sql.ErrNoRows) {
		return r, ErrResourceNotFound
	}
	return r, err
}

// ListResources returns the resources of kind owned by the Vault entity ownerEntityID.
func (b *Book) ListResources(ctx context.Context, kind, ownerEntityID string) ([]Resource, error) {
	if ownerEntityID == "" {
		return []Resource{}, nil
	}
	rows, err := b.st.DB.QueryContext(ctx, `SELECT `+resourceColumns+` FROM resources WHERE kind = $1 AND owner_entity_id = $2 ORDER BY created_ns`,
		kind, ownerEntityID)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := []Resource{}
	for rows.Next() {
		r, err := scanResource(rows.Scan)
		if err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, rows.Err()
}

func scanResource(scan func(...any) error) (Resource, error) {
	var r Resource
	var spec, attrs string
	var created, updated int64
	if err := scan(&r.ID, &r.Kind, &r.OwnerEntityID, &r.Owner, &r.Bundle, &r.Environment, &spec, &attrs, &r.OperationID, &r.NaturalKey, &created, &updated); err != nil {
		return r, err
	}
	r.Spec = json.RawMessage(spec)
	if err := json.Unmarshal([]byte(attrs), &r.Attributes); err != nil {
		return r, fmt.Errorf("resource %s attributes: %w", r.ID, err)
	}
	r.CreatedAt, r.UpdatedAt = time.Unix(0, created).UTC(), time.Unix(0, updated).UTC()
	return r, nil
}
