package chlocal

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestCrashContext(t *testing.T) {
	dir := t.TempDir()
	logs := filepath.Join(dir, "log")
	if err := os.MkdirAll(logs, 0o755); err != nil {
		t.Fatal(err)
	}
	write := func(name string, lines ...string) {
		if err := os.WriteFile(filepath.Join(logs, name), []byte(strings.Join(lines, "\n")+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("err.log",
		"2026.11.24 03:49:44.770883 [ 21 ] {} <Warning> TCPHandler: Client has not sent any data.",
		"2026.11.24 03:51:02.108060 [ 2 ] {} <Error> BaseDaemon: ########################################",
		"2026.11.24 03:51:02.108320 [ 2 ] {} <Error> BaseDaemon: (from thread 89) Received signal Segmentation fault (11).",
		"2026.11.24 03:51:02.109165 [ 2 ] {} <Error> BaseDaemon: 0. libclickhouse.so.18.16(DB::RWLockImpl::getLock(DB::RWLockImpl::Type)+0x6f0)")
	if _, _, ok, err := CrashContext(t.TempDir(), 3); err == nil || ok {
		t.Fatalf("no logs: ok %v, err %v; want an error", ok, err)
	}
	write("server.log",
		"2026.11.24 03:40:00.000000 [ 1 ] {} <Information> Application: starting up",
		"2026.11.24 03:40:01.000000 [ 89 ] {q0} <Debug> executeQuery: (from 127.0.0.1:1) SELECT 'an earlier process'",
		"2026.11.24 03:45:00.000000 [ 1 ] {} <Information> Application: starting up",
		"2026.11.24 03:51:00.000000 [ 89 ] {q1} <Debug> executeQuery: (from 127.0.0.1:2) SELECT 1",
		"2026.11.24 03:51:01.000000 [ 12 ] {q2} <Debug> executeQuery: (from 127.0.0.1:3) SELECT 'another thread'",
		"2026.11.24 03:51:01.500000 [ 89 ] {q3} <Debug> executeQuery: (from 127.0.0.1:2) -- a comment",
		"ALTER TABLE t DROP PARTITION 1",
		"2026.11.24 03:51:02.000000 [ 89 ] {q3} <Debug> MergeTree: dropping",
		"2026.11.24 03:51:02.108320 [ 2 ] {} <Error> BaseDaemon: (from thread 89) Received signal Segmentation fault (11).",
		"2026.11.24 03:51:03.000000 [ 1 ] {} <Information> Application: starting up",
		"2026.11.24 03:51:04.000000 [ 89 ] {q4} <Debug> executeQuery: (from 127.0.0.1:4) SELECT 'the next process'")
	thread, entries, ok, err := CrashContext(dir, 2)
	if err != nil || !ok || thread != "89" {
		t.Fatalf("thread %q, ok %v, err %v", thread, ok, err)
	}
	want := []string{
		"2026.11.24 03:51:01.500000 [ 89 ] {q3} <Debug> executeQuery: (from 127.0.0.1:2) -- a comment\nALTER TABLE t DROP PARTITION 1",
		"2026.11.24 03:51:02.000000 [ 89 ] {q3} <Debug> MergeTree: dropping",
	}
	if strings.Join(entries, "|") != strings.Join(want, "|") {
		t.Fatalf("entries:\n%s\nwant:\n%s", strings.Join(entries, "\n--\n"), strings.Join(want, "\n--\n"))
	}
	_, entries, _, _ = CrashContext(dir, 10)
	if len(entries) != 3 || !strings.Contains(entries[0], "SELECT 1") {
		t.Fatalf("the last 10 entries of the crashing process's thread: %q", entries)
	}
	write("err.log", "2026.11.24 03:49:44.770883 [ 21 ] {} <Warning> TCPHandler: Client has not sent any data.")
	if _, _, ok, err := CrashContext(dir, 3); ok || err != nil {
		t.Fatalf("no crash: ok %v, err %v", ok, err)
	}
}
