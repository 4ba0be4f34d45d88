package sqlapi

import (
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

// bindLiteral renders a parameter value as a literal of its declared
// ClickHouse type. The value is checked against the type first, and every
// value ends up inside a string literal written by quoteString or as a
// number formatted by strconv, so no value can change the statement's
// structure. ClickHouse 18.16 has no server-side query parameters; ioc binds
// them itself, in the server, never in the client.
func bindLiteral(typ string, v any) (string, error) {
	t := strings.TrimSpace(typ)
	if inner, ok := strings.CutPrefix(t, "Nullable("); ok && strings.HasSuffix(inner, ")") {
		if v == nil {
			return "NULL", nil
		}
		return bindLiteral(strings.TrimSuffix(inner, ")"), v)
	}
	if inner, ok := strings.CutPrefix(t, "Array("); ok && strings.HasSuffix(inner, ")") {
		arr, ok := v.([]any)
		if !ok {
			return "", fmt.Errorf("want a JSON array for %s", t)
		}
		parts := make([]string, len(arr))
		for i, e := range arr {
			s, err := bindLiteral(strings.TrimSuffix(inner, ")"), e)
			if err != nil {
				return "", fmt.Errorf("element %d: %w", i, err)
			}
			parts[i] = s
		}
		return "[" + strings.Join(parts, ", ") + "]", nil
	}
	if v == nil {
		return "", fmt.Errorf("null is only allowed for Nullable types")
	}
	switch t {
	case "String":
		s, ok := v.(string)
		if !ok {
			return "", fmt.Errorf("want a JSON string for String")
		}
		return quoteString(s), nil
	case "Int8", "Int16", "Int32", "Int64":
		bits, _ := strconv.Atoi(t[3:])
		n, err := integer(v, t)
		if err != nil {
			return "", err
		}
		i, err := strconv.ParseInt(n, 10, bits)
		if err != nil {
			return "", fmt.Errorf("%s out of range for %s", n, t)
		}
		return fmt.Sprintf("to%s(%s)", t, quoteString(strconv.FormatInt(i, 10))), nil
	case "UInt8", "UInt16", "UInt32", "UInt64":
		bits, _ := strconv.Atoi(t[4:])
		n, err := integer(v, t)
		if err != nil {
			return "", err
		}
		u, err := strconv.ParseUint(n, 10, bits)
		if err != nil {
			return "", fmt.Errorf("%s out of range for %s", n, t)
		}
		return fmt.Sprintf("to%s(%s)", t, quoteString(strconv.FormatUint(u, 10))), nil
	case "Float32", "Float64":
		f, ok := v.(json.Number)
		if !ok {
			if x, isF := v.(float64); isF {
				f = json.Number(strconv.FormatFloat(x, 'g', -1, 64))
				ok = true
			}
		}
		if !ok {
			return "", fmt.Errorf("want a JSON number for %s", t)
		}
		x, err := strconv.ParseFloat(string(f), 64)
		if err != nil || math.IsInf(x, 0) || math.IsNaN(x) {
			return "", fmt.Errorf("%s is not a finite number", f)
		}
		return fmt.Sprintf("to%s(%s)", t, quoteString(strconv.FormatFloat(x, 'g', -1, 64))), nil
	case "Date":
		s, ok := v.(string)
		if !ok {
			return "", fmt.Errorf("want a JSON string YYYY-MM-DD for Date")
		}
		d, err := time.Parse(time.DateOnly, s)
		if err != nil {
			return "", fmt.Errorf("%q is not a date YYYY-MM-DD", s)
		}
		return "toDate(" + quoteString(d.Format(time.DateOnly)) + ")", nil
	case "DateTime":
		s, ok := v.(string)
		if !ok {
			return "", fmt.Errorf("want a JSON string (RFC 3339) for DateTime")
		}
		d, err := time.Parse(time.RFC3339, s)
		if err != nil {
			return "", fmt.Errorf("%q is not an RFC 3339 time such as 2024-01-31T08:00:00+07:00", s)
		}
		return "toDateTime(" + quoteString(d.UTC().Format(time.DateTime)) + ", 'UTC')", nil
	}
	return "", fmt.Errorf("type %s is not supported for parameters (String, Int8…Int64, UInt8…UInt64, Float32, Float64, Date, DateTime, Nullable(T), Array(T))", t)
}

// integer accepts a JSON number without fraction or exponent.
func integer(v any, t string) (string, error) {
	switch n := v.(type) {
	case json.Number:
		if strings.ContainsAny(string(n), ".eE") {
			return "", fmt.Errorf("%s is not an integer", n)
		}
		return string(n), nil
	case float64:
		if n != math.Trunc(n) || math.Abs(n) > 1<<53 {
			return "", fmt.Errorf("%v is not an exact integer", n)
		}
		return strconv.FormatFloat(n, 'f', 0, 64), nil
	}
	return "", fmt.Errorf("want a JSON number for %s", t)
}
