package sqlapi

import (
	"fmt"
	"slices"
	"strings"
)

// Refusal is why the guard refused a statement. Its text is meant for the
// analyst who wrote the statement.
type Refusal struct {
	Pos    int    // byte offset the refusal points at
	Reason string // what is not allowed, and why
}

func (r *Refusal) Error() string { return fmt.Sprintf("%s (at byte %d)", r.Reason, r.Pos) }

func refuse(pos int, format string, args ...any) *Refusal {
	return &Refusal{Pos: pos, Reason: fmt.Sprintf(format, args...)}
}

// Policy is what the guard allows beyond the fixed rules.
type Policy struct {
	// Database is ioc's database: the only one a statement may name.
	Database string
	// Scope, when set, restricts the statement to these tables and views
	// (by name, in Database), each read through its filter: a table whose
	// filter is "" is read as is, a table absent from the map is refused.
	// Used for leader tokens; nil means the whole database.
	Scope map[string]string
}

// Statement is a statement the guard accepted.
type Statement struct {
	// SQL to send to ClickHouse: the input without its trailing ';', with
	// scoped tables replaced by filtered subqueries and parameters bound.
	SQL string
	// Tables referenced, as written (lower case), in order of appearance.
	Tables []string
	// Kind is the statement's first word, lower case: select, with, show,
	// describe, desc or explain.
	Kind string
}

// Statement kinds allowed first.
var firstWords = []string{"select", "with", "show", "describe", "desc", "explain"}

// systemTables are the system tables a statement may read: none of them
// reveals another database, another user's queries or the server's
// configuration.
var systemTables = []string{"one", "numbers", "numbers_mt", "zeros", "zeros_mt", "functions", "data_type_families", "table_functions", "time_zones", "contributors"}

// tableFunctions are the table functions a statement may call where a table
// is expected: they generate data and reach nothing.
var tableFunctions = []string{"numbers", "numbers_mt", "zeros", "zeros_mt", "values", "generaterandom", "view", "null"}

// deniedFunctions may not be called anywhere: table functions that reach
// outside the database (files, URLs, other servers, other databases,
// external programs) and functions that read server-wide objects.
var deniedFunctions = []string{
	"url", "urlcluster", "file", "filecluster", "remote", "remotesecure", "cluster", "clusterallreplicas",
	"s3", "s3cluster", "gcs", "oss", "cosn", "azureblobstorage", "azureblobstoragecluster",
	"hdfs", "hdfscluster", "hive", "iceberg", "icebergs3", "icebergazure", "iceberghdfs", "iceberglocal",
	"icebergcluster", "icebergs3cluster", "deltalake", "deltalakecluster", "hudi", "hudicluster", "paimon",
	"mysql", "postgresql", "jdbc", "odbc", "mongodb", "redis", "sqlite", "arrowflight", "ytsaurus",
	"executable", "executablepool", "input", "merge", "dictionary", "mergetreeindex", "mergetreeprojection",
	"loop", "fuzzjson", "fuzzquery", "prometheusquery", "prometheusqueryrange", "timeseriesdata",
	"timeseriestags", "timeseriesmetrics", "timeseriesselector",
	"hascolumnintable", "joinget", "joingetornull", "catboostevaluate", "modelevaluate",
}

// clauseWords end a FROM list at the same nesting depth: until one of them,
// every comma at that depth separates tables (after a JOIN, ON, USING,
// FINAL, SAMPLE or an alias too), but for those of an ARRAY JOIN.
var clauseWords = []string{"where", "prewhere", "group", "order", "limit", "having", "union", "except", "intersect",
	"window", "qualify", "select", "settings", "format", "into"}

// joinWords may follow a table name without being its alias.
var joinWords = []string{"join", "array", "sample", "final", "on", "using", "like", "not", "ilike"}

// inFunctions are the function forms of IN (in(x, t), notIn(x, t), …),
// whose second argument may name a table the scope would not see.
var inFunctions = []string{"in", "notin", "globalin", "globalnotin", "nullin", "notnullin", "globalnullin", "globalnotnullin"}

// operandEnd says whether a token can end the left operand of an infix
// IN: a literal, a name that is not a keyword, or a closing bracket.
func operandEnd(t token) bool {
	switch t.kind {
	case tkString, tkNumber, tkQuoted, tkParam:
		return true
	case tkPunct:
		return t.text == ")" || t.text == "]"
	case tkIdent:
		return !slices.Contains(operatorWords, strings.ToLower(t.val))
	}
	return false
}

