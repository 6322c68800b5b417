package api

import (
	"fmt"
	"reflect"
	"slices"
	"strings"
	"time"
)

// Kind declares one resource kind, once, in the spirit of Vault's
// framework.Path tables: its path, the request bodies per action with every
// field's type, constraint, description and mutability, the catalog names it
// refers to, and how its operations run. The gateway's validator, the
// OpenAPI document, the provider's attribute validators and the policy's
// input all read this table; nothing copies it.
type Kind struct {
	Name        string // ip_reservation, as in policy input and operations
	Path        string // collection path under /v1
	Title       string // "IP reservation"
	Description string

	// Request bodies per action: fields, and the Go type they decode into.
	Create, Update, Delete Body

	// Settings are how its operations run (operators may override workers
	// and timeouts in the gateway's configuration).
	Settings Settings
}

// Body is one request body: its fields and the type it decodes into.
type Body struct {
	Fields []Field
	// New returns an empty body to decode into; nil: the action takes no body.
	New func() Validator
	// Check holds rules across fields (hostname.dns_zone ≤ 253, an update
	// changes something); field rules are in Fields.
	Check func(v any, f *fieldErrors)
	// SizeLimits bound the JSON size of some fields together.
	SizeLimits []SizeLimit
}

// SizeLimit bounds the size of Fields together, each serialized as JSON
// (a module run's inputs and secret inputs: what is stored, audited and
// handed to Terraform).
type SizeLimit struct {
	Fields   []string
	MaxBytes int
}

// Settings are a kind's operational limits.
type Settings struct {
	Workers     int           // concurrent operations per replica
	StepTimeout time.Duration // one step (attempt), and its sub-token's TTL
	Deadline    time.Duration // the whole operation, all steps and waits
	MaxAttempts int           // failed steps before the operation fails
	// Uninterruptible: a running step cannot be stopped midway (a Terraform
	// apply); a cancel is accepted only while no step runs.
	Uninterruptible bool
	// PoolPerEnvironment: the kind's workers are a pool per environment
	// (its steps are long: sandbox runs must not hold the workers prod
	// waits for). Each pool is one more queue the orchestrator polls, so
	// kinds with short steps share one.
	PoolPerEnvironment bool
	// MaxUnfinishedPerCaller bounds the operations of the kind one caller
	// (Vault entity) may have unfinished at once (0: no bound): one caller
	// cannot queue enough long runs to hold every worker.
	MaxUnfinishedPerCaller int
}

// FieldType is a field's JSON type.
type FieldType string

// Field types.
const (
	TypeString  FieldType = "string"
	TypeInteger FieldType = "integer"
	TypeStrings FieldType = "array"  // of strings, each checked by Rule
	TypeObject  FieldType = "object" // members in Fields
	TypeMap     FieldType = "map"    // names checked by Key, string values by Rule (nil Rule: any JSON value)
)

// Field is one member of a request body.
type Field struct {
	Name        string
	Type        FieldType
	Description string
	Required    bool
	// Mutable: an update may change it; changing any other field replaces the resource.
	Mutable bool
	// Rule constrains a string, each element of a list, or each value of a map.
	Rule *Rule
	// Key constrains map keys.
	Key *Rule
	// Min and Max bound an integer; Max also bounds the items of a list or map.
	Min, Max int
	// MaxValueBytes bounds each value of a map, serialized as JSON (a
	// string's quotes and escapes included).
	MaxValueBytes int
	// Fields are an object's members.
	Fields []Field
	// Catalog names the bundle catalog the value must be in ("blueprints", "modules").
	Catalog string
	// Normalize rewrites the value before it is checked and stored.
	Normalize func(string) string
	// Unique: list items must differ.
	Unique bool
	// Secret: the values are secrets (a map's values). The gateway replaces
	// them by keyed digests before the policy, the database or the audit
	// trail sees the request, and hands the clear values to the executor
	// only through Vault; the provider makes the attribute write-only.
	Secret bool
	// References names the kind of resource the value is the id of: one the
	// caller owns, in the request's bundle and environment.
	References string
}

// Rule is a string constraint: a pattern (also published in the OpenAPI
// document and used by the provider), a length, and the check the gateway
// runs, with the message a caller sees.
type Rule struct {
	// Pattern is an anchored regular expression valid in Go and in
	// ECMAScript (OpenAPI); empty when only Check can say.
	Pattern string
	MaxLen  int
	Enum    []string
	// Help says what a valid value is ("a DNS label (…)").
	Help string
	// Check returns what is wrong with v ("" when nothing is).
	Check func(v string) string
}

