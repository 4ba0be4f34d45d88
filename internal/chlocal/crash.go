package chlocal

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
)

// A log entry's head: "2026.11.24 03:51:02.108320 [ 8909 ] ...". A
// statement may run over several lines; the lines that follow without such
// a head belong to it.
var (
	entryHead = regexp.MustCompile(`^(\d{4}\.\d\d\.\d\d \d\d:\d\d:\d\d\.\d+) \[ (\d+) \]`)
	crashLine = regexp.MustCompile(`^(\d{4}\.\d\d\.\d\d \d\d:\d\d:\d\d\.\d+) .*\(from thread (\d+)\) Received signal`)
)

// CrashContext reads the logs of the server in dir for its last crash (a
// signal) and returns the thread that crashed and that thread's last n log
// entries before it, oldest first: at level debug, the statements it ran.
// ok is false when the logs show no crash.
func CrashContext(dir string, n int) (thread string, entries []string, ok bool, err error) {
	logs := filepath.Join(dir, "log")
	var at string
	if err := eachLine(filepath.Join(logs, "err.log"), func(line string) {
		if m := crashLine.FindStringSubmatch(line); m != nil {
			at, thread = m[1], m[2]
		}
	}); err != nil {
		return "", nil, false, err
	}
	if thread == "" {
		return "", nil, false, nil
	}
	// Entries of that thread up to the crash; a server started again after
	// it appends to the same file, with thread numbers of its own.
	var cur *strings.Builder
	err = eachLine(filepath.Join(logs, "server.log"), func(line string) {
		if m := entryHead.FindStringSubmatch(line); m != nil {
			cur = nil
			if strings.Contains(line, "Application: starting up") && m[1] <= at {
				entries = nil // an earlier process numbered its threads anew
			}
			if m[2] != thread || m[1] > at || strings.Contains(line, "BaseDaemon:") {
				return
			}
			cur = &strings.Builder{}
			entries = append(entries, "")
			if len(entries) > n {
				entries = entries[1:]
			}
		}
		if cur != nil && cur.Len() < 2000 {
			if cur.Len() > 0 {
				cur.WriteByte('\n')
			}
			cur.WriteString(line)
			entries[len(entries)-1] = cur.String()
		}
	})
	return thread, entries, true, err
}

func eachLine(path string, f func(string)) error {
	file, err := os.Open(path)
	if err != nil {
		return err
	}
	defer file.Close()
	sc := bufio.NewScanner(file)
	sc.Buffer(make([]byte, 0, 64<<10), 4<<20)
	for sc.Scan() {
		f(sc.Text())
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return nil
}
