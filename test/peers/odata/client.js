// An OData v4 client for Flowgate's Data API tests, independent of
// Flowgate's code: odata-query writes the query strings, fast-xml-parser
// reads $metadata, and pages are followed through @odata.nextLink.
//
// Reads a JSON array of requests on stdin and prints a JSON array of
// results. A request is
//   {name, base, token, path, query?, raw?, follow?, maxPageSize?}
// path: "" (service document), "$metadata", "Instances", "Instances/$count", …
// query: an odata-query object ({filter, select, orderBy, top, skip, count});
//   a value {"$date": "…"} in it becomes a JavaScript Date.
// raw: a query string sent as is (for malformed queries), instead of query.
// follow: read every page through @odata.nextLink.
import buildQuery from "odata-query";
import { XMLParser } from "fast-xml-parser";

function revive(v) {
  if (Array.isArray(v)) return v.map(revive);
  if (v && typeof v === "object") {
    if (Object.keys(v).length === 1 && "$date" in v) return new Date(v.$date);
    return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, revive(x)]));
  }
  return v;
}

function asList(x) {
  return x === undefined ? [] : Array.isArray(x) ? x : [x];
}

// readMetadata turns CSDL XML into {sets: {name: type}, types: {type: {keys, props: {name: {type, nullable}}}}}.
function readMetadata(xml) {
  const doc = new XMLParser({ ignoreAttributes: false, attributeNamePrefix: "" }).parse(xml);
  const edmx = doc["edmx:Edmx"];
  if (!edmx || edmx.Version !== "4.0") throw new Error("not an OData 4.0 CSDL document");
  const out = { sets: {}, types: {} };
  for (const schema of asList(edmx["edmx:DataServices"].Schema)) {
    for (const t of asList(schema.EntityType)) {
      const props = {};
      for (const p of asList(t.Property)) props[p.Name] = { type: p.Type, nullable: p.Nullable !== "false" };
      out.types[`${schema.Namespace}.${t.Name}`] = { keys: asList(t.Key.PropertyRef).map((k) => k.Name), props };
    }
    for (const c of asList(schema.EntityContainer)) {
      for (const s of asList(c.EntitySet)) out.sets[s.Name] = s.EntityType;
      for (const a of asList(c.Annotation)) {
        if (a.Term.endsWith("FilterFunctions")) out.filterFunctions = asList(a.Collection.String);
      }
    }
  }
  return out;
}

async function run(req) {
  const res = { name: req.name, pages: 0, rows: [], status: 0 };
  let url = req.base.replace(/\/$/, "") + "/" + req.path;
  if (req.raw !== undefined) url += req.raw;
  else if (req.query) url += buildQuery(revive(req.query));
  const headers = { Accept: req.path === "$metadata" ? "application/xml" : "application/json", "OData-MaxVersion": "4.0" };
  if (req.token) headers.Authorization = `Bearer ${req.token}`;
  if (req.maxPageSize) headers.Prefer = `odata.maxpagesize=${req.maxPageSize}`;
  const started = Date.now();
  for (;;) {
    const r = await fetch(url, { headers });
    res.status = r.status;
    res.contentType = r.headers.get("content-type");
    res.odataVersion = r.headers.get("odata-version");
    const text = await r.text();
    if (r.status !== 200) {
      try {
        const body = JSON.parse(text);
        // OData errors are objects; the bearer-token check's are RFC 6750 strings.
        if (typeof body.error === "object") res.error = body.error;
        else res.authError = body.error;
      } catch {
        res.text = text;
      }
      break;
    }
    if (req.path === "$metadata") {
      res.metadata = readMetadata(text);
      break;
    }
    if (req.path.endsWith("/$count")) {
      res.count = Number(text);
      break;
    }
    const body = JSON.parse(text);
    res.pages++;
    res.context ??= body["@odata.context"];
    if (body["@odata.count"] !== undefined) {
      res.count ??= body["@odata.count"];
      (res.pageCounts ??= []).push(body["@odata.count"]);
    }
    if (Array.isArray(body.value)) res.rows.push(...body.value);
    else {
      // A single entity: its properties are the body's.
      const { "@odata.context": _, ...entity } = body;
      res.rows.push(entity);
    }
    const next = body["@odata.nextLink"];
    if (!req.follow || !next) {
      res.nextLink = next ?? null;
      break;
    }
    url = next;
  }
  res.ms = Date.now() - started;
  if (req.summary) {
    // Large reads: the caller wants counts, not every row.
    res.rowCount = res.rows.length;
    res.distinct = new Set(res.rows.map((x) => JSON.stringify(x))).size;
    res.rows = res.rows.slice(0, 3);
  }
  return res;
}

let input = "";
for await (const chunk of process.stdin) input += chunk;
const out = [];
for (const req of JSON.parse(input)) {
  try {
    out.push(await run(req));
  } catch (e) {
    out.push({ name: req.name, failure: String(e) });
  }
}
process.stdout.write(JSON.stringify(out));
