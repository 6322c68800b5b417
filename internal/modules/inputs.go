package modules

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/ext/typeexpr"
	"github.com/hashicorp/hcl/v2/hclparse"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/hashicorp/terraform-config-inspect/tfconfig"
	"github.com/zclconf/go-cty/cty"
)

// Input is a module variable, as Terraform reads it.
type Input struct {
	Name        string
	Type        string // the variable's type constraint as written ("string", "number", "map(string)"); "any" when absent
	Description string
	Required    bool // no default
	Secret      bool // `sensitive = true`: passed only as a secret input
	// Validations are the variable's validation blocks, in source order.
	Validations []Validation

	constraint cty.Type           // Type, parsed
	defaults   *typeexpr.Defaults // optional(…, default) attributes of an object type
	// parseHCL: a value from the environment (a secret input, TF_VAR_<name>)
	// is read as an HCL expression, as Terraform reads it for a complex
	// type; for a primitive type or none it is the literal string.
	parseHCL bool
}

// Validation is one validation block of a variable.
type Validation struct {
	Condition    string // as written
	ErrorMessage string // as written
	// Unchecked says why the gateway cannot evaluate the condition before
	// a run ("" when it can): it refers to something other than the
	// variable itself, or calls a function the gateway does not evaluate.
	// A value for the variable is then refused at admission, not left to
	// fail at plan.
	Unchecked string

	condition, errorMessage hcl.Expression
	staticMessage           bool // the message refers to nothing: safe to show for a secret
}

