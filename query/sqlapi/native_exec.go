package sqlapi

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/url"
	"reflect"
	"strings"
	"sync"
	"time"

	"github.com/apache/arrow/go/v15/arrow"
	"github.com/apache/arrow/go/v15/arrow/array"
	"github.com/apache/arrow/go/v15/arrow/ipc"

	"github.com/vn-ioc/ioc/internal/api"
)

// nativeHTTP reads results from ClickHouse's HTTP interface in the Native
// format, as the read-only user.
type nativeHTTP struct {
	base           string // http://host:port/?database=…
	client         *http.Client
	user, password string
}

// openNative checks ClickHouse's HTTP interface answers the read-only user;
// nil (the driver's path) when it is off or does not.
func (s *Service) openNative(ctx context.Context, addr string) *nativeHTTP {
	if addr == "" || addr == "off" {
		return nil
	}
	tr := &http.Transport{
		DialContext:         (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConnsPerHost: 4,
		ReadBufferSize:      256 << 10,
		// Below ClickHouse's keep_alive_timeout (3 s by default), which
		// closes an idle connection from the server's side.
		IdleConnTimeout:    2 * time.Second,
		DisableCompression: true,
	}
	n := &nativeHTTP{
		base:   "http://" + addr + "/?database=" + url.QueryEscape(s.db.Database()),
		client: &http.Client{Transport: tr},
		user:   s.cfg.ReaderUser, password: s.cfg.ReaderPassword,
	}
	cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	resp, err := n.post(cctx, "", "SELECT 1 AS one", "Native")
	if err == nil {
		_, _, err = newNativeReader(resp.Body).block([]string{"one"}, []string{"UInt8"}, []*ntype{{kind: nFixed, width: 1, arrow: arrow.PrimitiveTypes.Uint8}})
		resp.Body.Close()
	}
	if err != nil {
		s.log.Warn("the SQL API reads results row by row over the native protocol: ClickHouse's HTTP interface does not answer (set IOC_CLICKHOUSE_HTTP_ADDR, or off)", "addr", addr, "err", err)
		return nil
	}
	return n
}

// post sends a statement for a result in format and returns the response
// of a 200; any other status is returned as the error ClickHouse wrote.
func (n *nativeHTTP) post(ctx context.Context, queryID, sql, format string) (*http.Response, error) {
	u := n.base
	if queryID != "" {
		u += "&query_id=" + url.QueryEscape(queryID)
	}
	// On its own line: the statement may end with a -- comment.
	req, err := http.NewRequestWithContext(ctx, "POST", u, strings.NewReader(sql+"\nFORMAT "+format))
	if err != nil {
		return nil, err
	}
	req.SetBasicAuth(n.user, n.password)
	// A read-only statement may be sent again: when the connection it went
	// out on fails before any answer (ClickHouse closed it, idle, just as
	// it was reused; or something between cut it), the transport sends it
	// on a new one instead of failing (which would send the statement
	// through the driver's path). The key is not sent. Should the first
	// still run, ClickHouse refuses the second for its query id, or both
	// run: read-only (the user is checked), at worst twice the work.
	req.Header["X-Idempotency-Key"] = nil
	resp, err := n.client.Do(req)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
		resp.Body.Close()
		return nil, parseHTTPException(body)
	}
	return resp, nil
}

// nativeResult is a statement whose columns all have Native decoders.
type nativeResult struct {
	s     *Service
	cols  []*column
	names []string
	types []string
	nts   []*ntype
}

