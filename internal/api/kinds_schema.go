package api

import (
	"reflect"
	"sort"
)

// Schema is the body's JSON schema (OpenAPI 3.0), field constraints
// included, unknown members refused.
func (b *Body) Schema() map[string]any { return objectSchema(b.Fields) }

func objectSchema(fields []Field) map[string]any {
	props := map[string]any{}
	var required []string
	for _, f := range fields {
		props[f.Name] = fieldSchema(f)
		if f.Required || f.Type == TypeObject {
			required = append(required, f.Name)
		}
	}
	sort.Strings(required)
	s := map[string]any{"type": "object", "properties": props, "additionalProperties": false}
	if len(required) > 0 {
		s["required"] = required
	}
	return s
}

func fieldSchema(f Field) map[string]any {
	var s map[string]any
	switch f.Type {
	case TypeString:
		s = ruleSchema(f.Rule)
	case TypeInteger:
		s = map[string]any{"type": "integer", "minimum": f.Min, "maximum": f.Max}
	case TypeStrings:
		s = map[string]any{"type": "array", "items": ruleSchema(f.Rule)}
		if f.Max > 0 {
			s["maxItems"] = f.Max
		}
		if f.Unique {
			s["uniqueItems"] = true
		}
	case TypeObject:
		s = objectSchema(f.Fields)
	case TypeMap:
		values := map[string]any{}
		if f.Rule != nil {
			values = ruleSchema(f.Rule)
		}
		s = map[string]any{"type": "object", "additionalProperties": values}
		if f.Max > 0 {
			s["maxProperties"] = f.Max
		}
		if f.Key != nil && f.Key.Pattern != "" {
			s["x-key-pattern"] = f.Key.Pattern // OpenAPI 3.0 has no propertyNames
		}
	}
	desc := f.Description
	if f.Catalog != "" {
		desc += " Must name an entry of the bundle's " + f.Catalog + " (GET /v1/catalog)."
	}
	if f.Mutable {
		desc += " Can be changed in place (PATCH)."
	}
	if f.References != "" {
		s["x-references"] = f.References // the kind whose id it holds
		desc += " The " + f.References + " cannot be deleted while this refers to it (409 in-use)."
	}
	s["description"] = desc
	return s
}

func ruleSchema(r *Rule) map[string]any {
	s := map[string]any{"type": "string"}
	if r == nil {
		return s
	}
	if r.Pattern != "" {
		s["pattern"] = r.Pattern
	}
	if r.MaxLen > 0 {
		s["maxLength"] = r.MaxLen
	}
	if len(r.Enum) > 0 {
		s["enum"] = r.Enum
	}
	return s
}

// BodyForType returns the table's body that decodes into t, if any.
func BodyForType(t reflect.Type) *Body {
	for _, k := range KindTable {
		for _, action := range []string{ActionCreate, ActionUpdate, ActionDelete} {
			if b := k.BodyFor(action); b != nil && reflect.TypeOf(b.New()).Elem() == t {
				return b
			}
		}
	}
	return nil
}
