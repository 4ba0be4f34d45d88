package testenv

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/vn-ioc/ioc/internal/chlocal"
	"github.com/vn-ioc/ioc/query"
)

// ClusterName is the remote_servers name of the test cluster.
const ClusterName = "ioc_test"

// TestCluster is a ClickHouse cluster on loopback: a ZooKeeper server and
// two ClickHouse servers, each one shard of one replica, so that every
// table is Replicated and every Distributed table spreads its rows.
type TestCluster struct {
	ZooKeeper string
	Servers   []*chlocal.Server
}

var (
	clusterOnce sync.Once
	cluster     *TestCluster
	clusterErr  error
	clusterDir  string
	zkCmd       *exec.Cmd
)

// zooKeeperJar is where Debian's zookeeper package puts the server.
const zooKeeperJar = "/usr/share/java/zookeeper.jar"

// slf4jSimpleJar has ZooKeeper log to its standard error (its log file).
const slf4jSimpleJar = "/usr/share/java/slf4j-simple.jar"

// Cluster starts, on first use in the test process, the test cluster
// (stopped by Main). Without ZooKeeper or Java the test is skipped, except
// under CI=true, where it fails (`make test` installs them).
func Cluster(t testing.TB) *TestCluster {
	t.Helper()
	ClickHouseAddr(t) // the same binary, and the same skip or failure
	clusterOnce.Do(func() { cluster, clusterErr = startCluster() })
	if clusterErr != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("a ClickHouse cluster is required under CI: %v", clusterErr)
		}
		t.Skipf("no ClickHouse cluster for this test: %v (run `make test`, which installs ZooKeeper)", clusterErr)
	}
	return cluster
}

func startCluster() (*TestCluster, error) {
	java, err := exec.LookPath("java")
	if err != nil {
		return nil, errors.New("java is not installed (apt-get install -y zookeeper)")
	}
	if _, err := os.Stat(zooKeeperJar); err != nil {
		return nil, errors.New("ZooKeeper is not installed (apt-get install -y zookeeper)")
	}
	if clusterDir, err = os.MkdirTemp("", "ioc-test-cluster-"); err != nil {
		return nil, err
	}
	ports := make([]int, 7) // ZooKeeper; TCP, HTTP, interserver of each server
	for i := range ports {
		if ports[i], err = chlocal.FreePort(); err != nil {
			return nil, err
		}
	}
	zk := "127.0.0.1:" + strconv.Itoa(ports[0])
	if err := startZooKeeper(java, ports[0]); err != nil {
		stopCluster(true)
		return nil, err
	}
	c := &TestCluster{ZooKeeper: zk}
	cluster = c // for stopCluster on failure below
	shards := [][]int{{ports[1]}, {ports[4]}}
	for i := range 2 {
		p := ports[1+3*i:]
		s, err := chlocal.Start(context.Background(), chlocal.Options{
			Dir: filepath.Join(clusterDir, "ch"+strconv.Itoa(i+1)), TCPPort: p[0], HTTPPort: p[1], DieWithParent: true, LogLevel: "debug",
			Cluster: &chlocal.Cluster{Name: ClusterName, ZooKeeper: zk, Shards: shards,
				Shard: fmt.Sprintf("%02d", i+1), Replica: "r1", InterserverPort: p[2]},
		})
		if err != nil {
			stopCluster(true)
			return nil, fmt.Errorf("clickhouse server %d of the cluster: %w", i+1, err)
		}
		c.Servers = append(c.Servers, s)
	}
	return c, nil
}

// startZooKeeper runs a standalone ZooKeeper on loopback port, with its
// data under the cluster's folder, and waits until it answers.
func startZooKeeper(java string, port int) error {
	dir := filepath.Join(clusterDir, "zookeeper")
	if err := os.MkdirAll(filepath.Join(dir, "data"), 0o755); err != nil {
		return err
	}
	cfg := fmt.Sprintf("tickTime=2000\ndataDir=%s\nclientPort=%d\nclientPortAddress=127.0.0.1\n"+
		"admin.enableServer=false\n4lw.commands.whitelist=srvr\n", filepath.Join(dir, "data"), port)
	if err := os.WriteFile(filepath.Join(dir, "zoo.cfg"), []byte(cfg), 0o644); err != nil {
		return err
	}
	log, err := os.Create(filepath.Join(dir, "zookeeper.log"))
	if err != nil {
		return err
	}
	defer log.Close()
	zkCmd = exec.Command(java, "-Xmx256m", "-cp", zooKeeperJar+":"+slf4jSimpleJar,
		"org.apache.zookeeper.server.ZooKeeperServerMain", filepath.Join(dir, "zoo.cfg"))
	zkCmd.Stdout, zkCmd.Stderr = log, log
	zkCmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := zkCmd.Start(); err != nil {
		return fmt.Errorf("start zookeeper: %w", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- zkCmd.Wait() }()
	deadline := time.Now().Add(60 * time.Second)
	for {
		if serving(port) {
			return nil
		}
		select {
		case err := <-exited:
			return fmt.Errorf("zookeeper exited at start (%v); see %s", err, log.Name())
		case <-time.After(200 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("zookeeper did not answer on port %d within 60s; see %s", port, log.Name())
		}
	}
}

// serving asks ZooKeeper whether it serves requests: it accepts
// connections before, and answers ruok with imok before, but a
// ClickHouse 18.16 whose first connection it drops may crash later.
func serving(port int) bool {
	c, err := net.DialTimeout("tcp", "127.0.0.1:"+strconv.Itoa(port), time.Second)
	if err != nil {
		return false
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(2 * time.Second))
	if _, err := c.Write([]byte("srvr")); err != nil {
		return false
	}
	b, _ := io.ReadAll(c)
	return bytes.Contains(b, []byte("\nMode: "))
}

// stopCluster stops what startCluster started and removes its folder,
// unless keep (a test failed): then it says where the servers' logs are.
// It may be called again: what it stopped is forgotten.
func stopCluster(keep bool) {
	if cluster != nil {
		for _, s := range cluster.Servers {
			s.Stop()
		}
		cluster = nil
	}
	if zkCmd != nil && zkCmd.Process != nil {
		_ = syscall.Kill(-zkCmd.Process.Pid, syscall.SIGKILL)
		zkCmd = nil
	}
	switch {
	case clusterDir == "":
	case keep:
		fmt.Fprintf(os.Stderr, "testenv: the test cluster's logs are kept in %s\n", clusterDir)
	default:
		os.RemoveAll(clusterDir)
	}
	clusterDir = ""
}

// ShardRows counts, on each server of the cluster, the rows of table's
// local part in db's database: where a Distributed table put them.
func (c *TestCluster) ShardRows(t testing.TB, db *query.DB, table string) []uint64 {
	t.Helper()
	var out []uint64
	for _, s := range c.Servers {
		var n uint64
		q := fmt.Sprintf("SELECT count() FROM remote('%s', %s)", s.Addr(), db.Table(table+"_local"))
		if err := db.Conn.QueryRow(context.Background(), q).Scan(&n); err != nil {
			t.Fatal(err)
		}
		out = append(out, n)
	}
	return out
}