// nativeColumns learns the statement's columns by running it under LIMIT 0
// over HTTP (ClickHouse plans it and reads nothing; the header of
// TabSeparatedWithNamesAndTypes names them even when there are no rows)
// and says whether every column has a Native decoder. Any failure leaves
// the statement to the driver, which reports it.
func (s *Service) nativeColumns(ctx context.Context, sql, queryID string) (*nativeResult, bool) {
	resp, err := s.native.post(ctx, queryID+"-columns", "SELECT * FROM (\n"+sql+"\n) LIMIT 0", "TabSeparatedWithNamesAndTypes")
	if err != nil {
		// A statement ClickHouse refuses is refused again on the driver's
		// path, with its message; any other failure is the interface's.
		var ex *httpException
		if !errors.As(err, &ex) && ctx.Err() == nil {
			s.log.Warn("sql: ClickHouse's HTTP interface failed; the statement is read through the driver", "query_id", queryID, "err", err)
		}
		return nil, false
	}
	head, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	resp.Body.Close()
	if err != nil {
		return nil, false
	}
	lines := strings.Split(string(head), "\n")
	if len(lines) < 2 {
		return nil, false
	}
	names, types := strings.Split(lines[0], "\t"), strings.Split(lines[1], "\t")
	if len(names) != len(types) || (len(lines) > 2 && lines[2] != "") {
		return nil, false
	}
	nr := &nativeResult{s: s}
	for i := range names {
		c := newColumn(unescapeTSV(names[i]), unescapeTSV(types[i]), s.serverTZ)
		nt, ok := nativeType(c.Type, c.tz)
		if !ok {
			return nil, false
		}
		c.dest = reflect.New(goType(nt)).Interface()
		nr.cols = append(nr.cols, c)
		nr.names = append(nr.names, c.Name)
		nr.types = append(nr.types, c.Type)
		nr.nts = append(nr.nts, nt)
	}
	return nr, true
}

// unescapeTSV undoes ClickHouse's escaping of a TabSeparated field.
func unescapeTSV(f string) string {
	if !strings.Contains(f, "\\") {
		return f
	}
	var b strings.Builder
	for i := 0; i < len(f); i++ {
		if f[i] != '\\' || i+1 == len(f) {
			b.WriteByte(f[i])
			continue
		}
		i++
		switch f[i] {
		case 'b':
			b.WriteByte('\b')
		case 'f':
			b.WriteByte('\f')
		case 'r':
			b.WriteByte('\r')
		case 'n':
			b.WriteByte('\n')
		case 't':
			b.WriteByte('\t')
		case '0':
			b.WriteByte(0)
		default: // \\, \', and any other character stands for itself
			b.WriteByte(f[i])
		}
	}
	return b.String()
}

// stream runs the statement over HTTP and writes its rows: one Arrow
// record batch per Native block, or the text formats row by row from the
// block's columns.
func (nr *nativeResult) stream(qctx context.Context, cancel context.CancelFunc, sql, format string, sink Sink, maxRows int64, sum *summary) (runErr, err error) {
	s := nr.s
	resp, err := s.native.post(qctx, sum.QueryID, sql, "Native")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	sink.Start(contentTypes[format])
	var out blockWriter
	if format == FormatArrow {
		out = newArrowBlocks(nr.cols, sink, sum)
	} else {
		out, err = newTextBlocks(nr, format, sink, sum)
		if err != nil {
			return nil, err
		}
	}
	ra := newReadahead(resp.Body, 8, 512<<10)
	defer ra.Close()
	rd := newNativeReader(ra)
	rd.maxBlock = s.cfg.MaxBlockBytes
	arrays := make([]arrow.Array, len(nr.nts))
	for {
		n, data, err := rd.block(nr.names, nr.types, nr.nts)
		if err == io.EOF {
			return nil, nil
		}
		if errors.Is(err, errBlockShape) && sum.Rows == 0 && sink.Written() == 0 {
			return nil, err // nothing sent yet: the caller reads it another way
		}
		var big *BlockTooLargeError
		if errors.As(err, &big) {
			return api.Errorf(api.EINVALID, big.Error()), nil
		}
		if err != nil {
			var ne net.Error
			if _, ok := err.(*httpException); !ok && qctx.Err() == nil && !errors.As(err, &ne) &&
				!errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, io.EOF) {
				// Not the connection: the bytes were not what the decoder expects.
				s.log.Error("reading ClickHouse's Native result", "query_id", sum.QueryID, "err", err)
				err = api.Errorf(api.EINTERNAL, "reading the result from ClickHouse failed: "+err.Error())
			}
			return err, nil
		}
		if n == 0 {
			continue
		}
		if sum.Rows >= maxRows || sink.Written() >= s.cfg.MaxBytes {
			sum.Truncated = true
			cancel()
			return nil, nil
		}
		for i, d := range data {
			arrays[i] = array.MakeFromData(d)
		}
		if left := maxRows - sum.Rows; int64(n) > left {
			n = int(left)
			sum.Truncated = true
		}
		wrote, err := out.write(arrays, n, func() bool { return sink.Written() >= s.cfg.MaxBytes })
		for _, a := range arrays {
			a.Release()
		}
		rd.release()
		sum.Rows += int64(wrote)
		if err != nil {
			return err, nil
		}
		if wrote < n {
			sum.Truncated = true
		}
		if sum.Truncated {
			cancel()
			return nil, nil
		}
	}
}

