package admission

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"

	"github.com/sas-platform/terraform-provider-sas/internal/api"
	"github.com/sas-platform/terraform-provider-sas/internal/operations"
)

// notInUse refuses to delete a resource another live resource refers to
// (the kinds table's References: a Calm app on an IP reservation), or that
// an unfinished create is about to use: its address would be freed while
// the app holds it, and given to the next caller. References are always of
// the same owner (checkReferences), so only the owner's resources are read.
func (g *Gate) notInUse(ctx context.Context, target operations.Resource) error {
	var users []string
	for _, ref := range api.ReferrersOf(target.Kind) {
		rs, err := g.Book.ListResources(ctx, ref.Kind, target.OwnerEntityID)
		if err != nil {
			return err
		}
		for _, r := range rs {
			if refersTo(r.Spec, ref.Field, target.ID) {
				users = append(users, fmt.Sprintf("%s %s", ref.Kind, r.ID))
			}
		}
		unfinished, err := g.Book.UnfinishedOf(ctx, ref.Kind, target.OwnerEntityID)
		if err != nil {
			return err
		}
		for _, w := range unfinished {
			if w.Action == api.ActionCreate && refersTo(w.Request, ref.Field, target.ID) {
				users = append(users, fmt.Sprintf("the %s being created by operation %s", ref.Kind, w.ID))
			}
		}
	}
	if len(users) == 0 {
		return nil
	}
	return refuse(api.Problem{Type: api.ProblemInUse, Title: "Resource in use", Status: http.StatusConflict,
		Detail: fmt.Sprintf("%s %s is used by %s; delete that first (its address would otherwise be freed while it holds it). Nothing was done.",
			target.Kind, target.ID, strings.Join(users, ", "))})
}

func refersTo(spec []byte, field, id string) bool {
	var m map[string]any
	if json.Unmarshal(spec, &m) != nil {
		return false
	}
	v, _ := m[field].(string)
	return v == id
}
