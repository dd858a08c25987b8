// Command fieldmap derives, from Skaffold's own schema packages, the YAML-level changes each
// apiVersion upgrade makes by cloning a config through JSON (Go field names carry values
// across; YAML names and nesting may change). skiff's config crate applies the result
// (crates/config/src/upgrade/fields.rs) to upgrade older files in memory. Hand-written
// upgrade steps are not derived here; skiff implements those itself.
//
// Run from a Skaffold v2.14.0 source tree (see scripts/skaffold-compat/README.md):
//
//	mkdir hack/skiff-fieldmap && cp fieldmap.go hack/skiff-fieldmap/main.go
//	go run -mod=vendor ./hack/skiff-fieldmap > crates/config/src/upgrade/fields.rs
package main

import (
	"encoding/json"
	"fmt"
	"os"
	"reflect"
	"strings"

	"github.com/GoogleContainerTools/skaffold/v2/pkg/skaffold/schema/latest"
	v1 "github.com/GoogleContainerTools/skaffold/v2/pkg/skaffold/schema/v1"
	v1alpha2 "github.com/GoogleContainerTools/skaffold/v2/pkg/skaffold/schema/v1alpha2"
	v1alpha3 "github.com/GoogleContainerTools/skaffold/v2/pkg/skaffold/schema/v1alpha3"
	v1alpha4 "github.com/GoogleContainerTools/skaffold/v2/pkg/skaffold/schema/v1alpha4"
	v1alpha5 "github.com/GoogleContainerTools/skaffold/v2/pkg/skaffold/schema/v1alpha5"
	v1beta1 "github.com/GoogleContainerTools/skaffold/v2/pkg/skaffold/schema/v1beta1"
	v1beta10 "github.com/GoogleContainerTools/skaffold/v2/pkg/skaffold/schema/v1beta10"
	v1beta11 "github.com/GoogleContainerTools/skaffold/v2/pkg/skaffold/schema/v1beta11"
	v1beta12 "github.com/GoogleContainerTools/skaffold/v2/pkg/skaffold/schema/v1beta12"
	v1beta13 "github.com/GoogleContainerTools/skaffold/v2/pkg/skaffold/schema/v1beta13"
	v1beta14 "github.com/GoogleContainerTools/skaffold/v2/pkg/skaffold/schema/v1beta14"
	v1beta15 "github.com/GoogleContainerTools/skaffold/v2/pkg/skaffold/schema/v1beta15"
	v1beta16 "github.com/GoogleContainerTools/skaffold/v2/pkg/skaffold/schema/v1beta16"
	v1beta17 "github.com/GoogleContainerTools/skaffold/v2/pkg/skaffold/schema/v1beta17"
	v1beta2 "github.com/GoogleContainerTools/skaffold/v2/pkg/skaffold/schema/v1beta2"
	v1beta3 "github.com/GoogleContainerTools/skaffold/v2/pkg/skaffold/schema/v1beta3"
	v1beta4 "github.com/GoogleContainerTools/skaffold/v2/pkg/skaffold/schema/v1beta4"
	v1beta5 "github.com/GoogleContainerTools/skaffold/v2/pkg/skaffold/schema/v1beta5"
	v1beta6 "github.com/GoogleContainerTools/skaffold/v2/pkg/skaffold/schema/v1beta6"
	v1beta7 "github.com/GoogleContainerTools/skaffold/v2/pkg/skaffold/schema/v1beta7"
	v1beta8 "github.com/GoogleContainerTools/skaffold/v2/pkg/skaffold/schema/v1beta8"
	v1beta9 "github.com/GoogleContainerTools/skaffold/v2/pkg/skaffold/schema/v1beta9"
	v2alpha1 "github.com/GoogleContainerTools/skaffold/v2/pkg/skaffold/schema/v2alpha1"
	v2alpha2 "github.com/GoogleContainerTools/skaffold/v2/pkg/skaffold/schema/v2alpha2"
	v2alpha3 "github.com/GoogleContainerTools/skaffold/v2/pkg/skaffold/schema/v2alpha3"
	v2alpha4 "github.com/GoogleContainerTools/skaffold/v2/pkg/skaffold/schema/v2alpha4"
	v2beta1 "github.com/GoogleContainerTools/skaffold/v2/pkg/skaffold/schema/v2beta1"
	v2beta10 "github.com/GoogleContainerTools/skaffold/v2/pkg/skaffold/schema/v2beta10"
	v2beta11 "github.com/GoogleContainerTools/skaffold/v2/pkg/skaffold/schema/v2beta11"
	v2beta12 "github.com/GoogleContainerTools/skaffold/v2/pkg/skaffold/schema/v2beta12"
	v2beta13 "github.com/GoogleContainerTools/skaffold/v2/pkg/skaffold/schema/v2beta13"
	v2beta14 "github.com/GoogleContainerTools/skaffold/v2/pkg/skaffold/schema/v2beta14"
	v2beta15 "github.com/GoogleContainerTools/skaffold/v2/pkg/skaffold/schema/v2beta15"
	v2beta16 "github.com/GoogleContainerTools/skaffold/v2/pkg/skaffold/schema/v2beta16"
	v2beta17 "github.com/GoogleContainerTools/skaffold/v2/pkg/skaffold/schema/v2beta17"
	v2beta18 "github.com/GoogleContainerTools/skaffold/v2/pkg/skaffold/schema/v2beta18"
	v2beta19 "github.com/GoogleContainerTools/skaffold/v2/pkg/skaffold/schema/v2beta19"
	v2beta2 "github.com/GoogleContainerTools/skaffold/v2/pkg/skaffold/schema/v2beta2"
	v2beta20 "github.com/GoogleContainerTools/skaffold/v2/pkg/skaffold/schema/v2beta20"
	v2beta21 "github.com/GoogleContainerTools/skaffold/v2/pkg/skaffold/schema/v2beta21"
	v2beta22 "github.com/GoogleContainerTools/skaffold/v2/pkg/skaffold/schema/v2beta22"
	v2beta23 "github.com/GoogleContainerTools/skaffold/v2/pkg/skaffold/schema/v2beta23"
	v2beta24 "github.com/GoogleContainerTools/skaffold/v2/pkg/skaffold/schema/v2beta24"
	v2beta25 "github.com/GoogleContainerTools/skaffold/v2/pkg/skaffold/schema/v2beta25"
	v2beta26 "github.com/GoogleContainerTools/skaffold/v2/pkg/skaffold/schema/v2beta26"
	v2beta27 "github.com/GoogleContainerTools/skaffold/v2/pkg/skaffold/schema/v2beta27"
	v2beta28 "github.com/GoogleContainerTools/skaffold/v2/pkg/skaffold/schema/v2beta28"
	v2beta29 "github.com/GoogleContainerTools/skaffold/v2/pkg/skaffold/schema/v2beta29"
	v2beta3 "github.com/GoogleContainerTools/skaffold/v2/pkg/skaffold/schema/v2beta3"
	v2beta4 "github.com/GoogleContainerTools/skaffold/v2/pkg/skaffold/schema/v2beta4"
	v2beta5 "github.com/GoogleContainerTools/skaffold/v2/pkg/skaffold/schema/v2beta5"
	v2beta6 "github.com/GoogleContainerTools/skaffold/v2/pkg/skaffold/schema/v2beta6"
	v2beta7 "github.com/GoogleContainerTools/skaffold/v2/pkg/skaffold/schema/v2beta7"
	v2beta8 "github.com/GoogleContainerTools/skaffold/v2/pkg/skaffold/schema/v2beta8"
	v2beta9 "github.com/GoogleContainerTools/skaffold/v2/pkg/skaffold/schema/v2beta9"
	v3 "github.com/GoogleContainerTools/skaffold/v2/pkg/skaffold/schema/v3"
	v3alpha1 "github.com/GoogleContainerTools/skaffold/v2/pkg/skaffold/schema/v3alpha1"
)

