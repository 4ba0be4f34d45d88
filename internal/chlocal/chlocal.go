// Package chlocal starts a private ClickHouse server from the installed
// clickhouse-server binary: loopback only, its data, logs and config under
// one folder, on a port of its own. The demo and the tests use it; production
// runs ClickHouse as a service (deploy/).
package chlocal

import (
	"context"
	"encoding/xml"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"text/template"
	"time"
	"unicode"
	"unicode/utf8"
)

// Server is a running private ClickHouse.
type Server struct {
	Dir      string
	TCPPort  int
	HTTPPort int
	opts     Options
	cmd      *exec.Cmd
	exited   chan struct{} // closed when the process has exited
	waitErr  error         // how it exited, once exited is closed
}

// Exited is closed when the server process has exited, for whatever reason.
func (s *Server) Exited() <-chan struct{} { return s.exited }

// Addr of the native protocol.
func (s *Server) Addr() string { return "127.0.0.1:" + strconv.Itoa(s.TCPPort) }

// HTTPAddr is host:port of the HTTP interface.
func (s *Server) HTTPAddr() string { return "127.0.0.1:" + strconv.Itoa(s.HTTPPort) }

// Binary finds clickhouse-server (or the combined clickhouse binary).
func Binary() (path string, args []string, err error) {
	if p, err := exec.LookPath("clickhouse-server"); err == nil {
		return p, nil, nil
	}
	for _, p := range []string{"/usr/bin/clickhouse-server", "/usr/sbin/clickhouse-server"} {
		if _, err := os.Stat(p); err == nil {
			return p, nil, nil
		}
	}
	if p, err := exec.LookPath("clickhouse"); err == nil {
		return p, []string{"server"}, nil
	}
	return "", nil, errors.New("clickhouse-server is not installed (apt-get install -y clickhouse-server)")
}

// Options of a private server.
type Options struct {
	// Dir holds data/, log/, tmp/ and the generated config. Required.
	Dir string
	// TCPPort for the native protocol; 0 picks a free port.
	TCPPort int
	// HTTPPort; 0 picks a free port.
	HTTPPort int
	// ReaderUser is the read-only user of the analysts' SQL API (default
	// "ioc_reader"): letters, digits and underscores, not "default".
	ReaderUser string
	// ReaderPassword is its password (default "ioc_reader").
	ReaderPassword string
	// Log receives the server's stdout/stderr; nil discards it.
	Log *os.File
	// DieWithParent has the kernel kill the server when the process that
	// started it dies, however it dies (a test binary past its -timeout,
	// a panic, Ctrl-C): for throwaway servers, never for the demo's.
	DieWithParent bool
	// LogLevel of the server's own log (log/server.log): "warning" by
	// default; "debug" logs every statement with the number of the thread
	// that ran it.
	LogLevel string
	// Cluster, when set, makes the server one of a ClickHouse cluster
	// (trials of cluster mode; the tests). Its ports must then be given.
	Cluster *Cluster
}

// Cluster is what a server of a loopback ClickHouse cluster needs: the
// cluster's servers in remote_servers, ZooKeeper for the Replicated tables
// and the distributed DDL (ON CLUSTER), and its own {shard} and {replica}
// macros.
type Cluster struct {
	// Name of the cluster in remote_servers.
	Name string
	// ZooKeeper is host:port of a ZooKeeper server.
	ZooKeeper string
	// Shards lists, for each shard, the native ports of its replicas, all
	// on 127.0.0.1.
	Shards [][]int
	// Shard and Replica are this server's macros.
	Shard, Replica string
	// InterserverPort is the port replicas fetch parts from each other on.
	InterserverPort int
}