// ReadInputs reads a module's variables with HashiCorp's own readers:
// terraform-config-inspect for each variable, typeexpr for its type
// constraint, and the variable's validation blocks (which
// terraform-config-inspect does not report) from the same parsed files.
// A module with override files is refused: Terraform merges them into
// the variables, and the gateway checks inputs against the variables as
// written.
func ReadInputs(dir string) ([]Input, error) {
	paths, err := configFiles(dir)
	if err != nil {
		return nil, err
	}
	parser := hclparse.NewParser()
	mod := tfconfig.NewModule(dir)
	type declared struct {
		block *hcl.Block
		file  *hcl.File
	}
	blocks := map[string]declared{}
	for _, p := range paths {
		var file *hcl.File
		var diags hcl.Diagnostics
		if strings.HasSuffix(p, ".json") {
			file, diags = parser.ParseJSONFile(p)
		} else {
			file, diags = parser.ParseHCLFile(p)
		}
		if diags.HasErrors() {
			return nil, errors.New(diags.Error())
		}
		if diags := tfconfig.LoadModuleFromFile(file, mod); diags.HasErrors() {
			return nil, errors.New(diags.Error())
		}
		content, _, diags := file.Body.PartialContent(&hcl.BodySchema{Blocks: []hcl.BlockHeaderSchema{{Type: "variable", LabelNames: []string{"name"}}}})
		if diags.HasErrors() {
			return nil, errors.New(diags.Error())
		}
		for _, b := range content.Blocks {
			name := b.Labels[0]
			if prev, dup := blocks[name]; dup {
				return nil, fmt.Errorf("variable %s is declared twice (%s and %s)", name, prev.block.DefRange, b.DefRange)
			}
			blocks[name] = declared{block: b, file: file}
		}
	}
	out := make([]Input, 0, len(mod.Variables))
	for name, v := range mod.Variables {
		in := Input{Name: name, Type: strings.TrimSpace(v.Type), Description: v.Description, Required: v.Required, Secret: v.Sensitive}
		if err := in.parseType(); err != nil {
			return nil, fmt.Errorf("variable %s: %w", name, err)
		}
		d, ok := blocks[name]
		if !ok {
			return nil, fmt.Errorf("variable %s: terraform-config-inspect read it, but its block was not found", name)
		}
		if in.Validations, err = readValidations(d.block, d.file, name); err != nil {
			return nil, fmt.Errorf("variable %s: %w", name, err)
		}
		out = append(out, in)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// configFiles lists a module's configuration files as Terraform does
// (*.tf and *.tf.json, not hidden or editor files), refusing override files.
func configFiles(dir string) ([]string, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, e := range entries {
		name := e.Name()
		if e.IsDir() || strings.HasPrefix(name, ".") || strings.HasPrefix(name, "~") || strings.HasSuffix(name, "~") ||
			(strings.HasPrefix(name, "#") && strings.HasSuffix(name, "#")) {
			continue
		}
		base, ok := strings.CutSuffix(name, ".tf")
		if !ok {
			if base, ok = strings.CutSuffix(name, ".tf.json"); !ok {
				continue
			}
		}
		if base == "override" || strings.HasSuffix(base, "_override") {
			return nil, fmt.Errorf("%s is an override file; catalog modules have none (the gateway checks inputs against the variables as written)", filepath.Join(dir, name))
		}
		out = append(out, filepath.Join(dir, name))
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%s holds no .tf files", dir)
	}
	sort.Strings(out)
	return out, nil
}

// parseType parses the type constraint with typeexpr, as Terraform does
// (optional attributes and their defaults included).
func (in *Input) parseType() error {
	if in.Type == "" {
		in.Type, in.constraint = "any", cty.DynamicPseudoType
		return nil // no type: the environment's value is the literal string
	}
	expr, diags := hclsyntax.ParseExpression([]byte(in.Type), "type", hcl.InitialPos)
	if diags.HasErrors() {
		return fmt.Errorf("type %s: %s", in.Type, diags.Error())
	}
	// Terraform still reads the bare legacy keywords list and map.
	switch hcl.ExprAsKeyword(expr) {
	case "list":
		in.constraint, in.parseHCL = cty.List(cty.DynamicPseudoType), true
		return nil
	case "map":
		in.constraint, in.parseHCL = cty.Map(cty.DynamicPseudoType), true
		return nil
	}
	ty, defaults, diags := typeexpr.TypeConstraintWithDefaults(expr)
	if diags.HasErrors() {
		return fmt.Errorf("type %s: %s", in.Type, diags.Error())
	}
	in.constraint, in.defaults, in.parseHCL = ty, defaults, !ty.IsPrimitiveType()
	return nil
}

func readValidations(block *hcl.Block, file *hcl.File, name string) ([]Validation, error) {
	content, _, diags := block.Body.PartialContent(&hcl.BodySchema{Blocks: []hcl.BlockHeaderSchema{{Type: "validation"}}})
	if diags.HasErrors() {
		return nil, errors.New(diags.Error())
	}
	var out []Validation
	for _, b := range content.Blocks {
		attrs, diags := b.Body.Content(&hcl.BodySchema{Attributes: []hcl.AttributeSchema{
			{Name: "condition", Required: true}, {Name: "error_message", Required: true}}})
		if diags.HasErrors() {
			return nil, errors.New(diags.Error())
		}
		cond, msg := attrs.Attributes["condition"].Expr, attrs.Attributes["error_message"].Expr
		v := Validation{
			Condition:    strings.TrimSpace(string(cond.Range().SliceBytes(file.Bytes))),
			ErrorMessage: unquote(strings.TrimSpace(string(msg.Range().SliceBytes(file.Bytes)))),
			Unchecked:    unchecked(cond, name),
			condition:    cond, errorMessage: msg,
		}
		if s, d := msg.Value(nil); !d.HasErrors() && s.Type() == cty.String && s.IsKnown() && !s.IsNull() {
			v.ErrorMessage, v.staticMessage = s.AsString(), true
		}
		out = append(out, v)
	}
	return out, nil
}

// unchecked says why a condition cannot be evaluated before a run with
// only the variable's value ("" when it can): every reference must be
// var.<name> itself and every function one of validationFunctions.
func unchecked(expr hcl.Expression, name string) string {
	for _, t := range expr.Variables() {
		if t.RootName() != "var" || len(t) < 2 {
			return fmt.Sprintf("the condition refers to %s; the gateway evaluates conditions on var.%s alone", traversalString(t), name)
		}
		if a, ok := t[1].(hcl.TraverseAttr); !ok || a.Name != name {
			return fmt.Sprintf("the condition refers to %s; the gateway evaluates conditions on var.%s alone", traversalString(t), name)
		}
	}
	se, ok := expr.(hclsyntax.Expression)
	if !ok {
		return "the condition is written in JSON syntax, which the gateway does not analyse; write the module in HCL"
	}
	var fn string
	hclsyntax.VisitAll(se, func(n hclsyntax.Node) hcl.Diagnostics {
		if c, ok := n.(*hclsyntax.FunctionCallExpr); ok && fn == "" {
			if _, known := validationFunctions[c.Name]; !known {
				fn = c.Name
			}
		}
		return nil
	})
	if fn != "" {
		return fmt.Sprintf("the condition calls %s(), which the gateway does not evaluate before a run", fn)
	}
	return ""
}

// unquote strips the quotes of a template as written ("… ${var.x} …").
func unquote(s string) string {
	if len(s) >= 2 && s[0] == '"' && s[len(s)-1] == '"' {
		return s[1 : len(s)-1]
	}
	return s
}

func traversalString(t hcl.Traversal) string {
	var b strings.Builder
	for _, s := range t {
		switch s := s.(type) {
		case hcl.TraverseRoot:
			b.WriteString(s.Name)
		case hcl.TraverseAttr:
			b.WriteString("." + s.Name)
		default:
			b.WriteString("[…]")
		}
	}
	return b.String()
}