type version struct {
	name   string
	config interface{}
}

var versions = []version{
	{v1alpha2.Version, v1alpha2.NewSkaffoldConfig()},
	{v1alpha3.Version, v1alpha3.NewSkaffoldConfig()},
	{v1alpha4.Version, v1alpha4.NewSkaffoldConfig()},
	{v1alpha5.Version, v1alpha5.NewSkaffoldConfig()},
	{v1beta1.Version, v1beta1.NewSkaffoldConfig()},
	{v1beta2.Version, v1beta2.NewSkaffoldConfig()},
	{v1beta3.Version, v1beta3.NewSkaffoldConfig()},
	{v1beta4.Version, v1beta4.NewSkaffoldConfig()},
	{v1beta5.Version, v1beta5.NewSkaffoldConfig()},
	{v1beta6.Version, v1beta6.NewSkaffoldConfig()},
	{v1beta7.Version, v1beta7.NewSkaffoldConfig()},
	{v1beta8.Version, v1beta8.NewSkaffoldConfig()},
	{v1beta9.Version, v1beta9.NewSkaffoldConfig()},
	{v1beta10.Version, v1beta10.NewSkaffoldConfig()},
	{v1beta11.Version, v1beta11.NewSkaffoldConfig()},
	{v1beta12.Version, v1beta12.NewSkaffoldConfig()},
	{v1beta13.Version, v1beta13.NewSkaffoldConfig()},
	{v1beta14.Version, v1beta14.NewSkaffoldConfig()},
	{v1beta15.Version, v1beta15.NewSkaffoldConfig()},
	{v1beta16.Version, v1beta16.NewSkaffoldConfig()},
	{v1beta17.Version, v1beta17.NewSkaffoldConfig()},
	{v1.Version, v1.NewSkaffoldConfig()},
	{v2alpha1.Version, v2alpha1.NewSkaffoldConfig()},
	{v2alpha2.Version, v2alpha2.NewSkaffoldConfig()},
	{v2alpha3.Version, v2alpha3.NewSkaffoldConfig()},
	{v2alpha4.Version, v2alpha4.NewSkaffoldConfig()},
	{v2beta1.Version, v2beta1.NewSkaffoldConfig()},
	{v2beta2.Version, v2beta2.NewSkaffoldConfig()},
	{v2beta3.Version, v2beta3.NewSkaffoldConfig()},
	{v2beta4.Version, v2beta4.NewSkaffoldConfig()},
	{v2beta5.Version, v2beta5.NewSkaffoldConfig()},
	{v2beta6.Version, v2beta6.NewSkaffoldConfig()},
	{v2beta7.Version, v2beta7.NewSkaffoldConfig()},
	{v2beta8.Version, v2beta8.NewSkaffoldConfig()},
	{v2beta9.Version, v2beta9.NewSkaffoldConfig()},
	{v2beta10.Version, v2beta10.NewSkaffoldConfig()},
	{v2beta11.Version, v2beta11.NewSkaffoldConfig()},
	{v2beta12.Version, v2beta12.NewSkaffoldConfig()},
	{v2beta13.Version, v2beta13.NewSkaffoldConfig()},
	{v2beta14.Version, v2beta14.NewSkaffoldConfig()},
	{v2beta15.Version, v2beta15.NewSkaffoldConfig()},
	{v2beta16.Version, v2beta16.NewSkaffoldConfig()},
	{v2beta17.Version, v2beta17.NewSkaffoldConfig()},
	{v2beta18.Version, v2beta18.NewSkaffoldConfig()},
	{v2beta19.Version, v2beta19.NewSkaffoldConfig()},
	{v2beta20.Version, v2beta20.NewSkaffoldConfig()},
	{v2beta21.Version, v2beta21.NewSkaffoldConfig()},
	{v2beta22.Version, v2beta22.NewSkaffoldConfig()},
	{v2beta23.Version, v2beta23.NewSkaffoldConfig()},
	{v2beta24.Version, v2beta24.NewSkaffoldConfig()},
	{v2beta25.Version, v2beta25.NewSkaffoldConfig()},
	{v2beta26.Version, v2beta26.NewSkaffoldConfig()},
	{v2beta27.Version, v2beta27.NewSkaffoldConfig()},
	{v2beta28.Version, v2beta28.NewSkaffoldConfig()},
	{v2beta29.Version, v2beta29.NewSkaffoldConfig()},
	{v3alpha1.Version, v3alpha1.NewSkaffoldConfig()},
	{v3.Version, v3.NewSkaffoldConfig()},
	{latest.Version, latest.NewSkaffoldConfig()},
}