// Start writes the config and starts the server, waiting until it accepts
// connections (or ctx ends). If a server started earlier from the same
// folder is still running (its pid file is live), Start stops it first.
//
// A free port picked for it (TCPPort or HTTPPort 0) is free when picked,
// not reserved: another process may bind it before the server does (which
// then exits at start). Start then tries again, with other ports, up to
// three times in all.
func Start(ctx context.Context, o Options) (*Server, error) {
	auto := o.TCPPort == 0 || o.HTTPPort == 0
	if o.Cluster != nil && (auto || o.Cluster.InterserverPort == 0) {
		// The other servers name this one by its ports in their config.
		return nil, errors.New("a server of a cluster needs its TCP, HTTP and interserver ports given")
	}
	for attempt := 1; ; attempt++ {
		s, err := start(ctx, o)
		var early *exitedAtStart
		var taken *portTaken
		again := auto && (errors.As(err, &early) || errors.As(err, &taken) && taken.picked)
		if !again || attempt == 3 || ctx.Err() != nil {
			return s, err
		}
	}
}

// freePort picks the ports Options leave at 0.
var freePort = FreePort

// portTaken: a port of the server is held by another process.
type portTaken struct {
	name   string
	port   int
	picked bool // picked by Start, not given
	err    error
}

func (e *portTaken) Error() string {
	return fmt.Sprintf("the %s port %d of the private ClickHouse is taken by another process (%v): stop it or choose another port", e.name, e.port, e.err)
}

// exitedAtStart: the server exited before it accepted a connection.
type exitedAtStart struct {
	err error
	log string
}

func (e *exitedAtStart) Error() string {
	return fmt.Sprintf("clickhouse-server exited at start (%v); see %s", e.err, e.log)
}

func start(ctx context.Context, o Options) (*Server, error) {
	bin, args, err := Binary()
	if err != nil {
		return nil, err
	}
	dir, err := filepath.Abs(o.Dir)
	if err != nil {
		return nil, err
	}
	for _, d := range []string{"data", "tmp", "log", "user_files", "format_schemas"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			return nil, err
		}
	}
	stopStale(dir)
	pickedTCP, pickedHTTP := o.TCPPort == 0, o.HTTPPort == 0
	if pickedTCP {
		if o.TCPPort, err = freePort(); err != nil {
			return nil, err
		}
	}
	if pickedHTTP {
		if o.HTTPPort, err = freePort(); err != nil {
			return nil, err
		}
	}
	// A port another process holds would make this server exit at once,
	// and the wait below would take the other one for it.
	for _, p := range []struct {
		name   string
		port   int
		picked bool
	}{{"TCP", o.TCPPort, pickedTCP}, {"HTTP", o.HTTPPort, pickedHTTP}} {
		l, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(p.port))
		if err != nil {
			return nil, &portTaken{name: p.name, port: p.port, picked: p.picked, err: err}
		}
		l.Close()
	}
	if o.ReaderUser == "" {
		o.ReaderUser = "ioc_reader"
	}
	if !userRe.MatchString(o.ReaderUser) || o.ReaderUser == "default" {
		return nil, fmt.Errorf("clickhouse reader user %q: want letters, digits and underscores, not default", o.ReaderUser)
	}
	if o.ReaderPassword == "" {
		o.ReaderPassword = "ioc_reader"
	}
	if !utf8.ValidString(o.ReaderPassword) || strings.ContainsFunc(o.ReaderPassword, unicode.IsControl) {
		return nil, errors.New("clickhouse reader password: want UTF-8 text without control characters (users.xml cannot hold them)")
	}
	switch o.LogLevel {
	case "":
		o.LogLevel = "warning"
	case "trace", "debug", "information", "notice", "warning", "error":
	default:
		return nil, fmt.Errorf("clickhouse log level %q: want trace, debug, information, notice, warning or error", o.LogLevel)
	}
	if err := writeConfig(dir, o); err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, append(args, "--config-file="+filepath.Join(dir, "config.xml"))...)
	cmd.Dir = dir
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if o.DieWithParent {
		cmd.SysProcAttr.Pdeathsig = syscall.SIGKILL
	}
	if o.Log != nil {
		cmd.Stdout, cmd.Stderr = o.Log, o.Log
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start clickhouse-server: %w", err)
	}
	_ = os.WriteFile(filepath.Join(dir, "server.pid"), []byte(strconv.Itoa(cmd.Process.Pid)), 0o644)
	o.Dir = dir
	s := &Server{Dir: dir, TCPPort: o.TCPPort, HTTPPort: o.HTTPPort, opts: o, cmd: cmd, exited: make(chan struct{})}
	go func() {
		s.waitErr = cmd.Wait()
		close(s.exited)
	}()
	deadline := time.Now().Add(60 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", s.Addr(), time.Second)
		if err == nil {
			c.Close()
			return s, nil
		}
		select {
		case <-s.exited:
			return nil, &exitedAtStart{err: s.waitErr, log: filepath.Join(dir, "log", "err.log")}
		case <-ctx.Done():
			s.Stop()
			return nil, ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			s.Stop()
			return nil, fmt.Errorf("clickhouse-server did not listen on %s within 60s; see %s", s.Addr(), filepath.Join(dir, "log", "err.log"))
		}
	}
}

