// An independent check of Flowgate's SCIM 2.0 API with SCIMMY, a SCIM
// implementation by another project: requests are built with SCIMMY's own
// schema and message classes, and every resource and list Flowgate returns
// is coerced through SCIMMY's core schema definitions, so a response that
// does not conform makes the check fail.
//
// Usage: node check.js BASE_URL TOKEN  (or FLOWGATE_URL and SCIM_TOKEN).
// Prints one line per step; exits 1 with the reason on the first failure.
import SCIMMY from "scimmy";

const base = (process.argv[2] ?? process.env.FLOWGATE_URL ?? "").replace(/\/$/, "") + "/scim/v2";
const token = process.argv[3] ?? process.env.SCIM_TOKEN;
if (!process.argv[2] && !process.env.FLOWGATE_URL || !token) {
  console.error("usage: node check.js BASE_URL TOKEN (or set FLOWGATE_URL and SCIM_TOKEN)");
  process.exit(2);
}

async function call(method, path, body, want) {
  const res = await fetch(base + path, {
    method,
    headers: { Authorization: "Bearer " + token, ...(body ? { "Content-Type": "application/scim+json" } : {}) },
    body: body ? JSON.stringify(body) : undefined,
  });
  const text = await res.text();
  if (res.status !== want) throw new Error(`${method} ${path}: status ${res.status}, want ${want}: ${text.slice(0, 300)}`);
  return text ? JSON.parse(text) : undefined;
}

// conform coerces a returned resource through SCIMMY's definition of its
// core schema (outbound, as a client reads it); SCIMMY throws when a
// required attribute is missing or a value has the wrong type or shape.
function conform(kind, resource) {
  const schema = kind === "User" ? SCIMMY.Schemas.User : SCIMMY.Schemas.Group;
  if (!Array.isArray(resource?.schemas) || !resource.schemas.includes(schema.definition.id))
    throw new Error(`${kind} ${resource?.id}: schemas ${JSON.stringify(resource?.schemas)} lacks ${schema.definition.id}`);
  if (typeof resource.id !== "string" || resource.id === "") throw new Error(`${kind}: no id in ${JSON.stringify(resource)}`);
  if (resource.meta?.resourceType !== kind) throw new Error(`${kind} ${resource.id}: meta.resourceType ${resource.meta?.resourceType}`);
  try {
    return schema.definition.coerce(resource, "out");
  } catch (e) {
    throw new Error(`${kind} ${resource.id} does not conform to SCIMMY's ${schema.definition.id}: ${e.message}`);
  }
}

// list reads a ListResponse, checks it with SCIMMY's ListResponse message
// class, and checks each resource in it.
async function list(kind, query) {
  const body = await call("GET", `/${kind}s${query}`, undefined, 200);
  let msg;
  try {
    msg = new SCIMMY.Messages.ListResponse(body);
  } catch (e) {
    throw new Error(`GET /${kind}s${query}: not a SCIM ListResponse: ${e.message}`);
  }
  if (msg.totalResults !== body.Resources?.length && body.itemsPerPage === undefined)
    throw new Error(`GET /${kind}s${query}: totalResults ${msg.totalResults} but ${body.Resources?.length} resources`);
  for (const r of body.Resources ?? []) conform(kind, r);
  console.log(`ok list ${kind}s${query}: ${msg.totalResults} result(s)`);
  return body;
}

const userName = `scimmy-${Date.now()}@example.com`;
const user = new SCIMMY.Schemas.User({
  userName,
  displayName: "Sam Scimmy",
  name: { givenName: "Sam", familyName: "Scimmy" },
  emails: [{ value: userName, type: "work", primary: true }],
  active: true,
}, "in");
const created = await call("POST", "/Users", user, 201);
const u = conform("User", created);
if (u.userName !== userName || u.active !== true) throw new Error(`created user: ${JSON.stringify(created)}`);
console.log(`ok create user ${created.id}`);

const found = await list("User", "?filter=" + encodeURIComponent(`userName eq "${userName}"`));
if (found.totalResults !== 1 || found.Resources[0].id !== created.id) throw new Error(`filter by userName: ${JSON.stringify(found)}`);
await list("User", "");

const group = new SCIMMY.Schemas.Group({ displayName: `scimmy-${Date.now()}`, members: [{ value: created.id }] }, "in");
const g = await call("POST", "/Groups", group, 201);
conform("Group", g);
conform("Group", await call("GET", `/Groups/${encodeURIComponent(g.id)}`, undefined, 200));
console.log(`ok create group ${g.id}`);
await list("Group", "");

const patch = new SCIMMY.Messages.PatchOp({
  schemas: [SCIMMY.Messages.PatchOp.id],
  Operations: [{ op: "replace", path: "active", value: false }],
});
const patched = await call("PATCH", `/Users/${encodeURIComponent(created.id)}`, patch, 200);
conform("User", patched);
const back = conform("User", await call("GET", `/Users/${encodeURIComponent(created.id)}`, undefined, 200));
if (back.active !== false) throw new Error(`after PatchOp replace active=false the user reads back active=${back.active}`);
console.log("ok patch active false");
console.log("PASS");