// Op is one change, at the mapping `At` (a path in the old file; "*" is every item of a
// sequence or every value of a mapping): the value at the relative path `From` moves to `To`
// (an empty `To` merges its keys into the mapping), or is dropped when `Remove`.
type Op struct {
	At     []string
	From   []string
	To     []string
	Remove bool
}

const schemaPkg = "github.com/GoogleContainerTools/skaffold/v2/pkg/skaffold/schema/"

func deref(t reflect.Type) reflect.Type {
	for t.Kind() == reflect.Ptr {
		t = t.Elem()
	}
	return t
}

// isSchemaStruct: a struct the upgrade walks into (Skaffold's own schema types); others
// (yaml nodes, helpers) are values.
func isSchemaStruct(t reflect.Type) bool {
	t = deref(t)
	return t.Kind() == reflect.Struct && strings.HasPrefix(t.PkgPath(), schemaPkg) &&
		!strings.HasSuffix(t.PkgPath(), "/util")
}

type term struct {
	json []string
	yrel []string
	t    reflect.Type
}

func yamlTag(f reflect.StructField) (name string, inline bool, skip bool) {
	tag := f.Tag.Get("yaml")
	parts := strings.Split(tag, ",")
	if parts[0] == "-" {
		// Not read from YAML at all.
		return "", false, true
	}
	for _, p := range parts[1:] {
		if p == "inline" {
			inline = true
		}
	}
	name = parts[0]
	if name == "" && !inline {
		name = strings.ToLower(f.Name)
	}
	return name, inline, false
}

