package sqlapi

import (
	"io"
	"mime"
	"strings"
)

// Formats of a result.
const (
	FormatJSON   = "json"
	FormatNDJSON = "ndjson"
	FormatCSV    = "csv"
	FormatArrow  = "arrow"
)

// Formats lists the formats in the order Accept negotiation prefers them.
var Formats = []string{FormatJSON, FormatNDJSON, FormatCSV, FormatArrow}

var contentTypes = map[string]string{
	FormatJSON:   "application/json; charset=utf-8",
	FormatNDJSON: "application/x-ndjson",
	FormatCSV:    "text/csv; charset=utf-8; header=present",
	FormatArrow:  "application/vnd.apache.arrow.stream",
}

// formatFor picks the format for an Accept header; "" when none matches.
func formatFor(accept string) string {
	if strings.TrimSpace(accept) == "" {
		return FormatJSON
	}
	for _, part := range strings.Split(accept, ",") {
		mt, _, err := mime.ParseMediaType(strings.TrimSpace(part))
		if err != nil {
			continue
		}
		switch mt {
		case "application/json", "*/*", "application/*":
			return FormatJSON
		case "application/x-ndjson", "application/jsonl", "application/json-seq":
			return FormatNDJSON
		case "text/csv", "text/*":
			return FormatCSV
		case "application/vnd.apache.arrow.stream":
			return FormatArrow
		}
	}
	return ""
}

// summary is what is known once the last row is written.
type summary struct {
	QueryID   string
	Rows      int64
	Truncated bool // max_rows or max_bytes reached; more rows existed
	ElapsedMS int64
	Err       error // the query failed after the first row was written

	idSuffix string // of the query id in ClickHouse, for a second reading of the statement

	end func(summary) error // completes the output (set by the stream)
}

// encoder writes a result in one format, row by row, with bounded memory.
type encoder interface {
	begin(cols []*column) error
	// row writes the values currently in the columns' scan targets.
	row() error
	// end completes the output. With s.Err set, formats that cannot carry
	// an error in-band leave the output visibly incomplete.
	end(s summary) error
}

func newEncoder(format string, w io.Writer) encoder {
	switch format {
	case FormatNDJSON:
		return &jsonEncoder{w: w, ndjson: true}
	case FormatCSV:
		return &csvEncoder{w: w}
	case FormatArrow:
		return &arrowEncoder{w: w}
	}
	return &jsonEncoder{w: w}
}

// flushAt is the size at which text encoders hand their buffer to the
// response writer.
const flushAt = 64 << 10
