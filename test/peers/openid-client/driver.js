// A relying party built on panva/openid-client (and jose for proofs that
// openid-client would never make), driven by Flowgate's Go tests one JSON
// command per stdin line; each answer is one JSON line on stdout:
// {"ok": true, ...} or {"ok": false, "error": "...", "code": "...", "status": N}.
//
// Commands (fields beyond "op"):
//   discover  issuer, client_id, client_secret? (absent: a public client)
//   cc        scope?, dpop? ("a" | "b": which DPoP key; absent: none), resource?
//   authurl   redirect_uri, scope, response_mode?, resource?, dpop_jkt? (a key
//             name: its thumbprint binds the code, RFC 9449 §10)
//   code      url (the redirect the browser landed on; a fragment is read as
//             the query) | form {action, fields} (a form_post), dpop?
//   refresh   refresh_token, dpop?, resource?
//   resource  url, access_token, dpop?, method?  (fetchProtectedResource)
//   userinfo  access_token, sub, dpop?           (fetchUserInfo)
//   raw       url, method, headers, body?, proof? {key, htm, htu, iat_offset,
//             jti, ath_of, nonce, typ}; proof made with jose; replay: true
//             sends the last proof again
import * as client from 'openid-client';
import * as jose from 'jose';
import readline from 'node:readline';
import crypto from 'node:crypto';

let config;
const keys = {};
const handles = {};
let pkce;
let lastProof;

async function key(name) {
  if (!keys[name]) keys[name] = await client.randomDPoPKeyPair('ES256');
  return keys[name];
}

async function dpopHandle(name) {
  if (!name) return undefined;
  if (!handles[name]) handles[name] = client.getDPoPHandle(config, await key(name));
  return handles[name];
}

function tokenResult(t) {
  return {
    ok: true,
    token_type: t.token_type,
    access_token: t.access_token,
    refresh_token: t.refresh_token,
    scope: t.scope,
    id_token_claims: t.claims ? t.claims() : undefined,
  };
}

async function makeProof(p) {
  const k = await key(p.key || 'a');
  const jwk = await jose.exportJWK(k.publicKey);
  const claims = {
    jti: p.jti || crypto.randomUUID(),
    htm: p.htm,
    htu: p.htu,
    iat: Math.floor(Date.now() / 1000) + (p.iat_offset || 0),
  };
  if (p.ath_of) claims.ath = jose.base64url.encode(crypto.createHash('sha256').update(p.ath_of).digest());
  if (p.nonce) claims.nonce = p.nonce;
  return new jose.SignJWT(claims)
    .setProtectedHeader({ alg: 'ES256', typ: p.typ || 'dpop+jwt', jwk })
    .sign(k.privateKey);
}

const ops = {
  async discover(c) {
    const auth = c.client_secret ? client.ClientSecretBasic(c.client_secret) : client.None();
    config = await client.discovery(new URL(c.issuer), c.client_id, c.client_secret, auth, {
      execute: [client.allowInsecureRequests],
    });
    const md = config.serverMetadata();
    return { ok: true, dpop_signing_alg_values_supported: md.dpop_signing_alg_values_supported, response_modes_supported: md.response_modes_supported };
  },
  async cc(c) {
    const params = { scope: c.scope };
    if (c.resource) params.resource = c.resource;
    const t = await client.clientCredentialsGrant(config, params, { DPoP: await dpopHandle(c.dpop) });
    return tokenResult(t);
  },
  async authurl(c) {
    const verifier = client.randomPKCECodeVerifier();
    const state = client.randomState();
    pkce = { verifier, state };
    const params = {
      redirect_uri: c.redirect_uri,
      scope: c.scope,
      code_challenge: await client.calculatePKCECodeChallenge(verifier),
      code_challenge_method: 'S256',
      state,
    };
    if (c.response_mode) params.response_mode = c.response_mode;
    if (c.resource) params.resource = c.resource;
    if (c.dpop_jkt) params.dpop_jkt = await jose.calculateJwkThumbprint(await jose.exportJWK((await key(c.dpop_jkt)).publicKey));
    return { ok: true, url: client.buildAuthorizationUrl(config, params).href };
  },
  async code(c) {
    let current;
    if (c.form) {
      current = new Request(c.form.action, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        body: new URLSearchParams(c.form.fields).toString(),
      });
    } else {
      current = new URL(c.url);
      if (current.hash) {
        // What a browser app does with a fragment response: the
        // parameters are the fragment's.
        current.search = current.hash.slice(1);
        current.hash = '';
      }
    }
    const params = c.resource ? { resource: c.resource } : undefined;
    const t = await client.authorizationCodeGrant(config, current,
      { pkceCodeVerifier: pkce.verifier, expectedState: pkce.state }, params, { DPoP: await dpopHandle(c.dpop) });
    return tokenResult(t);
  },
  async refresh(c) {
    const params = c.resource ? { resource: c.resource } : undefined;
    const t = await client.refreshTokenGrant(config, c.refresh_token, params, { DPoP: await dpopHandle(c.dpop) });
    return tokenResult(t);
  },
  async userinfo(c) {
    const u = await client.fetchUserInfo(config, c.access_token, c.sub, { DPoP: await dpopHandle(c.dpop) });
    return { ok: true, sub: u.sub };
  },
  async resource(c) {
    let res;
    try {
      res = await client.fetchProtectedResource(config, c.access_token, new URL(c.url), c.method || 'GET', undefined,
        undefined, { DPoP: await dpopHandle(c.dpop) });
    } catch (err) {
      // A refusal with a challenge (after openid-client's own nonce retry)
      // is an answer, not a failure of the driver.
      if (!err.response) throw err;
      res = err.response;
    }
    return { ok: true, status: res.status, body: await res.text().catch(() => ''), www_authenticate: res.headers.get('www-authenticate') };
  },
  async raw(c) {
    const headers = new Headers(c.headers || {});
    if (c.replay) {
      headers.set('DPoP', lastProof);
    } else if (c.proof) {
      lastProof = await makeProof(c.proof);
      headers.set('DPoP', lastProof);
    }
    const res = await fetch(c.url, { method: c.method, headers, body: c.body });
    return {
      ok: true,
      status: res.status,
      body: await res.text(),
      www_authenticate: res.headers.get('www-authenticate'),
      dpop_nonce: res.headers.get('dpop-nonce'),
    };
  },
};

const rl = readline.createInterface({ input: process.stdin });
for await (const line of rl) {
  if (!line.trim()) continue;
  let out;
  try {
    const c = JSON.parse(line);
    out = await ops[c.op](c);
  } catch (err) {
    out = { ok: false, error: String(err && err.message || err), code: err && err.error, status: err && err.status, cause: err && err.cause && String(err.cause.error || '') };
  }
  process.stdout.write(JSON.stringify(out) + '\n');
}