// CheckValue is the rule's verdict on v: "" or what is wrong.
func (r *Rule) CheckValue(v string) string {
	if r == nil {
		return ""
	}
	switch {
	case r.Check != nil:
		return r.Check(v)
	case len(r.Enum) > 0 && !slices.Contains(r.Enum, v):
		return fmt.Sprintf("%s is not one of %s", quote(v), strings.Join(r.Enum, ", "))
	case r.Pattern != "" && !compiled(r.Pattern).MatchString(v):
		return fmt.Sprintf("%s is not %s", quote(v), r.Help)
	case r.MaxLen > 0 && len(v) > r.MaxLen:
		return fmt.Sprintf("longer than %d characters", r.MaxLen)
	}
	return ""
}

// KindTable is every kind, in API order.
var KindTable = []*Kind{ipReservationKind, calmAppKind, moduleRunKind}

// KindByName returns the table entry of kind.
func KindByName(name string) (*Kind, bool) {
	for _, k := range KindTable {
		if k.Name == name {
			return k, true
		}
	}
	return nil, false
}

// BodyFor returns kind's body for action (nil: none).
func (k *Kind) BodyFor(action string) *Body {
	var b *Body
	switch action {
	case ActionCreate:
		b = &k.Create
	case ActionUpdate:
		b = &k.Update
	case ActionDelete:
		b = &k.Delete
	}
	if b == nil || b.New == nil {
		return nil
	}
	return b
}

// FieldAt returns the field at a JSON pointer of kind's body for action.
func (k *Kind) FieldAt(action, pointer string) (Field, bool) {
	b := k.BodyFor(action)
	if b == nil {
		return Field{}, false
	}
	fields := b.Fields
	var f Field
	for _, name := range strings.Split(strings.TrimPrefix(pointer, "/"), "/") {
		i := slices.IndexFunc(fields, func(f Field) bool { return f.Name == name })
		if i < 0 {
			return Field{}, false
		}
		f, fields = fields[i], fields[i].Fields
	}
	return f, true
}

// Required lists the JSON pointers a create must carry (policy input).
func (k *Kind) Required() []string {
	var out []string
	var walk func(prefix string, fs []Field)
	walk = func(prefix string, fs []Field) {
		for _, f := range fs {
			if f.Type == TypeObject {
				walk(prefix+f.Name+"/", f.Fields)
			} else if f.Required {
				out = append(out, prefix+f.Name)
			}
		}
	}
	walk("", k.Create.Fields)
	return out
}

// validateBody checks v (a decoded body of kind and action) against the
// table, normalizing fields in place.
func validateBody(kind, action string, v any) error {
	k, ok := KindByName(kind)
	if !ok {
		return Invalid("", "unknown kind %q", kind)
	}
	b := k.BodyFor(action)
	if b == nil {
		return Invalid("", "%s %s takes no request body", action, kind)
	}
	var f fieldErrors
	checkFields(&f, "", b.Fields, reflect.ValueOf(v).Elem())
	checkSizeLimits(&f, b.SizeLimits, reflect.ValueOf(v).Elem())
	if b.Check != nil {
		b.Check(v, &f)
	}
	return f.err()
}

func checkFields(f *fieldErrors, prefix string, fields []Field, v reflect.Value) {
	for _, fd := range fields {
		fv := jsonField(v, fd.Name)
		if !fv.IsValid() {
			panic(fmt.Sprintf("api: kind table field %s%s has no struct field", prefix, fd.Name))
		}
		path := prefix + "/" + fd.Name
		if fv.Kind() == reflect.Pointer { // an update's optional field: nil is "not sent"
			if fv.IsNil() {
				continue
			}
			fv = fv.Elem()
		}
		switch fd.Type {
		case TypeString:
			s := fv.String()
			if fd.Normalize != nil {
				s = fd.Normalize(s)
				fv.SetString(s)
			}
			if s == "" {
				if fd.Required {
					f.add(path, "required: %s", fd.Rule.Help)
				}
				continue
			}
			if msg := fd.Rule.CheckValue(s); msg != "" {
				f.add(path, "%s", msg)
			}
		case TypeInteger:
			if n := int(fv.Int()); n < fd.Min || n > fd.Max {
				f.add(path, "%d is outside %d–%d", n, fd.Min, fd.Max)
			}
		case TypeStrings:
			if fd.Max > 0 && fv.Len() > fd.Max {
				f.add(path, "at most %d %s", fd.Max, fd.Name)
			}
			seen := map[string]bool{}
			for i := range fv.Len() {
				s := fv.Index(i).String()
				p := fmt.Sprintf("%s/%d", path, i)
				if fd.Normalize != nil {
					s = fd.Normalize(s)
				}
				if msg := fd.Rule.CheckValue(s); msg != "" {
					f.add(p, "%s", msg)
				}
				if fd.Unique && seen[s] {
					f.add(p, "duplicate %s", strings.TrimSuffix(fd.Name, "es"))
				}
				seen[s] = true
			}
		case TypeObject:
			checkFields(f, path, fd.Fields, fv)
		case TypeMap:
			if fd.Max > 0 && fv.Len() > fd.Max {
				f.add(path, "at most %d %s", fd.Max, fd.Name)
			}
			iter := fv.MapRange()
			for iter.Next() {
				key := iter.Key().String()
				p := path + "/" + escapePointer(key)
				if msg := fd.Key.CheckValue(key); msg != "" {
					f.add(p, "%s", msg)
				}
				if val := iter.Value(); fd.Rule != nil && val.Kind() == reflect.String {
					if msg := fd.Rule.CheckValue(val.String()); msg != "" {
						f.add(p, "%s", msg)
						continue
					}
				}
				checkValueBytes(f, p, fd.MaxValueBytes, iter.Value())
			}
		}
	}
}