// Stop terminates the server gracefully (SIGTERM, then SIGKILL after 20s).
func (s *Server) Stop() error {
	if s == nil || s.cmd == nil || s.cmd.Process == nil {
		return nil
	}
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.exited:
	case <-time.After(20 * time.Second):
		_ = syscall.Kill(-s.cmd.Process.Pid, syscall.SIGKILL)
		<-s.exited
	}
	_ = os.Remove(filepath.Join(s.Dir, "server.pid"))
	return nil
}

// Kill stops the server at once (SIGKILL), as a crash would.
func (s *Server) Kill() {
	_ = syscall.Kill(-s.cmd.Process.Pid, syscall.SIGKILL)
	<-s.exited
}

// Restart starts the server again on the same ports with the same data and
// options.
func (s *Server) Restart(ctx context.Context) (*Server, error) {
	return Start(ctx, s.opts)
}

// Supervised is a private server started again whenever it exits by
// itself — ClickHouse 18.16 has been seen to crash (a segmentation fault)
// under a long demo — on the same ports and data, so its clients reconnect
// and lose nothing (ioc retries its inserts). Stop ends it for good.
type Supervised struct {
	mu      sync.Mutex
	cur     *Server
	stopped bool
	done    chan struct{}
}

// Supervise starts a server and keeps it running until Stop or ctx ends.
// onExit is told of each unexpected exit and of the restart's outcome.
func Supervise(ctx context.Context, o Options, onExit func(exit error, restarted error)) (*Supervised, error) {
	s, err := Start(ctx, o)
	if err != nil {
		return nil, err
	}
	sv := &Supervised{cur: s, done: make(chan struct{})}
	go sv.watch(ctx, onExit)
	return sv, nil
}

func (sv *Supervised) watch(ctx context.Context, onExit func(exit, restarted error)) {
	defer close(sv.done)
	backoff := time.Second
	for {
		sv.mu.Lock()
		cur := sv.cur
		sv.mu.Unlock()
		select {
		case <-ctx.Done():
			return
		case <-cur.Exited():
		}
		for {
			sv.mu.Lock()
			if sv.stopped {
				sv.mu.Unlock()
				return
			}
			next, err := cur.Restart(ctx)
			if err == nil {
				sv.cur = next
			}
			sv.mu.Unlock()
			if onExit != nil {
				onExit(cur.waitErr, err)
			}
			if err == nil {
				backoff = time.Second
				break
			}
			select {
			case <-ctx.Done():
				return
			case <-time.After(backoff):
			}
			backoff = min(2*backoff, 30*time.Second)
		}
	}
}

// Server is the server running now (a new one after each restart).
func (sv *Supervised) Server() *Server {
	sv.mu.Lock()
	defer sv.mu.Unlock()
	return sv.cur
}

// Addr of the native protocol (the same across restarts).
func (sv *Supervised) Addr() string { return sv.Server().Addr() }

