package kpi_test

import (
	"context"
	"math/rand/v2"
	"testing"

	"github.com/vn-ioc/ioc/internal/testenv"
	"github.com/vn-ioc/ioc/query/kpi"
)

// TestEngineOnACluster runs the engine on a ClickHouse cluster of two
// shards (Replicated local tables behind Distributed ones): the city's
// rows are spread over both, and every value the engine computes still
// equals its SQL, before and after every event is delivered again.
func TestEngineOnACluster(t *testing.T) {
	db, _ := testenv.ClusterClickHouse(t)
	c := newCityOn(t, db, 1)
	ctx := context.Background()
	for _, s := range testenv.Cluster(t).Servers {
		var n uint64
		q := "SELECT count() FROM remote('" + s.Addr() + "', " + db.Database() + ".dossier_events_local)"
		if err := db.Conn.QueryRow(ctx, q).Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n == 0 {
			t.Fatalf("no dossier events on the shard of %s", s.Addr())
		}
		t.Logf("%d dossier events on %s", n, s.Addr())
	}
	eng := c.leader(t, kpi.Config{}, nil)
	r := rand.New(rand.NewPCG(2, 3))
	checkAgainstSQL(t, c, eng, r, func(k kpi.Key) bool { return k.Unit == "79" || r.IntN(40) == 0 })

	// Every event delivered again (each copy goes to the shard of its
	// first, by its source and id): no value changes.
	checkRepeatsChangeNothing(t, c, eng)
}