// terms: the fields of a struct with a YAML key of their own, through inline structs.
func terms(t reflect.Type, json, yrel []string) []term {
	var out []term
	t = deref(t)
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		if f.PkgPath != "" {
			continue
		}
		name, inline, skip := yamlTag(f)
		if skip {
			continue
		}
		j := json
		if !f.Anonymous {
			j = append(append([]string{}, json...), f.Name)
		}
		if inline && isSchemaStruct(f.Type) {
			out = append(out, terms(f.Type, j, yrel)...)
			continue
		}
		y := append(append([]string{}, yrel...), name)
		if f.Anonymous && isSchemaStruct(f.Type) {
			out = append(out, terms(f.Type, j, y)...)
			continue
		}
		out = append(out, term{json: j, yrel: y, t: f.Type})
	}
	return out
}

// resolve finds the JSON path `json` in `t`: its YAML path relative to `t`'s mapping.
func resolve(t reflect.Type, json []string) ([]string, reflect.Type, bool) {
	t = deref(t)
	if len(json) == 0 {
		return nil, t, true
	}
	if t.Kind() != reflect.Struct {
		return nil, nil, false
	}
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		if f.PkgPath != "" {
			continue
		}
		name, inline, skip := yamlTag(f)
		if skip {
			continue
		}
		if f.Anonymous {
			if y, ft, ok := resolve(f.Type, json); ok {
				if inline {
					return y, ft, true
				}
				return append([]string{name}, y...), ft, true
			}
			continue
		}
		if f.Name != json[0] {
			continue
		}
		y, ft, ok := resolve(f.Type, json[1:])
		if !ok {
			return nil, nil, false
		}
		if inline {
			return y, ft, true
		}
		return append([]string{name}, y...), ft, true
	}
	return nil, nil, false
}

