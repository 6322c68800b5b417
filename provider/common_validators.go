package provider

import (
	"context"
	"fmt"
	"strings"

	"github.com/hashicorp/terraform-plugin-framework-validators/int64validator"
	"github.com/hashicorp/terraform-plugin-framework/schema/validator"
	"github.com/hashicorp/terraform-plugin-framework/types"

	"github.com/sas-platform/terraform-provider-sas/internal/api"
)

// The attribute validators of every resource call the gateway's kinds table
// (internal/api): a value the gateway would refuse fails at validate, on its
// attribute, with the gateway's own words — and no rule is copied here.

// tableField is one field of a kind's create body in the kinds table.
func tableField(kind, field string) api.Field {
	k, ok := api.KindByName(kind)
	if !ok {
		panic("provider: unknown kind " + kind)
	}
	f, ok := k.FieldAt(api.ActionCreate, "/"+field)
	if !ok {
		panic(fmt.Sprintf("provider: kind %s has no field %s", kind, field))
	}
	return f
}

// fieldDescription is the table's description of the field, and what
// changing it does.
func fieldDescription(kind, field, replaces string) string {
	f := tableField(kind, field)
	switch {
	case f.Mutable:
		return f.Description + " Updated in place."
	case replaces != "":
		return f.Description + " Changing it replaces the " + replaces + "."
	}
	return f.Description
}

// stringRule validates a string attribute with the table's rule for field.
func stringRule(kind, field string) validator.String {
	return ruleValidator{field: field, rule: tableField(kind, field).Rule}
}

// listRule validates a list of strings: size, uniqueness and each element.
func listRule(kind, field string) validator.List {
	f := tableField(kind, field)
	return ruleValidator{field: field, rule: f.Rule, max: f.Max, unique: f.Unique}
}

type ruleValidator struct {
	field  string
	rule   *api.Rule
	max    int
	unique bool
}

func (v ruleValidator) Description(context.Context) string {
	if v.rule == nil {
		return "must be what the gateway accepts for " + v.field
	}
	return "must be " + v.rule.Help
}

func (v mapValidator) Description(ctx context.Context) string {
	return "keys must be " + v.key.Help + "; values " + v.ruleValidator.Description(ctx)
}

func (v mapValidator) MarkdownDescription(ctx context.Context) string { return v.Description(ctx) }

func (v ruleValidator) MarkdownDescription(ctx context.Context) string { return v.Description(ctx) }

func (v ruleValidator) summary() string {
	words := strings.Split(v.field, "_")
	for i, w := range words {
		switch w {
		case "dns", "mac", "ip", "id":
			words[i] = strings.ToUpper(w)
		default:
			words[i] = strings.ToUpper(w[:1]) + w[1:]
		}
	}
	return "Invalid " + strings.Join(words, " ")
}

func (v ruleValidator) ValidateString(_ context.Context, req validator.StringRequest, resp *validator.StringResponse) {
	if req.ConfigValue.IsNull() || req.ConfigValue.IsUnknown() {
		return
	}
	if msg := v.rule.CheckValue(req.ConfigValue.ValueString()); msg != "" {
		resp.Diagnostics.AddAttributeError(req.Path, v.summary(), fmt.Sprintf("%s must be %s: %s.", v.field, v.rule.Help, msg))
	}
}

func (v ruleValidator) ValidateList(ctx context.Context, req validator.ListRequest, resp *validator.ListResponse) {
	if req.ConfigValue.IsNull() || req.ConfigValue.IsUnknown() {
		return
	}
	var items []types.String
	resp.Diagnostics.Append(req.ConfigValue.ElementsAs(ctx, &items, false)...)
	if v.max > 0 && len(items) > v.max {
		resp.Diagnostics.AddAttributeError(req.Path, v.summary(), fmt.Sprintf("%s takes at most %d items, not %d.", v.field, v.max, len(items)))
	}
	seen := map[string]bool{}
	for i, item := range items {
		if item.IsNull() || item.IsUnknown() {
			continue
		}
		s := item.ValueString()
		if msg := v.rule.CheckValue(s); msg != "" {
			resp.Diagnostics.AddAttributeError(req.Path.AtListIndex(i), v.summary(), fmt.Sprintf("each of %s must be %s: %s.", v.field, v.rule.Help, msg))
		}
		if v.unique && seen[s] {
			resp.Diagnostics.AddAttributeError(req.Path.AtListIndex(i), v.summary(), fmt.Sprintf("%q appears more than once in %s.", s, v.field))
		}
		seen[s] = true
	}
}

// mapRule validates a map of strings: its size, each key and each value.
// Messages never repeat a value (a map may hold secrets).
func mapRule(kind, field string) validator.Map {
	f := tableField(kind, field)
	return mapValidator{ruleValidator: ruleValidator{field: field, rule: f.Rule, max: f.Max}, key: f.Key}
}

type mapValidator struct {
	ruleValidator
	key *api.Rule
}

func (v mapValidator) ValidateMap(ctx context.Context, req validator.MapRequest, resp *validator.MapResponse) {
	if req.ConfigValue.IsNull() || req.ConfigValue.IsUnknown() {
		return
	}
	items := map[string]types.String{}
	resp.Diagnostics.Append(req.ConfigValue.ElementsAs(ctx, &items, false)...)
	if v.max > 0 && len(items) > v.max {
		resp.Diagnostics.AddAttributeError(req.Path, v.summary(), fmt.Sprintf("%s takes at most %d entries, not %d.", v.field, v.max, len(items)))
	}
	for k, item := range items {
		if msg := v.key.CheckValue(k); msg != "" {
			resp.Diagnostics.AddAttributeError(req.Path.AtMapKey(k), v.summary(), fmt.Sprintf("each key of %s must be %s: %s.", v.field, v.key.Help, msg))
		}
		if item.IsNull() || item.IsUnknown() {
			continue
		}
		if msg := v.rule.CheckValue(item.ValueString()); msg != "" { // a nil rule finds nothing wrong
			resp.Diagnostics.AddAttributeError(req.Path.AtMapKey(k), v.summary(), fmt.Sprintf("each value of %s must be %s: %s.", v.field, v.rule.Help, msg))
		}
	}
}

// intRange validates an integer attribute with the table's bounds for
// field (a path such as "size/vcpus").
func intRange(kind, field string) validator.Int64 {
	f := tableField(kind, field)
	return int64validator.Between(int64(f.Min), int64(f.Max))
}