// HTTPAddr of the HTTP interface (the same across restarts).
func (sv *Supervised) HTTPAddr() string { return sv.Server().HTTPAddr() }

// Stop ends the supervision and stops the server.
func (sv *Supervised) Stop() error {
	sv.mu.Lock()
	sv.stopped = true
	cur := sv.cur
	sv.mu.Unlock()
	return cur.Stop()
}

func stopStale(dir string) {
	b, err := os.ReadFile(filepath.Join(dir, "server.pid"))
	if err != nil {
		return
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 1 {
		return
	}
	if !serves(pid, dir) {
		return
	}
	_ = syscall.Kill(pid, syscall.SIGTERM)
	for i := 0; i < 200; i++ {
		if syscall.Kill(pid, 0) != nil {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	_ = syscall.Kill(pid, syscall.SIGKILL)
}

// serves says whether process pid is a ClickHouse server of the folder dir
// (its --config-file is dir's config.xml): after a reboot, the pid a stale
// server.pid names may be any other process, another ClickHouse included.
func serves(pid int, dir string) bool {
	cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil || !strings.Contains(string(cmdline), "clickhouse") {
		return false
	}
	want, err := filepath.Abs(filepath.Join(dir, "config.xml"))
	if err != nil {
		return false
	}
	cwd, _ := os.Readlink(fmt.Sprintf("/proc/%d/cwd", pid))
	for _, arg := range strings.Split(string(cmdline), "\x00") {
		cfg, ok := strings.CutPrefix(arg, "--config-file=")
		if !ok {
			continue
		}
		if !filepath.IsAbs(cfg) {
			cfg = filepath.Join(cwd, cfg)
		}
		if filepath.Clean(cfg) == want {
			return true
		}
	}
	return false
}

// FreePort asks the kernel for a free loopback port.
func FreePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

var configTpl = template.Must(template.New("config").Parse(`<?xml version="1.0"?>
<!-- Generated by ioc for a private, loopback-only ClickHouse. -->
<yandex>
  <logger>
    <level>{{.LogLevel}}</level>
    <log>{{.Dir}}/log/server.log</log>
    <errorlog>{{.Dir}}/log/err.log</errorlog>
    <size>100M</size>
    <count>3</count>
  </logger>
  <listen_host>127.0.0.1</listen_host>
  <tcp_port>{{.TCPPort}}</tcp_port>
  <http_port>{{.HTTPPort}}</http_port>
  <max_connections>4096</max_connections>
  <keep_alive_timeout>3</keep_alive_timeout>
  <max_concurrent_queries>200</max_concurrent_queries>
  <uncompressed_cache_size>536870912</uncompressed_cache_size>
  <mark_cache_size>536870912</mark_cache_size>
  <path>{{.Dir}}/data/</path>
  <tmp_path>{{.Dir}}/tmp/</tmp_path>
  <user_files_path>{{.Dir}}/user_files/</user_files_path>
  <format_schema_path>{{.Dir}}/format_schemas/</format_schema_path>
  <users_config>users.xml</users_config>
  <default_profile>default</default_profile>
  <default_database>default</default_database>
  <timezone>UTC</timezone>
  <mlock_executable>false</mlock_executable>
  <max_session_timeout>3600</max_session_timeout>
  <default_session_timeout>60</default_session_timeout>
{{- with .Cluster}}
  <interserver_http_host>127.0.0.1</interserver_http_host>
  <interserver_http_port>{{.InterserverPort}}</interserver_http_port>
  <remote_servers>
    <{{.Name}}>
{{- range .Shards}}
      <shard>
        <internal_replication>true</internal_replication>
{{- range .}}
        <replica><host>127.0.0.1</host><port>{{.}}</port></replica>
{{- end}}
      </shard>
{{- end}}
    </{{.Name}}>
  </remote_servers>
  <zookeeper>
    <node><host>{{.ZKHost}}</host><port>{{.ZKPort}}</port></node>
    <session_timeout_ms>30000</session_timeout_ms>
  </zookeeper>
  <macros>
    <shard>{{.Shard}}</shard>
    <replica>{{.Replica}}</replica>
  </macros>
  <distributed_ddl>
    <path>/clickhouse/task_queue/ddl</path>
  </distributed_ddl>
{{- end}}
</yandex>
`))

// userRe: a user name that is also an XML element name.
var userRe = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]{0,63}$`)

// macroRe: a macro's value, as the config and ZooKeeper paths take it.
var macroRe = regexp.MustCompile(`^[A-Za-z0-9_]{1,64}$`)

var usersTpl = template.Must(template.New("users").Funcs(template.FuncMap{"xml": func(s string) string {
	var b strings.Builder
	_ = xml.EscapeText(&b, []byte(s))
	return b.String()
}}).Parse(`<?xml version="1.0"?>
<!-- Generated by ioc. {{.ReaderUser}} is the read-only user of the analysts' SQL API.
     distributed_product_mode matters on a cluster only: IN and JOIN subqueries over
     Distributed tables run once and go to every shard (GLOBAL). -->
<yandex>
  <profiles>
    <default>
      <max_memory_usage>8000000000</max_memory_usage>
      <load_balancing>random</load_balancing>
      <distributed_product_mode>global</distributed_product_mode>
    </default>
    <ioc_readonly>
      <readonly>1</readonly>
      <max_execution_time>300</max_execution_time>
      <max_memory_usage>2000000000</max_memory_usage>
      <max_result_rows>100000000</max_result_rows>
      <max_result_bytes>10000000000</max_result_bytes>
      <distributed_product_mode>global</distributed_product_mode>
    </ioc_readonly>
  </profiles>
  <users>
    <default>
      <password></password>
      <networks><ip>127.0.0.1</ip><ip>::1</ip></networks>
      <profile>default</profile>
      <quota>default</quota>
    </default>
    <{{.ReaderUser}}>
      <password>{{xml .ReaderPassword}}</password>
      <networks><ip>127.0.0.1</ip><ip>::1</ip></networks>
      <profile>ioc_readonly</profile>
      <quota>default</quota>
    </{{.ReaderUser}}>
  </users>
  <quotas>
    <default>
      <interval>
        <duration>3600</duration>
        <queries>0</queries>
        <errors>0</errors>
        <result_rows>0</result_rows>
        <read_rows>0</read_rows>
        <execution_time>0</execution_time>
      </interval>
    </default>
  </quotas>
</yandex>
`))

func writeConfig(dir string, o Options) error {
	type cluster struct {
		Cluster
		ZKHost, ZKPort string
	}
	data := struct {
		Dir               string
		TCPPort, HTTPPort int
		ReaderUser        string
		ReaderPassword    string
		LogLevel          string
		Cluster           *cluster
	}{dir, o.TCPPort, o.HTTPPort, o.ReaderUser, o.ReaderPassword, o.LogLevel, nil}
	if c := o.Cluster; c != nil {
		host, port, err := net.SplitHostPort(c.ZooKeeper)
		if err != nil {
			return fmt.Errorf("zookeeper address %q: %w", c.ZooKeeper, err)
		}
		if !userRe.MatchString(c.Name) || !macroRe.MatchString(c.Shard) || !macroRe.MatchString(c.Replica) {
			return fmt.Errorf("cluster %q, shard %q, replica %q: want letters, digits and underscores", c.Name, c.Shard, c.Replica)
		}
		data.Cluster = &cluster{Cluster: *c, ZKHost: host, ZKPort: port}
	}
	for name, tpl := range map[string]*template.Template{"config.xml": configTpl, "users.xml": usersTpl} {
		f, err := os.Create(filepath.Join(dir, name))
		if err != nil {
			return err
		}
		if err := tpl.Execute(f, data); err != nil {
			f.Close()
			return err
		}
		if err := f.Close(); err != nil {
			return err
		}
	}
	return nil
}