// blockWriter writes the first n rows of a block's columns and says how
// many it wrote: fewer when full() turned true between rows.
type blockWriter interface {
	write(cols []arrow.Array, n int, full func() bool) (int, error)
}

// arrowBlocks writes each block as one record batch.
type arrowBlocks struct {
	schema *arrow.Schema
	bw     *bufio.Writer
	iw     *ipc.Writer
}

func newArrowBlocks(cols []*column, sink Sink, sum *summary) *arrowBlocks {
	ab := &arrowBlocks{schema: arrowSchema(cols)}
	// One write of the response per record batch, not one per buffer.
	ab.bw = bufio.NewWriterSize(sink, 256<<10)
	ab.iw = ipc.NewWriter(ab.bw, ipc.WithSchema(ab.schema))
	sum.end = func(sm summary) error {
		if sm.Err != nil {
			return nil // no end-of-stream marker: the stream is visibly cut short
		}
		if err := ab.iw.Close(); err != nil {
			return err
		}
		return ab.bw.Flush()
	}
	return ab
}

func (ab *arrowBlocks) write(cols []arrow.Array, n int, _ func() bool) (int, error) {
	var rec arrow.Record = array.NewRecord(ab.schema, cols, -1)
	if int64(n) < rec.NumRows() {
		cut := rec.NewSlice(0, int64(n))
		rec.Release()
		rec = cut
	}
	err := ab.iw.Write(rec)
	rec.Release()
	if err == nil {
		err = ab.bw.Flush()
	}
	if err != nil {
		return 0, err
	}
	return n, nil
}

// textBlocks hands a block's rows one by one to a text encoder, through
// the same scan targets the driver's path fills.
type textBlocks struct {
	enc  encoder
	cols []*column
	nts  []*ntype
}

func newTextBlocks(nr *nativeResult, format string, sink Sink, sum *summary) (*textBlocks, error) {
	tb := &textBlocks{enc: newEncoder(format, sink), cols: nr.cols, nts: nr.nts}
	if err := tb.enc.begin(nr.cols); err != nil {
		return nil, err
	}
	sum.end = tb.enc.end
	return tb, nil
}

func (tb *textBlocks) write(cols []arrow.Array, n int, full func() bool) (int, error) {
	for i := 0; i < n; i++ {
		if i > 0 && full() {
			return i, nil
		}
		for j, c := range tb.cols {
			setCell(c.dest, cols[j], i, tb.nts[j], c.tz)
		}
		if err := tb.enc.row(); err != nil {
			return i, err
		}
	}
	return n, nil
}

// readahead reads r on its own goroutine into up to n buffers of size
// bytes, so that ClickHouse keeps sending while a block is decoded and
// written. Close stops it.
type readahead struct {
	full  chan []byte
	empty chan []byte
	errc  chan error
	cur   []byte // the buffer being read from, with its unread part
	buf   []byte // cur's whole buffer, returned to empty once read
	stop  chan struct{}
	err   error
	once  sync.Once
}

func newReadahead(r io.Reader, n, size int) *readahead {
	ra := &readahead{full: make(chan []byte, n), empty: make(chan []byte, n), errc: make(chan error, 1), stop: make(chan struct{})}
	for i := 0; i < n; i++ {
		ra.empty <- make([]byte, size)
	}
	go func() {
		for {
			var b []byte
			select {
			case b = <-ra.empty:
			case <-ra.stop:
				return
			}
			m, err := io.ReadAtLeast(r, b, 1)
			if m > 0 {
				ra.full <- b[:m]
			}
			if err != nil {
				ra.errc <- err
				close(ra.full)
				return
			}
		}
	}()
	return ra
}

func (ra *readahead) Read(p []byte) (int, error) {
	for len(ra.cur) == 0 {
		if ra.buf != nil {
			ra.empty <- ra.buf[:cap(ra.buf)]
			ra.buf = nil
		}
		if ra.err != nil {
			return 0, ra.err
		}
		b, ok := <-ra.full
		if !ok {
			ra.err = <-ra.errc
			continue
		}
		ra.cur, ra.buf = b, b
	}
	n := copy(p, ra.cur)
	ra.cur = ra.cur[n:]
	return n, nil
}

// Close ends the reading goroutine; the underlying reader must be closed
// too for a read in progress to return.
func (ra *readahead) Close() { ra.once.Do(func() { close(ra.stop) }) }
