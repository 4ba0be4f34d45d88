package sqlapi

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"regexp"
	"slices"
	"strings"

	"github.com/vn-ioc/ioc/docs"
)

// ColumnDoc is one column of a curated view.
type ColumnDoc struct {
	Name string `json:"name"`
	Type string `json:"type"`
	EN   string `json:"en"`
	VI   string `json:"vi"`
}

// ViewDoc is one curated view.
type ViewDoc struct {
	Name    string      `json:"name"`
	Title   string      `json:"title"` // heading of its section in docs/schema.md
	Scoped  bool        `json:"scoped"`
	Columns []ColumnDoc `json:"columns"`
}

var (
	headingRe = regexp.MustCompile("^### `([a-z_]+)`(.*)$")
	cellRe    = regexp.MustCompile("`([a-z_0-9]+)`")
)

type colText struct{ en, vi string }

// parseSchemaDoc reads the column tables of docs/schema.md: section → column
// → meaning in English and Vietnamese.
func parseSchemaDoc(md []byte) (titles map[string]string, cols map[string]map[string]colText) {
	titles, cols = map[string]string{}, map[string]map[string]colText{}
	section := ""
	sc := bufio.NewScanner(bytes.NewReader(md))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if m := headingRe.FindStringSubmatch(line); m != nil {
			section = m[1]
			titles[section] = strings.TrimSpace(strings.TrimLeft(strings.TrimSpace(m[2]), "—-"))
			cols[section] = map[string]colText{}
			continue
		}
		if strings.HasPrefix(line, "## ") {
			section = ""
		}
		if section == "" || !strings.HasPrefix(line, "| `") {
			continue
		}
		cells := strings.Split(strings.Trim(line, "|"), "|")
		if len(cells) < 4 {
			continue
		}
		t := colText{en: strings.TrimSpace(cells[len(cells)-2]), vi: strings.TrimSpace(cells[len(cells)-1])}
		for _, m := range cellRe.FindAllStringSubmatch(cells[0], -1) {
			cols[section][m[1]] = t
		}
	}
	return titles, cols
}

// Schema describes the curated views a caller may read: names and types
// from ClickHouse, meanings from docs/schema.md.
func (s *Service) Schema(ctx context.Context, c Caller) ([]ViewDoc, error) {
	titles, docCols := parseSchemaDoc(docs.Schema)
	rows, err := s.db.Conn.Query(ctx, "SELECT table, name, type FROM system.columns WHERE database = ?", s.db.Database())
	if err != nil {
		return nil, fmt.Errorf("read columns: %w", err)
	}
	defer rows.Close()
	live := map[string][]ColumnDoc{}
	for rows.Next() {
		var table, name, typ string
		if err := rows.Scan(&table, &name, &typ); err != nil {
			return nil, err
		}
		if slices.Contains(Views, table) {
			live[table] = append(live[table], ColumnDoc{Name: name, Type: typ})
		}
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	var out []ViewDoc
	for _, v := range Views {
		filter, allowed := "", true
		if c.Scope != nil {
			filter, allowed = c.Scope[v]
		}
		if !allowed {
			continue
		}
		vd := ViewDoc{Name: v, Title: titles[v], Scoped: c.Scope != nil && filter != ""}
		for _, col := range live[v] {
			t, ok := docCols[v][col.Name]
			if !ok {
				t = docCols[viewSource[v]][col.Name]
			}
			col.EN, col.VI = t.en, t.vi
			vd.Columns = append(vd.Columns, col)
		}
		out = append(out, vd)
	}
	return out, nil
}
