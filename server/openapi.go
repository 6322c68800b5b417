package server

import (
	"encoding/json"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/sas-platform/terraform-provider-sas/internal/api"
)

// openAPI builds the OpenAPI 3.0 document from the route table itself, so
// the published description cannot drift from what the router serves.
func openAPI(routes []route) map[string]any {
	schemas := map[string]any{}
	paths := map[string]map[string]any{}
	for _, rt := range routes {
		op := map[string]any{
			"operationId": rt.name,
			"summary":     rt.summary,
			"tags":        []string{rt.tag},
		}
		if rt.description != "" {
			op["description"] = rt.description
		}
		if !rt.public {
			op["security"] = []map[string][]string{{"vaultToken": {}}, {"bearer": {}}}
		} else {
			op["security"] = []map[string][]string{}
		}
		var params []map[string]any
		for _, seg := range strings.Split(rt.path, "/") {
			if strings.HasPrefix(seg, "{") {
				params = append(params, map[string]any{"name": strings.Trim(seg, "{}"), "in": "path", "required": true, "schema": map[string]any{"type": "string"}})
			}
		}
		for _, h := range rt.headers {
			params = append(params, map[string]any{"name": h, "in": "header", "required": false, "schema": map[string]any{"type": "string"}})
		}
		if len(params) > 0 {
			op["parameters"] = params
		}
		if rt.request != nil {
			op["requestBody"] = map[string]any{
				"required": rt.action != api.ActionDelete, // a delete's body (a change ticket) is optional
				"content":  map[string]any{"application/json": map[string]any{"schema": schemaRef(reflect.TypeOf(rt.request), schemas)}},
			}
		}
		responses := map[string]any{}
		okDesc := map[int]string{200: "OK", 202: "Accepted: an operation to poll", 204: "No content"}[rt.status]
		if rt.response != nil {
			responses[itoa(rt.status)] = map[string]any{"description": okDesc,
				"content": map[string]any{"application/json": map[string]any{"schema": schemaRef(reflect.TypeOf(rt.response), schemas)}}}
		} else {
			responses[itoa(rt.status)] = map[string]any{"description": okDesc}
		}
		if rt.action == api.ActionCreate && rt.response != nil {
			// A create of an object that exists for the same owner, context and spec adopts it.
			responses["200"] = map[string]any{"description": "OK: the object already existed for this caller, bundle, environment and spec; " +
				"the operation recording its adoption has already succeeded (result.adopted = true)",
				"content": map[string]any{"application/json": map[string]any{"schema": schemaRef(reflect.TypeOf(rt.response), schemas)}}}
		}
		problem := map[string]any{"description": "A problem (RFC 9457)",
			"content": map[string]any{api.ProblemContentType: map[string]any{"schema": schemaRef(reflect.TypeOf(api.Problem{}), schemas)}}}
		responses["default"] = problem
		op["responses"] = responses
		if paths[rt.path] == nil {
			paths[rt.path] = map[string]any{}
		}
		for _, m := range rt.methods {
			paths[rt.path][strings.ToLower(m)] = op
		}
	}
	return map[string]any{
		"openapi": "3.0.3",
		"info": map[string]any{
			"title":       "sas gateway API",
			"version":     "v1",
			"description": "Zero-Trust provisioning gateway: every request carries an ephemeral Vault token, passes a policy bundle and is audited before anything happens.",
		},
		"paths": paths,
		"components": map[string]any{
			"schemas": schemas,
			"securitySchemes": map[string]any{
				"vaultToken": map[string]any{"type": "apiKey", "in": "header", "name": api.HeaderVaultToken},
				"bearer":     map[string]any{"type": "http", "scheme": "bearer"},
			},
		},
	}
}

var timeType = reflect.TypeOf(time.Time{})

// schemaRef returns a JSON schema for t, registering named structs in schemas.
func schemaRef(t reflect.Type, schemas map[string]any) map[string]any {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch {
	case t == timeType:
		return map[string]any{"type": "string", "format": "date-time"}
	case t.Kind() == reflect.Struct && api.BodyForType(t) != nil:
		// A kind's request body: from the kinds table, every constraint included.
		if _, ok := schemas[t.Name()]; !ok {
			schemas[t.Name()] = api.BodyForType(t).Schema()
		}
		return map[string]any{"$ref": "#/components/schemas/" + t.Name()}
	case t.Kind() == reflect.Struct:
		name := t.Name()
		if _, ok := schemas[name]; !ok {
			schemas[name] = map[string]any{} // break cycles
			props := map[string]any{}
			var required []string
			for _, f := range jsonFields(t) {
				tag, opts, _ := strings.Cut(f.Tag.Get("json"), ",")
				if tag == "-" || !f.IsExported() {
					continue
				}
				if tag == "" {
					tag = f.Name
				}
				props[tag] = schemaRef(f.Type, schemas)
				if !strings.Contains(opts, "omitempty") && f.Type.Kind() != reflect.Pointer {
					required = append(required, tag)
				}
			}
			sort.Strings(required)
			s := map[string]any{"type": "object", "properties": props, "additionalProperties": false}
			if len(required) > 0 {
				s["required"] = required
			}
			schemas[name] = s
		}
		return map[string]any{"$ref": "#/components/schemas/" + name}
	}
	if t == reflect.TypeOf(json.RawMessage(nil)) {
		// A request body kept as sent: the kind's own create/update schema.
		return map[string]any{"type": "object", "description": "a request body, kept as sent: the JSON object its create or update operation describes"}
	}
	switch t.Kind() {
	case reflect.String:
		return map[string]any{"type": "string"}
	case reflect.Bool:
		return map[string]any{"type": "boolean"}
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64, reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return map[string]any{"type": "integer"}
	case reflect.Float32, reflect.Float64:
		return map[string]any{"type": "number"}
	case reflect.Slice, reflect.Array:
		return map[string]any{"type": "array", "items": schemaRef(t.Elem(), schemas)}
	case reflect.Map:
		return map[string]any{"type": "object", "additionalProperties": schemaRef(t.Elem(), schemas)}
	}
	return map[string]any{} // interface{}: any JSON value
}

func itoa(i int) string { return strconv.Itoa(i) }

// jsonFields lists t's fields as encoding/json sees them: the fields of an
// untagged embedded struct are promoted into the parent.
func jsonFields(t reflect.Type) []reflect.StructField {
	var out []reflect.StructField
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		if f.Anonymous && f.Tag.Get("json") == "" && f.Type.Kind() == reflect.Struct {
			out = append(out, jsonFields(f.Type)...)
			continue
		}
		out = append(out, f)
	}
	return out
}
