package cli

import (
	"fmt"
	"strings"
)

// README markers around the generated configuration table.
const (
	TableBegin = "<!-- BEGIN configuration table: generated from the services' SettingsFromEnv and pkg/config/docs.go; refresh with `go test ./pkg/cli -run TestREADMEConfigTable -update` -->"
	TableEnd   = "<!-- END configuration table -->"
)

// ConfigTable is the README's configuration table for programs: one row
// per variable, those several services share first.
func ConfigTable(programs []Program) string {
	type row struct {
		v     Var
		users []string
	}
	var rows []*row
	byKey := map[string]*row{}
	for _, p := range programs {
		for _, v := range p.Vars() {
			r := byKey[v.Key]
			if r == nil {
				r = &row{v: v}
				byKey[v.Key] = r
				rows = append(rows, r)
			}
			r.users = append(r.users, p.Name)
		}
	}
	// Shared variables first, then each service's own, each group in
	// the order the services read them.
	var shared, own []*row
	for _, r := range rows {
		if len(r.users) > 1 {
			shared = append(shared, r)
		} else {
			own = append(own, r)
		}
	}
	var b strings.Builder
	b.WriteString("| Variable | Service | Default | Meaning |\n|---|---|---|---|\n")
	for _, r := range append(shared, own...) {
		users := strings.Join(r.users, ", ")
		if len(r.users) == len(programs) {
			users = "all"
		}
		def := "(none)"
		if r.v.Default != "" {
			def = "`" + r.v.Default + "`"
		}
		meaning := r.v.Doc.Meaning
		if r.v.Doc.Secret {
			meaning += " Secret: may be given as `" + r.v.Key + "_FILE`."
		}
		fmt.Fprintf(&b, "| `%s` | %s | %s | %s |\n", r.v.Key, users, def, meaning)
	}
	return b.String()
}
