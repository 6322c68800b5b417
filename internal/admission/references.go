package admission

import (
	"context"
	"net/http"

	"github.com/sas-platform/terraform-provider-sas/internal/api"
	"github.com/sas-platform/terraform-provider-sas/internal/operations"
)

// notInUse refuses to delete a resource another live resource refers to
// (the kinds table's References: a Calm app on an IP reservation), or that
// an unfinished create is about to use: its address would be freed while
// the app holds it, and given to the next caller. References are always of
// the same owner (checkReferences), so only the owner's resources are read.
func (g *Gate) notInUse(ctx context.Context, target operations.Resource) error {
	users, err := g.Book.UsersOf(ctx, target.Kind, target.ID, target.OwnerEntityID)
	if err != nil {
		return err
	}
	if len(users) == 0 {
		return nil
	}
	return refuse(inUse(&operations.InUseError{Kind: target.Kind, ID: target.ID, Users: users}))
}

// notBeingDeleted refuses a request naming a resource whose delete is
// under way: it would start using what is about to be freed.
func (g *Gate) notBeingDeleted(ctx context.Context, kind, id string) error {
	by, err := g.Book.BeingDeletedBy(ctx, kind, id)
	if err != nil || by == "" {
		return err
	}
	return refuse(inUse(&operations.InUseError{Kind: kind, ID: id, BeingDeletedBy: by}))
}

// inUse is the answer to either.
func inUse(e *operations.InUseError) api.Problem {
	return api.Problem{Type: api.ProblemInUse, Title: "Resource in use", Status: http.StatusConflict, Detail: e.Error() + ". Nothing was done."}
}
