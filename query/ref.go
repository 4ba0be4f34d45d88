package query

// Ref is a reference view (units, procedures, officers, cameras,
// calendar) as the source of a subquery: its table, read as the view reads
// it, cond (if any) applied. Its use: `SELECT code FROM ` + Ref(db,
// "units", "has(path, '79')").
//
// ClickHouse 18.16 reads the subquery of an IN or a JOIN when the query
// starts to run, on the query's own thread of the native protocol (a new
// one per query). A view read there takes its table's lock on that thread;
// once the thread has ended, another query's new thread, given the same
// id, can find that lock in the table's map of holders while it is being
// released, and both erase the same entry: the server dies of a
// segmentation fault (std::_Rb_tree_rebalance_for_erase). Eight clients
// repeating `SELECT count() FROM t WHERE unit IN (SELECT code FROM units
// WHERE …)` crash it within seconds; the same statement naming the table
// ran 34,000 times without. ClickHouse fixed its lock in 2019 (pull request 5127). Statements
// ioc runs therefore read tables, not views, in IN and JOIN subqueries
// (views in FROM are read before the query runs, on the connection's
// thread, and are safe).
func Ref(db, view, cond string) string {
	s := db + ".ref_" + view + " FINAL WHERE deleted = 0"
	if cond != "" {
		s += " AND " + cond
	}
	return s
}

// Subtree is the condition that col is a unit of the subtree of unit (the
// unit included), read from the units table (Ref).
func Subtree(db, col, unit string) string {
	return col + " IN (SELECT code FROM " + Ref(db, "units", "has(path, "+Quote(unit)+")") + ")"
}
