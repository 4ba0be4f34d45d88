#!/usr/bin/env python3
"""Generate the per-type field tables of docs/events.md from ingest/schema/*.json.

Usage (from the module root):
    python3 docs/tools/event_tables.py            # print the tables
    python3 docs/tools/event_tables.py --update   # rewrite the generated part of docs/events.md

The generated part sits between the markers
<!-- BEGIN GENERATED: event types --> and <!-- END GENERATED: event types -->.
Never edit it by hand: change the schema and run the script again.
"""
import glob
import json
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SCHEMAS = os.path.join(ROOT, "ingest", "schema")
DOC = os.path.join(ROOT, "docs", "events.md")
BEGIN = "<!-- BEGIN GENERATED: event types -->"
END = "<!-- END GENERATED: event types -->"

FAMILY_SUBJECT = {
    "dossier": "dossier code (mã hồ sơ)",
    "feedback": "ticket id (mã phản ánh kiến nghị)",
    "camera": "camera id (mã camera)",
    "survey": "survey id (mã phiếu khảo sát)",
    "indicator": "indicator code (mã chỉ số)",
}


def num(x):
    return str(int(x)) if float(x).is_integer() else str(x)


def constraints(n):
    out = []
    if n.get("enum"):
        out.append(" \\| ".join("`%s`" % e for e in n["enum"]))
    lo, hi = n.get("minimum"), n.get("maximum")
    if lo is not None and hi is not None:
        out.append("%s – %s" % (num(lo), num(hi)))
    elif lo is not None:
        out.append("≥ %s" % num(lo))
    elif hi is not None:
        out.append("≤ %s" % num(hi))
    mn, mx = n.get("minLength"), n.get("maxLength")
    if mn == 1 and mx is not None:
        out.append("1–%d bytes" % mx)
    elif mn is not None and mx is not None:
        out.append("%d–%d bytes" % (mn, mx))
    elif mn == 1:
        out.append("not empty")
    elif mn is not None:
        out.append("≥ %d bytes" % mn)
    elif mx is not None:
        out.append("≤ %d bytes" % mx)
    if n.get("pattern"):
        out.append("pattern `%s`" % n["pattern"].replace("|", "\\|"))
    if n.get("format") == "date-time":
        out.append("RFC 3339 with offset")
    return "; ".join(out)


def rows(node, prefix, required_chain):
    req = set(node.get("required") or [])
    for name in (node.get("properties") or {}).keys():  # the order of the schema file
        p = node["properties"][name]
        path = prefix + name
        is_req = name in req and required_chain
        notes = []
        if p.get("x-pii"):
            notes.append("**personal data**: replaced by a pseudonym `p1:…`")
        if p.get("x-ref"):
            notes.append("must be a known %s code of the reference data" % p["x-ref"])
        if p.get("type") == "object":
            yield (path, "object", "yes" if is_req else "", "", "; ".join(notes))
            yield from rows(p, path + ".", is_req)
        else:
            yield (path, p.get("type", "any"), "yes" if is_req else "", constraints(p), "; ".join(notes))


def render():
    out = []
    files = sorted(glob.glob(os.path.join(SCHEMAS, "*.json")))
    family = None
    for f in files:
        typ = os.path.basename(f)[:-5]
        fam = typ.split(".")[2]
        with open(f, encoding="utf-8") as fh:
            schema = json.load(fh)
        if fam != family:
            family = fam
            out.append("### Family `%s` — `subject` is the %s\n" % (fam, FAMILY_SUBJECT.get(fam, "entity id")))
        out.append("#### `%s`\n" % typ)
        out.append("Schema: [`ingest/schema/%s.json`](../ingest/schema/%s.json)\n" % (typ, typ))
        rs = list(rows(schema, "", True))
        if not rs:
            out.append("No data fields: send `\"data\": {}`.\n")
            continue
        out.append("| field | type | required | allowed values | notes |")
        out.append("|---|---|---|---|---|")
        for r in rs:
            out.append("| `%s` | %s | %s | %s | %s |" % r)
        out.append("")
    return "\n".join(out).rstrip() + "\n"


def main():
    text = render()
    if "--update" not in sys.argv:
        sys.stdout.write(text)
        return
    with open(DOC, encoding="utf-8") as fh:
        doc = fh.read()
    i, j = doc.find(BEGIN), doc.find(END)
    if i < 0 or j < i:
        sys.exit("markers not found in " + DOC)
    doc = doc[: i + len(BEGIN)] + "\n" + text + doc[j:]
    with open(DOC, "w", encoding="utf-8") as fh:
        fh.write(doc)


if __name__ == "__main__":
    main()
