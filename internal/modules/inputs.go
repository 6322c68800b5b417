package modules

import (
	"fmt"
	"sort"
	"strconv"
	"strings"
)

// CheckInputs checks a run's inputs against the version's variables:
// every name known, every required one given, secret variables only among
// the secrets (never in the clear, where state and logs could keep them)
// and the others only in the clear, and simple types matching. It returns
// every problem, keyed by input name.
func (v *Version) CheckInputs(inputs map[string]any, secrets map[string]string) map[string]string {
	problems := map[string]string{}
	byName := map[string]Input{}
	for _, in := range v.Inputs {
		byName[in.Name] = in
	}
	known := func() string {
		names := make([]string, 0, len(byName))
		for n := range byName {
			names = append(names, n)
		}
		sort.Strings(names)
		return strings.Join(names, ", ")
	}
	for name, val := range inputs {
		in, ok := byName[name]
		switch {
		case !ok:
			problems[name] = fmt.Sprintf("module %s %s has no input %s (its inputs: %s)", v.Module, v.Version, name, known())
		case in.Secret:
			problems[name] = fmt.Sprintf("%s is a secret input of %s %s; pass it as a secret input, never in the clear", name, v.Module, v.Version)
		default:
			if msg := typeProblem(in.Type, val); msg != "" {
				problems[name] = fmt.Sprintf("%s must be %s: %s", name, in.Type, msg)
			}
		}
	}
	for name := range secrets {
		in, ok := byName[name]
		switch {
		case !ok:
			problems[name] = fmt.Sprintf("module %s %s has no input %s (its inputs: %s)", v.Module, v.Version, name, known())
		case !in.Secret:
			problems[name] = fmt.Sprintf("%s is not a secret input of %s %s; pass it with the other inputs", name, v.Module, v.Version)
		}
	}
	for _, in := range v.Inputs {
		_, clear := inputs[in.Name]
		_, secret := secrets[in.Name]
		if in.Required && !clear && !secret {
			kind := "input"
			if in.Secret {
				kind = "secret input"
			}
			problems[in.Name] = fmt.Sprintf("%s %s %s needs the %s %s (%s)", v.Module, v.Version, kind, kind, in.Name, in.Description)
		}
	}
	return problems
}

// typeProblem checks the simple types; complex ones are left to
// Terraform's own validation at plan (which the run reports).
func typeProblem(typ string, val any) string {
	switch typ {
	case "string":
		if _, ok := val.(string); !ok {
			return fmt.Sprintf("got %T", val)
		}
	case "number":
		switch v := val.(type) {
		case float64, int, int64:
		case string: // Terraform converts numeric strings (the provider sends strings)
			if _, err := strconv.ParseFloat(v, 64); err != nil {
				return fmt.Sprintf("%q is not a number", v)
			}
		default:
			return fmt.Sprintf("got %T", val)
		}
	case "bool":
		switch v := val.(type) {
		case bool:
		case string:
			if v != "true" && v != "false" {
				return fmt.Sprintf("%q is not true or false", v)
			}
		default:
			return fmt.Sprintf("got %T", val)
		}
	}
	return ""
}
