package sqlapi

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
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
		IdleConnTimeout:     time.Minute,
		DisableCompression:  true,
	}
	n := &nativeHTTP{
		base:   "http://" + addr + "/?database=" + url.QueryEscape(s.db.Database()),
		client: &http.Client{Transport: tr},
		user:   s.cfg.ReaderUser, password: s.cfg.ReaderPassword,
	}
	cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	resp, err := n.post(cctx, "", "SELECT 1 AS one")
	if err == nil {
		_, _, err = newNativeReader(resp.Body).block([]string{"one"}, []string{"UInt8"}, []*ntype{{kind: nFixed, width: 1, arrow: arrow.PrimitiveTypes.Uint8}})
		resp.Body.Close()
	}
	if err != nil {
		s.log.Warn("the SQL API's Arrow export reads row by row: ClickHouse's HTTP interface does not answer (set IOC_CLICKHOUSE_HTTP_ADDR, or off)", "addr", addr, "err", err)
		return nil
	}
	return n
}

// post sends a statement and returns the response of a 200; any other
// status is returned as the error ClickHouse wrote.
func (n *nativeHTTP) post(ctx context.Context, queryID, sql string) (*http.Response, error) {
	u := n.base
	if queryID != "" {
		u += "&query_id=" + url.QueryEscape(queryID)
	}
	// On its own line: the statement may end with a -- comment.
	req, err := http.NewRequestWithContext(ctx, "POST", u, strings.NewReader(sql+"\nFORMAT Native"))
	if err != nil {
		return nil, err
	}
	req.SetBasicAuth(n.user, n.password)
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
// (ClickHouse plans it and reads nothing) and says whether every column
// has a Native decoder. Any failure leaves the statement to the driver,
// which reports it.
func (s *Service) nativeColumns(ctx context.Context, sql, queryID string) (*nativeResult, bool) {
	rows, err := s.reader.Query(clickhouse.Context(ctx, clickhouse.WithQueryID(queryID+"-columns")), "SELECT * FROM (\n"+sql+"\n) LIMIT 0")
	if err != nil {
		return nil, false
	}
	types := rows.ColumnTypes()
	_ = rows.Close()
	nr := &nativeResult{s: s, cols: newColumns(types, s.serverTZ)}
	for _, c := range nr.cols {
		nt, ok := nativeType(c.Type, c.tz)
		if !ok {
			return nil, false
		}
		nr.names = append(nr.names, c.Name)
		nr.types = append(nr.types, c.Type)
		nr.nts = append(nr.nts, nt)
	}
	return nr, true
}

// stream runs the statement over HTTP and writes one Arrow record batch
// per Native block.
func (nr *nativeResult) stream(qctx context.Context, cancel context.CancelFunc, sql, format string, sink Sink, maxRows int64, sum *summary) (runErr, err error) {
	s := nr.s
	resp, err := s.native.post(qctx, sum.QueryID, sql)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	schema := arrowSchema(nr.cols)
	sink.Start(contentTypes[format])
	// One write of the response per record batch, not one per buffer.
	bw := bufio.NewWriterSize(sink, 256<<10)
	iw := ipc.NewWriter(bw, ipc.WithSchema(schema))
	sum.end = func(sm summary) error {
		if sm.Err != nil {
			return nil // no end-of-stream marker: the stream is visibly cut short
		}
		if err := iw.Close(); err != nil {
			return err
		}
		return bw.Flush()
	}
	ra := newReadahead(resp.Body, 8, 512<<10)
	defer ra.Close()
	rd := newNativeReader(ra)
	arrays := make([]arrow.Array, len(nr.nts))
	for {
		n, data, err := rd.block(nr.names, nr.types, nr.nts)
		if err == io.EOF {
			return nil, nil
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
		var rec arrow.Record = array.NewRecord(schema, arrays, int64(n))
		for _, a := range arrays {
			a.Release()
		}
		if left := maxRows - sum.Rows; int64(n) > left {
			cut := rec.NewSlice(0, left)
			rec.Release()
			rec, n = cut, int(left)
			sum.Truncated = true
		}
		err = iw.Write(rec)
		rec.Release()
		if err == nil {
			err = bw.Flush()
		}
		rd.release()
		if err != nil {
			return err, nil
		}
		sum.Rows += int64(n)
		if sum.Truncated {
			cancel()
			return nil, nil
		}
	}
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
