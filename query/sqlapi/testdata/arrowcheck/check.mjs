// Decodes an Arrow IPC stream with apache-arrow (an implementation
// independent of ioc's) and prints its schema and fourth row as JSON.
import { readFileSync } from 'node:fs';
import { tableFromIPC } from 'apache-arrow';

const table = tableFromIPC(readFileSync(process.argv[2]));
const fields = {};
for (const f of table.schema.fields) fields[f.name] = String(f.type);
const row = table.get(3);
const row3 = {};
for (const f of table.schema.fields) {
  let v = row[f.name];
  if (typeof v === 'bigint') v = v.toString();
  else if (v && typeof v.toArray === 'function') v = Array.from(v.toArray());
  else if (v instanceof Uint32Array) v = Array.from(v);
  row3[f.name] = v;
}
console.log(JSON.stringify({ rows: table.numRows, fields, row3 }, (k, v) => (typeof v === 'bigint' ? v.toString() : v)));
