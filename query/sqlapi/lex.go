package sqlapi

import (
	"fmt"
	"strings"
)

// tokKind classifies a token of ClickHouse SQL.
type tokKind uint8

const (
	tkSpace   tokKind = iota // whitespace
	tkComment                // -- … or /* … */
	tkIdent                  // bare identifier or keyword
	tkQuoted                 // "identifier" or `identifier`
	tkString                 // 'string literal'
	tkNumber                 // numeric literal
	tkPunct                  // operator or punctuation
	tkParam                  // {name:Type} query parameter
)

type token struct {
	kind tokKind
	pos  int    // byte offset in the statement
	text string // exactly as written
	// val is the identifier without quotes (tkIdent, tkQuoted), the
	// parameter name (tkParam) or the decoded literal (tkString).
	val string
	// typ is the declared type of a tkParam.
	typ string
}

// lexError is a refusal found while tokenizing.
type lexError struct {
	pos int
	msg string
}

func (e *lexError) Error() string { return fmt.Sprintf("at byte %d: %s", e.pos, e.msg) }

// lex splits a statement into tokens the way ClickHouse's lexer does, but is
// deliberately stricter: anything where ClickHouse versions disagree (nested
// comments, '#' comments, heredocs, non-ASCII outside literals) is refused,
// so that the guard and the server never read the text differently.
func lex(s string) ([]token, error) {
	var out []token
	i := 0
	for i < len(s) {
		c := s[i]
		start := i
		switch {
		case c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v':
			for i < len(s) && strings.IndexByte(" \t\n\r\f\v", s[i]) >= 0 {
				i++
			}
			out = append(out, token{kind: tkSpace, pos: start, text: s[start:i]})
		case c == '-' && i+1 < len(s) && s[i+1] == '-':
			end := strings.IndexByte(s[i:], '\n')
			if end < 0 {
				i = len(s)
			} else {
				i += end + 1
			}
			out = append(out, token{kind: tkComment, pos: start, text: s[start:i]})
		case c == '/' && i+1 < len(s) && s[i+1] == '*':
			end := strings.Index(s[i+2:], "*/")
			if end < 0 {
				return nil, &lexError{start, "unterminated /* comment"}
			}
			body := s[i+2 : i+2+end]
			if strings.Contains(body, "/*") {
				return nil, &lexError{start, "nested /* comments are not allowed"}
			}
			i += 2 + end + 2
			out = append(out, token{kind: tkComment, pos: start, text: s[start:i]})
		case c == '\'' || c == '"' || c == '`':
			val, n, err := readQuoted(s[i:], c)
			if err != nil {
				return nil, &lexError{start, err.Error()}
			}
			i += n
			k := tkQuoted
			if c == '\'' {
				k = tkString
			}
			out = append(out, token{kind: k, pos: start, text: s[start:i], val: val})
		case isIdentStart(c):
			for i < len(s) && isIdentChar(s[i]) {
				i++
			}
			out = append(out, token{kind: tkIdent, pos: start, text: s[start:i], val: s[start:i]})
		case c >= '0' && c <= '9' || c == '.' && i+1 < len(s) && s[i+1] >= '0' && s[i+1] <= '9' && !afterIdentOrClose(out):
			i++
			for i < len(s) {
				d := s[i]
				if isIdentChar(d) || d == '.' {
					i++
					continue
				}
				if (d == '+' || d == '-') && (s[i-1] == 'e' || s[i-1] == 'E' || s[i-1] == 'p' || s[i-1] == 'P') {
					i++
					continue
				}
				break
			}
			out = append(out, token{kind: tkNumber, pos: start, text: s[start:i]})
		case c == '{':
			if name, typ, n, ok := readParam(s[i:]); ok {
				i += n
				out = append(out, token{kind: tkParam, pos: start, text: s[start:i], val: name, typ: typ})
				break
			}
			i++
			out = append(out, token{kind: tkPunct, pos: start, text: "{"})
		case c == '#' || c == '$':
			return nil, &lexError{start, fmt.Sprintf("unexpected %q outside a string", c)}
		case c >= 0x80 || c < 0x20:
			return nil, &lexError{start, "unexpected character outside a string or quoted identifier"}
		default:
			n := 1
			if i+1 < len(s) {
				switch s[i : i+2] {
				case "<=", ">=", "!=", "<>", "==", "||", "->", "::":
					n = 2
				}
			}
			i += n
			out = append(out, token{kind: tkPunct, pos: start, text: s[start:i]})
		}
	}
	return out, nil
}