func equal(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

type walker struct {
	ops     []Op
	visited map[[2]reflect.Type]int
}

func (w *walker) value(o, n reflect.Type, at []string) {
	o, n = deref(o), deref(n)
	key := [2]reflect.Type{o, n}
	if w.visited[key] > 0 {
		return
	}
	w.visited[key]++
	defer func() { w.visited[key]-- }()
	switch {
	case isSchemaStruct(o) && isSchemaStruct(n):
		w.structs(o, n, at)
	case (o.Kind() == reflect.Slice || o.Kind() == reflect.Map) && o.Kind() == n.Kind():
		w.value(o.Elem(), n.Elem(), append(append([]string{}, at...), "*"))
	}
}

func (w *walker) structs(o, n reflect.Type, at []string) {
	for _, t := range terms(o, nil, nil) {
		y, nt, ok := resolve(n, t.json)
		if !ok || !compatible(t.t, nt) {
			w.ops = append(w.ops, Op{At: at, From: t.yrel, Remove: true})
			continue
		}
		w.value(t.t, nt, append(append([]string{}, at...), t.yrel...))
		if !equal(t.yrel, y) {
			w.ops = append(w.ops, Op{At: at, From: t.yrel, To: y})
		}
	}
}

// compatible: whether JSON carries a value of type o into type n.
func compatible(o, n reflect.Type) bool {
	o, n = deref(o), deref(n)
	if o == n {
		return true
	}
	k := func(t reflect.Type) string {
		switch t.Kind() {
		case reflect.Struct, reflect.Map:
			return "object"
		case reflect.Slice, reflect.Array:
			return "array"
		case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
			reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64,
			reflect.Float32, reflect.Float64:
			return "number"
		case reflect.Interface:
			return "any"
		}
		return t.Kind().String()
	}
	if k(o) == "any" || k(n) == "any" {
		return true
	}
	if _, ok := reflect.New(n).Interface().(json.Unmarshaler); ok {
		return true
	}
	if _, ok := reflect.New(o).Interface().(json.Marshaler); ok {
		return true
	}
	return k(o) == k(n)
}

func quoted(path []string) string {
	parts := make([]string, len(path))
	for i, p := range path {
		parts[i] = fmt.Sprintf("%q", p)
	}
	return "&[" + strings.Join(parts, ", ") + "]"
}

func main() {
	out := os.Stdout
	fmt.Fprintln(out, "// @generated by scripts/skaffold-compat/fieldmap.go from Skaffold v2.14.0's schema packages.")
	fmt.Fprintln(out, "// Do not edit: regenerate (see scripts/skaffold-compat/README.md).")
	fmt.Fprintln(out, "")
	fmt.Fprintln(out, "use super::{FieldOp, FieldStep};")
	fmt.Fprintln(out, "")
	fmt.Fprintln(out, "pub(super) const FIELD_STEPS: &[FieldStep] = &[")
	for i := 0; i+1 < len(versions); i++ {
		o := reflect.TypeOf(versions[i].config)
		n := reflect.TypeOf(versions[i+1].config)
		w := &walker{visited: map[[2]reflect.Type]int{}}
		w.value(o, n, []string{})
		fmt.Fprintf(out, "    FieldStep {\n        from: %q,\n        to: %q,\n        ops: &[\n", versions[i].name, versions[i+1].name)
		for _, op := range w.ops {
			to := "None"
			if !op.Remove {
				to = "Some(" + quoted(op.To) + ")"
			}
			fmt.Fprintf(out, "            FieldOp {\n                at: %s,\n                from: %s,\n                to: %s,\n            },\n", quoted(op.At), quoted(op.From), to)
		}
		fmt.Fprintln(out, "        ],\n    },")
	}
	fmt.Fprintln(out, "];")
}
