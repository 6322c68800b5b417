package infoblox

import "sort"

// The object types the simulator speaks, declared once: each field with
// whether it is returned by default, which search modifiers it accepts,
// and whether a create or an update may set it. Everything that validates
// a request (unknown field, field not searchable, field not writable)
// reads this table.

type fieldSpec struct {
	name       string
	search     string // accepted search modifiers: '=' exact (and '!'), ':' case-insensitive, '~' regex, '<' '>' ordering; "" = not searchable
	def        bool   // returned when _return_fields is not given
	create     bool   // may be given on POST
	update     bool   // may be changed by PUT (a PUT repeating the current value of a create-only field is accepted)
	list       bool   // PUT accepts field+ (add) and field- (remove)
	searchOnly bool
}

type objectSpec struct {
	name      string
	fields    []fieldSpec
	ea        bool            // has extattrs and *Name searches
	functions map[string]bool // _function names accepted on a reference
}

func (o *objectSpec) field(name string) (fieldSpec, bool) {
	for _, f := range o.fields {
		if f.name == name {
			return f, true
		}
	}
	return fieldSpec{}, false
}

func (o *objectSpec) defaults() []string {
	var out []string
	for _, f := range o.fields {
		if f.def {
			out = append(out, f.name)
		}
	}
	return out
}

var extattrsField = fieldSpec{name: "extattrs", create: true, update: true}

var objectSpecs = map[string]*objectSpec{
	"networkview": {name: "networkview", ea: true, fields: []fieldSpec{
		{name: "name", search: "=:~", def: true, create: true},
		{name: "is_default", search: "=", def: true},
		{name: "comment", search: "=:~", def: true, create: true, update: true},
		extattrsField,
	}},
	"view": {name: "view", ea: true, fields: []fieldSpec{
		{name: "name", search: "=:~", def: true, create: true},
		{name: "is_default", search: "=", def: true},
		{name: "network_view", search: "=", create: true},
		{name: "comment", search: "=:~", def: true, create: true, update: true},
		extattrsField,
	}},
	"network": {name: "network", ea: true, functions: map[string]bool{"next_available_ip": true}, fields: []fieldSpec{
		{name: "network", search: "=~<>", def: true, create: true},
		{name: "network_view", search: "=", def: true, create: true},
		{name: "comment", search: "=:~", def: true, create: true, update: true},
		{name: "contains_address", search: "=", searchOnly: true},
		extattrsField,
	}},
	"fixedaddress": {name: "fixedaddress", ea: true, fields: []fieldSpec{
		{name: "ipv4addr", search: "=~<>", def: true, create: true, update: true},
		{name: "network_view", search: "=", def: true, create: true},
		{name: "mac", search: "=~", create: true, update: true},
		{name: "name", search: "=:~", create: true, update: true},
		{name: "comment", search: "=:~", create: true, update: true},
		{name: "network", search: "=~"},
		{name: "match_client", create: true, update: true},
		{name: "disable", create: true, update: true},
		extattrsField,
	}},
	"record:host": {name: "record:host", ea: true, fields: []fieldSpec{
		{name: "ipv4addrs", def: true, create: true, update: true, list: true},
		{name: "ipv6addrs", create: true, update: true},
		{name: "name", search: "=:~", def: true, create: true, update: true},
		{name: "view", search: "=", def: true, create: true},
		{name: "network_view", search: "=", create: true},
		{name: "zone", search: "=:~"},
		{name: "comment", search: "=:~", create: true, update: true},
		{name: "aliases", search: "=:~", create: true, update: true, list: true},
		{name: "configure_for_dns", create: true, update: true},
		{name: "disable", create: true, update: true},
		{name: "use_ttl", create: true, update: true},
		{name: "ttl", create: true, update: true},
		{name: "ipv4addr", search: "=~<>", searchOnly: true},
		{name: "mac", search: "=~", searchOnly: true},
		extattrsField,
	}},
	"extensibleattributedef": {name: "extensibleattributedef", fields: []fieldSpec{
		{name: "name", search: "=:~", def: true, create: true, update: true},
		{name: "type", search: "=", def: true, create: true},
		{name: "comment", search: "=:~", def: true, create: true, update: true},
		{name: "default_value", def: true, create: true, update: true},
		{name: "flags", create: true, update: true},
		{name: "list_values", create: true, update: true},
		{name: "allowed_object_types", create: true, update: true},
	}},
}

func supportedObjects() []string {
	out := make([]string, 0, len(objectSpecs))
	for k := range objectSpecs {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