// afterIdentOrClose reports whether a '.' here is a member access (t.1,
// tuple.1) rather than the start of a number like .5.
func afterIdentOrClose(toks []token) bool {
	if len(toks) == 0 {
		return false
	}
	t := toks[len(toks)-1]
	return t.kind == tkIdent || t.kind == tkQuoted || t.kind == tkNumber || t.text == ")" || t.text == "]"
}

func isIdentStart(c byte) bool {
	return c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z'
}

func isIdentChar(c byte) bool { return isIdentStart(c) || c >= '0' && c <= '9' }

// readQuoted reads a quoted literal starting at s[0] == q, honouring
// backslash escapes and doubled quotes, and returns the decoded value and
// the number of bytes consumed.
func readQuoted(s string, q byte) (string, int, error) {
	var b strings.Builder
	i := 1
	for i < len(s) {
		c := s[i]
		switch {
		case c == '\\':
			if i+1 >= len(s) {
				return "", 0, fmt.Errorf("unterminated %c literal", q)
			}
			b.WriteByte(unescape(s[i+1]))
			i += 2
		case c == q:
			if i+1 < len(s) && s[i+1] == q {
				b.WriteByte(q)
				i += 2
				continue
			}
			return b.String(), i + 1, nil
		default:
			b.WriteByte(c)
			i++
		}
	}
	return "", 0, fmt.Errorf("unterminated %c literal", q)
}

func unescape(c byte) byte {
	switch c {
	case 'n':
		return '\n'
	case 't':
		return '\t'
	case 'r':
		return '\r'
	case '0':
		return 0
	case 'b':
		return '\b'
	case 'f':
		return '\f'
	}
	return c
}

// readParam reads a {name:Type} placeholder. The type may contain
// parentheses and quotes (DateTime('Asia/Ho_Chi_Minh'), Array(String)) but
// no braces.
func readParam(s string) (name, typ string, n int, ok bool) {
	i := 1
	for i < len(s) && s[i] == ' ' {
		i++
	}
	j := i
	for j < len(s) && isIdentChar(s[j]) {
		j++
	}
	if j == i || !isIdentStart(s[i]) {
		return "", "", 0, false
	}
	name = s[i:j]
	for j < len(s) && s[j] == ' ' {
		j++
	}
	if j >= len(s) || s[j] != ':' || j+1 < len(s) && s[j+1] == ':' {
		return "", "", 0, false
	}
	end := strings.IndexByte(s[j:], '}')
	if end < 0 {
		return "", "", 0, false
	}
	typ = strings.TrimSpace(s[j+1 : j+end])
	if typ == "" || strings.ContainsAny(typ, "{;") {
		return "", "", 0, false
	}
	return name, typ, j + end + 1, true
}

// quoteString renders v as a ClickHouse string literal that lexes back to
// exactly v.
func quoteString(v string) string {
	var b strings.Builder
	b.Grow(len(v) + 2)
	b.WriteByte('\'')
	for i := 0; i < len(v); i++ {
		switch c := v[i]; c {
		case '\\':
			b.WriteString(`\\`)
		case '\'':
			b.WriteString(`\'`)
		case '\n':
			b.WriteString(`\n`)
		case '\r':
			b.WriteString(`\r`)
		case '\t':
			b.WriteString(`\t`)
		case 0:
			b.WriteString(`\0`)
		default:
			b.WriteByte(c)
		}
	}
	b.WriteByte('\'')
	return b.String()
}