// operatorWords cannot end an operand.
var operatorWords = []string{"where", "prewhere", "having", "and", "or", "xor", "not", "select", "on", "when", "then",
	"else", "case", "by", "distinct", "is", "between", "like", "ilike", "in", "global", "return", "as", "if", "with"}

// aliasStop are words that can follow a table name without being its alias.
var aliasStop = append(append([]string{"inner", "left", "right", "full", "cross", "any", "all", "asof", "semi", "anti",
	"global", "paste", "as"}, clauseWords...), joinWords...)

// deniedWords may not appear as keywords at all.
var deniedWords = map[string]string{
	"settings": "SETTINGS is not allowed: limits are set by the server",
	"into":     "INTO OUTFILE is not allowed: results come back in the response",
}

// Guard checks one statement against the read-only rules and the policy,
// and returns it ready to run, or a *Refusal saying why not.
func Guard(sql string, p Policy, params map[string]any) (*Statement, error) {
	toks, err := lex(sql)
	if err != nil {
		le := err.(*lexError)
		return nil, refuse(le.pos, "%s", le.msg)
	}
	// Significant tokens: no spaces or comments.
	var sig []token
	for _, t := range toks {
		if t.kind != tkSpace && t.kind != tkComment {
			sig = append(sig, t)
		}
	}
	for len(sig) > 0 && sig[len(sig)-1].text == ";" && sig[len(sig)-1].kind == tkPunct {
		if len(sig) >= 2 && sig[len(sig)-2].text == ";" && sig[len(sig)-2].kind == tkPunct {
			return nil, refuse(sig[len(sig)-1].pos, "only one statement is allowed")
		}
		sig = sig[:len(sig)-1]
		break
	}
	if len(sig) == 0 {
		return nil, refuse(0, "the statement is empty")
	}
	g := &guard{p: p, sig: sig, db: strings.ToLower(p.Database)}
	if err := g.check(); err != nil {
		return nil, err
	}
	out, err := g.render(sql, toks, params)
	if err != nil {
		return nil, err
	}
	return &Statement{SQL: out, Tables: g.tables, Kind: g.kind}, nil
}

type guard struct {
	p      Policy
	db     string
	sig    []token
	tables []string
	// replace maps a significant token index (the first token of a table
	// reference) to what it becomes, and skip marks tokens it swallows.
	replace map[int]string
	skip    map[int]bool
	// kind is the statement's first word.
	kind string
}

func word(t token) string {
	if t.kind != tkIdent {
		return ""
	}
	return strings.ToLower(t.val)
}

// name is the lower-case name of an identifier, quoted or not.
func name(t token) (string, bool) {
	if t.kind == tkIdent || t.kind == tkQuoted {
		return strings.ToLower(t.val), true
	}
	return "", false
}

func (g *guard) at(i int) token {
	if i >= 0 && i < len(g.sig) {
		return g.sig[i]
	}
	return token{pos: -1}
}

