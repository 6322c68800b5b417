package provider

import (
	"errors"
	"fmt"
	"strings"

	"github.com/hashicorp/terraform-plugin-framework/diag"

	"github.com/sas-platform/terraform-provider-sas/internal/api"
	"github.com/sas-platform/terraform-provider-sas/internal/gatewayclient"
)

// gatewayDiagnostic turns a gateway error into a diagnostic whose summary
// says what went wrong and whose detail says what was tried, what the
// gateway said, the request id and what to do next.
func gatewayDiagnostic(attempted string, err error) diag.Diagnostic {
	var pe *gatewayclient.ProblemError
	if !errors.As(err, &pe) {
		return diag.NewErrorDiagnostic("Gateway Unreachable",
			fmt.Sprintf("While trying to %s, the provider could not get an answer from the sas gateway:\n\n%v\n\n"+
				"Check the provider's `address` (or SAS_ADDR) and that the gateway is running.", attempted, err))
	}
	p := pe.Problem
	var b strings.Builder
	fmt.Fprintf(&b, "While trying to %s, the sas gateway answered %d: %s", attempted, pe.StatusCode, p.Detail)
	for _, v := range p.Violations {
		fmt.Fprintf(&b, "\n  - %s: %s", v.Rule, v.Message)
	}
	if p.RequestID != "" {
		fmt.Fprintf(&b, "\n\nRequest id: %s", p.RequestID)
	}
	if next := nextStep(p.Type); next != "" {
		b.WriteString("\n\n" + next)
	}
	return diag.NewErrorDiagnostic(titleCase(p.Title), b.String())
}

func nextStep(problemType string) string {
	switch problemType {
	case api.ProblemTokenRoot, api.ProblemTokenStatic, api.ProblemTokenTooLong, api.ProblemTokenInvalid, api.ProblemTokenMissing:
		return "Log in to Vault again (for example `vault login -method=oidc`, or your CI's JWT/AppRole login) to get a short-lived " +
			"token bound to a sas-bundle-<name> policy, and give it to the provider through `token`, `token_file` or VAULT_TOKEN."
	case api.ProblemTokenMalformed:
		return "Check the token for stray whitespace, quotes or a newline."
	case api.ProblemNaturalKeyConflict:
		return "sas never makes a second object under a name that is taken, and adopts one only for its own owner, bundle, " +
			"environment and spec. To manage the existing object from this configuration, import it with `terraform import` and " +
			"the id above; otherwise choose another name."
	case api.ProblemUnavailable:
		return "The gateway refused to act without its dependencies; nothing was changed. Retry once they are back."
	}
	return ""
}

// titleCase makes "Root token refused" read "Root Token Refused", the way
// Terraform diagnostic summaries are written.
func titleCase(s string) string {
	words := strings.Fields(s)
	for i, w := range words {
		if i == 0 || !minorWords[strings.ToLower(w)] {
			words[i] = strings.ToUpper(w[:1]) + w[1:]
		}
	}
	return strings.Join(words, " ")
}

var minorWords = map[string]bool{"a": true, "an": true, "the": true, "of": true, "to": true, "in": true, "on": true,
	"at": true, "for": true, "and": true, "or": true, "by": true}
