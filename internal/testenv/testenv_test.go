package testenv

import (
	"context"
	"testing"
)

func TestMain(m *testing.M) { Main(m) }

// TestClickHouseAfterCrash: a test that opens its database right after the
// shared ClickHouse died gets one once the server is started again, rather
// than "connection refused".
func TestClickHouseAfterCrash(t *testing.T) {
	ClickHouseAddr(t)
	if chServer == nil {
		t.Skip("ClickHouse not started by this package (IOC_TEST_CLICKHOUSE_ADDR)")
	}
	chServer.Server().Kill() // as a crash would
	db, _ := ClickHouse(t)
	var one uint8
	if err := db.Conn.QueryRow(context.Background(), "SELECT 1").Scan(&one); err != nil || one != 1 {
		t.Fatalf("SELECT 1 on the server started again: %v, %d", err, one)
	}
}
