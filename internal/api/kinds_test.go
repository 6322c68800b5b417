package api

import (
	"reflect"
	"slices"
	"strings"
	"testing"
)

// The table and the Go types requests decode into name the same fields, of
// compatible types: neither can change without the other.
func TestKindTableMatchesRequestTypes(t *testing.T) {
	for _, k := range KindTable {
		for _, action := range []string{ActionCreate, ActionUpdate, ActionDelete} {
			b := k.BodyFor(action)
			if b == nil {
				continue
			}
			checkSameFields(t, k.Name+" "+action, b.Fields, reflect.TypeOf(b.New()).Elem())
		}
	}
}

func checkSameFields(t *testing.T, where string, fields []Field, typ reflect.Type) {
	t.Helper()
	var inStruct []string
	for i := range typ.NumField() {
		name, _, _ := strings.Cut(typ.Field(i).Tag.Get("json"), ",")
		inStruct = append(inStruct, name)
		fi := slices.IndexFunc(fields, func(f Field) bool { return f.Name == name })
		if fi < 0 {
			t.Errorf("%s: %s.%s (json %q) is not in the kinds table", where, typ.Name(), typ.Field(i).Name, name)
			continue
		}
		ft := typ.Field(i).Type
		if ft.Kind() == reflect.Pointer {
			ft = ft.Elem()
		}
		want := map[FieldType]reflect.Kind{TypeString: reflect.String, TypeInteger: reflect.Int, TypeStrings: reflect.Slice,
			TypeObject: reflect.Struct, TypeMap: reflect.Map}[fields[fi].Type]
		if ft.Kind() != want {
			t.Errorf("%s: %s is %s in the table but %s in Go", where, name, fields[fi].Type, ft.Kind())
		}
		if fields[fi].Type == TypeObject {
			checkSameFields(t, where+"/"+name, fields[fi].Fields, ft)
		}
		if fields[fi].Description == "" {
			t.Errorf("%s: %s has no description", where, name)
		}
		if r := fields[fi].Rule; fields[fi].Type == TypeString && (r == nil || r.Help == "") {
			t.Errorf("%s: string field %s has no rule with help", where, name)
		}
	}
	for _, f := range fields {
		if !slices.Contains(inStruct, f.Name) {
			t.Errorf("%s: the table's field %s is not in %s", where, f.Name, typ.Name())
		}
	}
}

// Every published pattern compiles and agrees with the check on the values
// the check accepts (a value the gateway takes must not be refused by a
// client validating with the pattern).
func TestRulePatternsAgreeWithChecks(t *testing.T) {
	accepted := map[*Rule][]string{
		ruleNetwork: {"10.10.0.0/24", "sbx-app"}, ruleLabel: {"web-01", "a"}, ruleZone: {"sbx.example.internal"},
		ruleMAC: {"00:50:56:aa:bb:cc"}, ruleTicket: {"CHG0012345"},
		ruleVersion: {"1.2.3", "v1.2.3-rc.1"}, ruleModule: {"platform/maintenance-window"}, ruleVarName: {"A_1"},
	}
	for r, values := range accepted {
		for _, v := range values {
			if msg := r.CheckValue(v); msg != "" {
				t.Errorf("check refuses %q: %s", v, msg)
			}
			if !compiled(r.Pattern).MatchString(v) {
				t.Errorf("pattern %s refuses %q, which the check accepts", r.Pattern, v)
			}
		}
	}
}
