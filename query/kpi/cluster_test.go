package kpi_test

import (
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
	for i, n := range testenv.Cluster(t).ShardRows(t, db, "dossier_events") {
		if n == 0 {
			t.Fatalf("no dossier events on shard %d", i+1)
		}
		t.Logf("%d dossier events on shard %d", n, i+1)
	}
	eng := c.leader(t, kpi.Config{}, nil)
	r := rand.New(rand.NewPCG(2, 3))
	checkAgainstSQL(t, c, eng, r, func(k kpi.Key) bool { return k.Unit == "79" || r.IntN(40) == 0 })

	// Every event delivered again (each copy goes to the shard of its
	// first, by its source and id): no value changes.
	checkRepeatsChangeNothing(t, c, eng)
}
