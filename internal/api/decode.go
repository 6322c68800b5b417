package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"sync"
)

// FieldError names one thing wrong with a request, by JSON pointer.
type FieldError struct {
	Path    string `json:"path"`
	Message string `json:"message"`
}

// InvalidRequestError lists every field error found in a request body.
type InvalidRequestError struct {
	Fields []FieldError
}

func (e *InvalidRequestError) Error() string {
	parts := make([]string, len(e.Fields))
	for i, f := range e.Fields {
		parts[i] = f.Path + ": " + f.Message
	}
	return "invalid request: " + strings.Join(parts, "; ")
}

// Invalid returns an *InvalidRequestError for one field.
func Invalid(path, format string, args ...any) *InvalidRequestError {
	return &InvalidRequestError{Fields: []FieldError{{Path: path, Message: fmt.Sprintf(format, args...)}}}
}

// Limits on request documents. Bodies are also capped in bytes by the gateway.
const (
	maxDepth    = 8
	maxElements = 1000 // object members + array elements, all levels
)

// DecodeStrict decodes exactly one JSON object from body into v (a pointer
// to a request struct), refusing what a lenient decoder would let through:
// unknown fields at any depth, duplicate keys (one value for the policy,
// another for the backend), trailing data, excessive nesting, and values of
// the wrong type. Every error names the field by JSON pointer.
func DecodeStrict(body []byte, v any) error {
	t := reflect.TypeOf(v)
	if t == nil || t.Kind() != reflect.Pointer {
		return errors.New("DecodeStrict needs a pointer")
	}
	if len(bytes.TrimSpace(body)) == 0 {
		return Invalid("", "the request body is empty; send a JSON object")
	}
	w := &walker{dec: json.NewDecoder(bytes.NewReader(body))}
	w.dec.UseNumber()
	if err := w.value(t.Elem(), "", 0); err != nil {
		return err
	}
	if _, err := w.dec.Token(); err != io.EOF {
		return Invalid("", "the body holds more than one JSON value; send exactly one object")
	}
	if len(w.errs) > 0 {
		return &InvalidRequestError{Fields: w.errs}
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) {
			return Invalid(pointerFromDotted(te.Field), "must be %s, not %s", jsonKind(te.Type), te.Value)
		}
		return Invalid("", "the body is not valid JSON: %v", err)
	}
	return nil
}

// walker checks the token stream against the shape of the target type.
type walker struct {
	dec      *json.Decoder
	elements int
	errs     []FieldError
}

func (w *walker) fail(path, format string, args ...any) {
	if len(w.errs) < 20 {
		w.errs = append(w.errs, FieldError{Path: path, Message: fmt.Sprintf(format, args...)})
	}
}

func (w *walker) value(t reflect.Type, path string, depth int) error {
	if depth > maxDepth {
		return Invalid(path, "nested deeper than %d levels", maxDepth)
	}
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t == rawMessage && depth > 0 {
		// An embedded document kept as sent (a dry run's request) is
		// checked by its own strict decode, from its own root — the same
		// limits, paths and errors the real request gets.
		var raw json.RawMessage
		if err := w.dec.Decode(&raw); err != nil {
			return Invalid(path, "the body is not valid JSON: %v", syntaxMessage(err))
		}
		return nil
	}
	tok, err := w.dec.Token()
	if err != nil {
		return Invalid(path, "the body is not valid JSON: %v", syntaxMessage(err))
	}
	switch d := tok.(type) {
	case json.Delim:
		if depth == 0 && d != '{' {
			return Invalid("", "the body must be a JSON object")
		}
		switch d {
		case '{':
			return w.object(t, path, depth)
		case '[':
			return w.array(t, path, depth)
		}
		return Invalid(path, "unexpected %q", d)
	default:
		if depth == 0 {
			return Invalid("", "the body must be a JSON object")
		}
		return nil // scalar types are checked by the typed decode
	}
}

func (w *walker) object(t reflect.Type, path string, depth int) error {
	var fields map[string]reflect.Type
	var elem reflect.Type
	switch t.Kind() {
	case reflect.Struct:
		fields = structFields(t)
	case reflect.Map:
		elem = t.Elem()
	case reflect.Interface:
		elem = t
	default:
		// Wrong type: let the typed decode name it; still consume the value.
		elem = reflect.TypeOf((*any)(nil)).Elem()
	}
	seen := map[string]bool{}
	for w.dec.More() {
		if w.elements++; w.elements > maxElements {
			return Invalid(path, "more than %d members and elements in the body", maxElements)
		}
		tok, err := w.dec.Token()
		if err != nil {
			return Invalid(path, "the body is not valid JSON: %v", syntaxMessage(err))
		}
		key, _ := tok.(string)
		child := path + "/" + escapePointer(key)
		if seen[key] {
			w.fail(child, "appears more than once")
		}
		seen[key] = true
		ft := elem
		if fields != nil {
			var ok bool
			if ft, ok = fields[key]; !ok {
				w.fail(child, "unknown field; allowed: %s", strings.Join(sortedKeys(fields), ", "))
				ft = reflect.TypeOf((*any)(nil)).Elem()
			}
		}
		if err := w.value(ft, child, depth+1); err != nil {
			return err
		}
	}
	if _, err := w.dec.Token(); err != nil { // closing '}'
		return Invalid(path, "the body is not valid JSON: %v", syntaxMessage(err))
	}
	return nil
}

func (w *walker) array(t reflect.Type, path string, depth int) error {
	elem := reflect.TypeOf((*any)(nil)).Elem()
	if t.Kind() == reflect.Slice || t.Kind() == reflect.Array {
		elem = t.Elem()
	}
	for i := 0; w.dec.More(); i++ {
		if w.elements++; w.elements > maxElements {
			return Invalid(path, "more than %d members and elements in the body", maxElements)
		}
		if err := w.value(elem, path+"/"+strconv.Itoa(i), depth+1); err != nil {
			return err
		}
	}
	if _, err := w.dec.Token(); err != nil {
		return Invalid(path, "the body is not valid JSON: %v", syntaxMessage(err))
	}
	return nil
}

var rawMessage = reflect.TypeOf(json.RawMessage(nil))

var fieldCache sync.Map // reflect.Type -> map[string]reflect.Type

func structFields(t reflect.Type) map[string]reflect.Type {
	if m, ok := fieldCache.Load(t); ok {
		return m.(map[string]reflect.Type)
	}
	m := map[string]reflect.Type{}
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if name == "-" || !f.IsExported() {
			continue
		}
		if name == "" {
			name = f.Name
		}
		m[name] = f.Type
	}
	fieldCache.Store(t, m)
	return m
}

func sortedKeys(m map[string]reflect.Type) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

func escapePointer(s string) string {
	return strings.ReplaceAll(strings.ReplaceAll(s, "~", "~0"), "/", "~1")
}

func pointerFromDotted(field string) string {
	if field == "" {
		return ""
	}
	return "/" + strings.ReplaceAll(field, ".", "/")
}

func jsonKind(t reflect.Type) string {
	switch t.Kind() {
	case reflect.String:
		return "a string"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "an integer"
	case reflect.Float32, reflect.Float64:
		return "a number"
	case reflect.Bool:
		return "true or false"
	case reflect.Slice, reflect.Array:
		return "an array"
	case reflect.Map, reflect.Struct:
		return "an object"
	}
	return t.String()
}

func syntaxMessage(err error) string {
	var se *json.SyntaxError
	if errors.As(err, &se) {
		return fmt.Sprintf("%s at byte %d", se.Error(), se.Offset)
	}
	if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
		return "it ends early"
	}
	return err.Error()
}