func (g *guard) check() error {
	first := g.sig[0]
	i := 0
	for g.at(i).text == "(" && g.at(i).kind == tkPunct {
		i++
	}
	w := word(g.at(i))
	if !slices.Contains(firstWords, w) || (i > 0 && w != "select" && w != "with") {
		what := g.at(i).text
		if what == "" {
			what = first.text
		}
		return refuse(g.at(i).pos, "only SELECT, WITH, SHOW, DESCRIBE and EXPLAIN are allowed, not %s", strings.ToUpper(what))
	}
	g.kind = w
	switch w {
	case "show":
		// Only SHOW TABLES [FROM|IN ioc] [[NOT] LIKE|ILIKE '…'] [LIMIT n]
		// and SHOW CREATE [TABLE|VIEW] [ioc.]name, nothing after them.
		k := i + 2
		switch next := word(g.at(i + 1)); next {
		case "tables":
			if word(g.at(k)) == "from" || word(g.at(k)) == "in" {
				if db, _ := name(g.at(k + 1)); db != g.db {
					return refuse(g.at(k+1).pos, "only the database %s may be shown", g.p.Database)
				}
				k += 2
			}
			if word(g.at(k)) == "not" {
				k++
			}
			if w := word(g.at(k)); (w == "like" || w == "ilike") && g.at(k+1).kind == tkString {
				k += 2
			}
			if word(g.at(k)) == "limit" && g.at(k+1).kind == tkNumber {
				k += 2
			}
		case "create":
			if v := word(g.at(k)); v == "table" || v == "view" {
				k++
			}
			if t := g.at(k); t.kind != tkIdent && t.kind != tkQuoted {
				return refuse(t.pos, "SHOW CREATE takes a table or view of %s", g.p.Database)
			}
			if err := g.tableRef(k, false); err != nil {
				return err
			}
			k++
			if g.at(k).text == "." && g.at(k).kind == tkPunct {
				k += 2
			}
		default:
			return refuse(g.at(i+1).pos, "only SHOW TABLES and SHOW CREATE are allowed, not SHOW %s", strings.ToUpper(g.at(i+1).text))
		}
		if t := g.at(k); t.pos >= 0 && !(t.text == ";" && t.kind == tkPunct) {
			return refuse(t.pos, "nothing may follow SHOW TABLES [FROM %s] [LIKE '…'] [LIMIT n] or SHOW CREATE [TABLE] name", g.p.Database)
		}
	case "explain":
		k := i + 1
		switch word(g.at(k)) {
		case "ast", "syntax", "plan", "pipeline", "estimate":
			k++
		}
		if v := word(g.at(k)); v != "select" && v != "with" && g.at(k).text != "(" {
			return refuse(g.at(k).pos, "EXPLAIN may only explain a SELECT")
		}
	}

	// fromList[d] is true while a FROM list is open at nesting depth d;
	// calls[d] names the function whose parentheses opened depth d.
	depth := 0
	fromList := map[int]bool{}
	arrayJoin := map[int]bool{} // within an ARRAY JOIN's list
	calls := map[int]string{}
	commas := map[int]int{} // commas at the depth, within its call
	for k := 0; k < len(g.sig); k++ {
		t := g.sig[k]
		if t.kind == tkPunct {
			switch t.text {
			case ";":
				return refuse(t.pos, "only one statement is allowed")
			case "(":
				depth++
				calls[depth], _ = name(g.at(k - 1))
			case ")":
				delete(fromList, depth)
				delete(arrayJoin, depth)
				delete(calls, depth)
				delete(commas, depth)
				depth--
			case ",":
				commas[depth]++
				if fromList[depth] && !arrayJoin[depth] {
					if err := g.tableRef(k+1, true); err != nil {
						return err
					}
				}
			}
			continue
		}
		w := word(t)
		if msg, ok := deniedWords[w]; ok {
			return refuse(t.pos, "%s", msg)
		}
		if w == "format" && g.at(k+1).text != "(" {
			return refuse(t.pos, "FORMAT is not allowed: choose the format in the request")
		}
		if n, ok := name(t); ok && g.at(k+1).text == "(" && slices.Contains(deniedFunctions, n) {
			return refuse(t.pos, "%s() is not allowed: it reaches outside the database", t.val)
		}
		if n, ok := name(t); ok && g.at(k+1).text == "(" && slices.Contains(inFunctions, n) && (n != "in" || !g.infixIn(k)) {
			return refuse(t.pos, "the function form %s(…) is not allowed: write x IN (…) or x NOT IN (…)", t.val)
		}
		if n, ok := name(t); ok && strings.HasPrefix(n, "dictget") || n == "dicthas" || strings.HasPrefix(n, "dictisin") {
			return refuse(t.pos, "dictionary functions are not allowed: dictionaries live outside the database")
		}
		// A qualified name anywhere: db.table or db.table.column.
		if n, ok := name(t); ok && g.at(k+1).text == "." && g.at(k+1).kind == tkPunct {
			if n == "system" || n == "information_schema" {
				t2, _ := name(g.at(k + 2))
				if n != "system" || !slices.Contains(systemTables, t2) {
					return refuse(t.pos, "%s.%s is not allowed (allowed: system.%s)", n, g.at(k+2).text, strings.Join(systemTables, ", system."))
				}
			}
		}
		if slices.Contains(clauseWords, w) && word(g.at(k-1)) != "as" { // AS where: an alias
			delete(fromList, depth)
			delete(arrayJoin, depth)
		}
		if g.kind == "show" {
			continue // checked whole above
		}
		switch w {
		case "from":
			// FROM inside extract(), trim() and substring() does not name a
			// table.
			if slices.Contains([]string{"extract", "trim", "substring"}, calls[depth]) {
				continue
			}
			if err := g.tableRef(k+1, true); err != nil {
				return err
			}
			fromList[depth] = true
		case "join":
			if word(g.at(k-1)) == "array" {
				arrayJoin[depth] = true
				continue // ARRAY JOIN names columns
			}
			delete(arrayJoin, depth)
			if err := g.tableRef(k+1, true); err != nil {
				return err
			}
		case "in":
			// position(needle IN haystack) names a column; IN anywhere
			// else, a table, a subquery or a list.
			if calls[depth] != "position" || commas[depth] > 0 {
				if err := g.tableRef(k+1, true); err != nil {
					return err
				}
			}
		case "describe", "desc":
			if k == i {
				j := k + 1
				if word(g.at(j)) == "table" {
					j++
				}
				if err := g.tableRef(j, false); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

// infixIn says whether the IN at sig[k] has a left operand (x IN …, x NOT
// IN …, x GLOBAL [NOT] IN …) rather than being the function in(…).
func (g *guard) infixIn(k int) bool {
	j := k - 1
	if word(g.at(j)) == "not" {
		j--
	}
	if word(g.at(j)) == "global" {
		j--
	}
	return operandEnd(g.at(j))
}

// tableRef checks what stands at sig[k], where a table is expected: a
// subquery, a table function, or a [db.]table. When rewrite is set and a
// scope applies, the reference is replaced by its filtered subquery.
func (g *guard) tableRef(k int, rewrite bool) error {
	t := g.at(k)
	if t.text == "(" && t.kind == tkPunct || t.pos < 0 {
		return nil // subquery, or the end (the server reports the syntax)
	}
	n, ok := name(t)
	if !ok {
		return nil
	}
	if g.at(k+1).text == "(" {
		if !slices.Contains(tableFunctions, n) {
			return refuse(t.pos, "table function %s() is not allowed (allowed: %s)", t.val, strings.Join(tableFunctions, ", "))
		}
		return nil
	}
	db, table, last := "", n, k
	if g.at(k+1).text == "." && g.at(k+1).kind == tkPunct {
		if n2, ok := name(g.at(k + 2)); ok {
			db, table, last = n, n2, k+2
		}
	}
	switch {
	case db == "system":
		if !slices.Contains(systemTables, table) {
			return refuse(t.pos, "system.%s is not allowed (allowed: system.%s)", table, strings.Join(systemTables, ", system."))
		}
		return nil
	case db != "" && db != g.db:
		return refuse(t.pos, "database %s is not allowed: only %s may be read", db, g.p.Database)
	}
	g.tables = append(g.tables, table)
	if g.p.Scope == nil {
		return nil
	}
	filter, ok := g.p.Scope[table]
	if !ok {
		var names []string
		for v := range g.p.Scope {
			names = append(names, v)
		}
		slices.Sort(names)
		return refuse(t.pos, "%s is outside your scope: a unit-scoped token may read %s", table, strings.Join(names, ", "))
	}
	if !rewrite || filter == "" {
		return nil
	}
	// Replace [db.]table by a filtered subquery, keeping its name as the
	// alias unless the statement gives one.
	sub := fmt.Sprintf("(SELECT * FROM %s.%s WHERE %s)", g.p.Database, table, filter)
	next := g.at(last + 1)
	if nw := word(next); next.pos < 0 || next.kind == tkPunct || (next.kind == tkIdent && slices.Contains(aliasStop, nw) && nw != "as") {
		sub += " AS " + table
	}
	if g.replace == nil {
		g.replace, g.skip = map[int]string{}, map[int]bool{}
	}
	g.replace[k] = sub
	for j := k + 1; j <= last; j++ {
		g.skip[j] = true
	}
	return nil
}

// render writes the statement back from its tokens: without the trailing
// ';', with scoped references replaced and parameters bound.
func (g *guard) render(sql string, toks []token, params map[string]any) (string, error) {
	var b strings.Builder
	b.Grow(len(sql))
	used := map[string]bool{}
	si := 0 // index into g.sig of the next significant token
	for _, t := range toks {
		if t.kind == tkSpace || t.kind == tkComment {
			b.WriteString(t.text)
			continue
		}
		if si >= len(g.sig) {
			break // trailing ';'
		}
		idx := si
		si++
		if g.skip[idx] {
			continue
		}
		if r, ok := g.replace[idx]; ok {
			b.WriteString(r)
			continue
		}
		if t.kind == tkParam {
			v, ok := params[t.val]
			if !ok {
				return "", refuse(t.pos, "parameter %s has no value in params", t.val)
			}
			lit, err := bindLiteral(t.typ, v)
			if err != nil {
				return "", refuse(t.pos, "parameter %s: %v", t.val, err)
			}
			used[t.val] = true
			b.WriteString(lit)
			continue
		}
		b.WriteString(t.text)
	}
	for k := range params {
		if !used[k] {
			return "", refuse(0, "parameter %s is not used in the statement", k)
		}
	}
	return strings.TrimSpace(b.String()), nil
}
