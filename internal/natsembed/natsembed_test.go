package natsembed

import (
	"net"
	"strings"
	"testing"
)

// A port already taken is named at once, with the flag that changes it —
// the server reported it only to a log it did not have, and waited 30 s.
func TestPortTakenIsNamed(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	port := l.Addr().(*net.TCPAddr).Port
	s, err := Start(Options{StoreDir: t.TempDir(), Port: port})
	if err == nil {
		s.Shutdown()
		t.Fatal("started on a port taken")
	}
	if !strings.Contains(err.Error(), "is taken") || !strings.Contains(err.Error(), "--nats-port") {
		t.Fatalf("error %v", err)
	}
}