// jsonField is v's struct field whose JSON name is name.
func jsonField(v reflect.Value, name string) reflect.Value {
	t := v.Type()
	for i := range t.NumField() {
		tag, _, _ := strings.Cut(t.Field(i).Tag.Get("json"), ",")
		if tag == name {
			return v.Field(i)
		}
	}
	return reflect.Value{}
}

// CatalogRef is a request value that must name a catalog entry.
type CatalogRef struct {
	Path    string // JSON pointer
	Field   string // the field's name ("blueprint")
	Catalog string // CatalogBlueprints, CatalogModules
	Value   string
}

// CatalogRefs lists the catalog references of a decoded body of kind and action.
func CatalogRefs(kind, action string, v Validator) []CatalogRef {
	var out []CatalogRef
	eachField(kind, action, v, func(f Field, fv reflect.Value) {
		if f.Catalog != "" && fv.Kind() == reflect.String {
			out = append(out, CatalogRef{Path: "/" + f.Name, Field: f.Name, Catalog: f.Catalog, Value: fv.String()})
		}
	})
	return out
}

// ResourceRef is a field value naming another resource (Field.References).
type ResourceRef struct {
	Path  string // JSON pointer, "/ip_reservation"
	Kind  string // the referenced resource's kind
	Value string // its id
}

// ResourceRefs lists v's values that name other resources.
func ResourceRefs(kind, action string, v Validator) []ResourceRef {
	var out []ResourceRef
	eachField(kind, action, v, func(f Field, fv reflect.Value) {
		if f.References != "" && fv.Kind() == reflect.String && fv.String() != "" {
			out = append(out, ResourceRef{Path: "/" + f.Name, Kind: f.References, Value: fv.String()})
		}
	})
	return out
}

// SealSecrets replaces the values of v's secret fields (Field.Secret, maps
// of strings) by seal(value) in place, and returns the clear values by
// field name. Nothing is returned for a request without secrets.
func SealSecrets(kind, action string, v Validator, seal func(string) string) map[string]map[string]string {
	var out map[string]map[string]string
	eachField(kind, action, v, func(f Field, fv reflect.Value) {
		if !f.Secret || fv.Kind() != reflect.Map || fv.Len() == 0 {
			return
		}
		clear := map[string]string{}
		iter := fv.MapRange()
		for iter.Next() {
			clear[iter.Key().String()] = iter.Value().String()
		}
		for k, val := range clear {
			fv.SetMapIndex(reflect.ValueOf(k), reflect.ValueOf(seal(val)))
		}
		if out == nil {
			out = map[string]map[string]string{}
		}
		out[f.Name] = clear
	})
	return out
}

// eachField calls fn with every top-level field of kind's body for action
// that v (a decoded request) carries.
func eachField(kind, action string, v Validator, fn func(Field, reflect.Value)) {
	k, ok := KindByName(kind)
	if !ok || k.BodyFor(action) == nil || v == nil {
		return
	}
	rv := reflect.ValueOf(v).Elem()
	for _, f := range k.BodyFor(action).Fields {
		if fv := jsonField(rv, f.Name); fv.IsValid() {
			fn(f, fv)
		}
	}
}

// Schema is what policy input carries about a kind, from the table: the
// fields a create must carry, and those an update may change.
type Schema struct {
	Required []string `json:"required"`
	Mutable  []string `json:"mutable"`
	// References maps a field to the kind of resource whose id it holds.
	References map[string]string `json:"references,omitempty"`
}

// PolicySchema is kind's Schema (empty for a kind the table does not
// know: the policy then denies it for its action, not for a missing schema).
func PolicySchema(kind string) *Schema {
	k, ok := KindByName(kind)
	if !ok {
		return &Schema{Required: []string{}, Mutable: []string{}}
	}
	s := &Schema{Required: k.Required(), Mutable: []string{}}
	for _, f := range k.Create.Fields {
		if f.Mutable {
			s.Mutable = append(s.Mutable, f.Name)
		}
		if f.References != "" {
			if s.References == nil {
				s.References = map[string]string{}
			}
			s.References[f.Name] = f.References
		}
	}
	return s
}
