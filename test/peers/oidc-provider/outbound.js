// An independent OAuth 2.0 / OpenID provider (panva/node-oidc-provider) that Flowgate's outbound
// OAuth code (internal/connectors, internal/vault) is tested against. server.js plays an external
// *issuer* for Flowgate's APIs; this one plays a *provider flows get tokens from* (Microsoft Graph,
// Salesforce…), so it has user logins, refresh tokens with rotation, and revocation.
//
// Configuration (env):
//   PORT          listen port on 127.0.0.1; 0 (default) picks a free one
//   ACCESS_TTL    access token lifetime in seconds; default 3600
//   PKJWT_JWKS    JSON {"keys":[…]}: the public key(s) of the private_key_jwt client; when unset that
//                 client is not registered
//   REDIRECT_URI  redirect URI of the code-flow clients; default http://127.0.0.1:9/callback
//   DPOP_NONCE    when set, DPoP proofs need a server nonce, at the token endpoint and at
//                 /api/dpop-echo (RFC 9449 §8, §9)
//
// Clients (grants authorization_code, refresh_token, client_credentials; scopes below):
//   basic-client / basic-secret    client_secret_basic
//   post-client  / post-secret     client_secret_post
//   jwt-client                     private_key_jwt (RS256 or ES256, key from PKJWT_JWKS)
//   dpop-client  / dpop-secret     client_secret_basic, dpop_bound_access_tokens: a token request
//                                  without a DPoP proof is refused
//
// A protected resource, GET|POST /api/dpop-echo, takes only DPoP-bound access tokens of this
// provider with the DPoP scheme and a proof (checked with jose: signature by the embedded key,
// typ, htm, htu, iat, ath, the key's thumbprint equal to the token's jkt, the nonce when
// DPOP_NONCE); it answers {"sub", "client_id", "jkt"}, else 401 with a DPoP challenge.
//
// Refresh tokens: issued for every code grant of a client allowed refresh_token (no offline_access
// needed), rotated on EVERY use, and a rotated (consumed) one presented again is reuse: the whole
// grant is revoked and the answer is invalid_grant (oidc-provider's built-in reuse detection).
// PKCE is accepted (S256) but not required, so both paths can be tested. Revocation (RFC 7009) is on.
// devInteractions gives the login page (any login, any password) and the consent page.
//
// Admin hooks (test-only, no authentication, bound to 127.0.0.1):
//   GET  /admin/stats          {"refresh_grants": n, "refresh_errors": n, "code_grants": n,
//                               "client_credentials_grants": n, "revocations": n, "grants": n}
//   POST /admin/revoke-grants  revoke every grant issued so far (tokens and refresh tokens die), as a
//                              user withdrawing consent at the provider would
//
// Once listening it prints one line: "ready <issuer>".

import * as crypto from 'node:crypto';
import * as http from 'node:http';

import * as jose from 'jose';
import Provider from 'oidc-provider';

const port = Number(process.env.PORT ?? 0);
const accessTTL = Number(process.env.ACCESS_TTL ?? 3600);
const redirectURI = process.env.REDIRECT_URI ?? 'http://127.0.0.1:9/callback';
const scopes = ['openid', 'offline_access', 'profile', 'api.read', 'api.write'];

const common = {
  grant_types: ['authorization_code', 'refresh_token', 'client_credentials'],
  response_types: ['code'],
  redirect_uris: [redirectURI],
  scope: scopes.join(' '),
};

const clients = [
  { ...common, client_id: 'basic-client', client_secret: 'basic-secret', token_endpoint_auth_method: 'client_secret_basic' },
  { ...common, client_id: 'post-client', client_secret: 'post-secret', token_endpoint_auth_method: 'client_secret_post' },
  {
    ...common,
    client_id: 'dpop-client',
    client_secret: 'dpop-secret',
    token_endpoint_auth_method: 'client_secret_basic',
    dpop_bound_access_tokens: true,
  },
];
const dpopNonce = Boolean(process.env.DPOP_NONCE);
// The resource's own nonce, different from the provider's.
const apiNonce = crypto.randomBytes(16).toString('base64url');
if (process.env.PKJWT_JWKS) {
  clients.push({
    ...common,
    client_id: 'jwt-client',
    token_endpoint_auth_method: 'private_key_jwt',
    jwks: JSON.parse(process.env.PKJWT_JWKS),
  });
}

const stats = {
  refresh_grants: 0,
  refresh_errors: 0,
  code_grants: 0,
  client_credentials_grants: 0,
  revocations: 0,
  dpop_api_calls: 0,
  dpop_api_refusals: 0,
};
const grantIds = new Set();

// jwkOf exports a private key as a JWK through a KeyObject of its own: on Node.js 20, exporting the
// key generateKeyPairSync returned deadlocks when a garbage collection runs during the export (the
// key generation job's destructor waits for the lock the export holds), about one start in a few
// hundred.
function jwkOf(privateKey) {
  return crypto.createPrivateKey(privateKey.export({ type: 'pkcs8', format: 'pem' })).export({ format: 'jwk' });
}

function newProvider(issuer) {
  const signing = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 });
  const provider = new Provider(issuer, {
    clients,
    scopes,
    jwks: { keys: [{ ...jwkOf(signing.privateKey), kid: 'outbound-1', alg: 'RS256', use: 'sig' }] },
    findAccount: async (_ctx, sub) => ({ accountId: sub, claims: async () => ({ sub }) }),
    features: {
      devInteractions: { enabled: true },
      clientCredentials: { enabled: true },
      revocation: { enabled: true },
      introspection: { enabled: false },
      dPoP: dpopNonce
        ? { enabled: true, nonceSecret: crypto.randomBytes(32), requireNonce: () => true }
        : { enabled: true },
    },
    pkce: { required: () => false },
    // Rotation on every use, so a refresh token presented twice is always reuse.
    rotateRefreshToken: () => true,
    issueRefreshToken: async (_ctx, client) => client.grantTypeAllowed('refresh_token'),
    ttl: {
      AccessToken: accessTTL,
      ClientCredentials: accessTTL,
      AuthorizationCode: 60,
      RefreshToken: 24 * 3600,
      Grant: 24 * 3600,
      Interaction: 600,
      Session: 3600,
      IdToken: 3600,
    },
  });
  provider.proxy = false;
  provider.on('grant.success', (ctx) => {
    const grantType = ctx.oidc.params.grant_type;
    if (grantType === 'refresh_token') stats.refresh_grants += 1;
    if (grantType === 'authorization_code') stats.code_grants += 1;
    if (grantType === 'client_credentials') stats.client_credentials_grants += 1;
    const { AccessToken: at, RefreshToken: rt } = ctx.oidc.entities;
    for (const t of [at, rt]) if (t?.grantId) grantIds.add(t.grantId);
  });
  provider.on('grant.error', (ctx) => {
    if (ctx.oidc?.params?.grant_type === 'refresh_token') stats.refresh_errors += 1;
  });
  return provider;
}

let provider;
let handler;
let issuer;

// dpopEcho is the protected resource described at the top.
async function dpopEcho(req, res, url) {
  const refuse = (error, description) => {
    stats.dpop_api_refusals += 1;
    res.statusCode = 401;
    res.setHeader('www-authenticate', `DPoP error="${error}", algs="ES256 PS256 RS256 EdDSA"`);
    if (error === 'use_dpop_nonce') res.setHeader('dpop-nonce', apiNonce);
    res.setHeader('content-type', 'application/json');
    res.end(JSON.stringify({ error, error_description: description }));
  };
  const [scheme, token] = (req.headers.authorization ?? '').split(' ');
  if (scheme !== 'DPoP' || !token) return refuse('invalid_token', 'the DPoP scheme is required');
  const proof = req.headers.dpop;
  if (!proof) return refuse('invalid_dpop_proof', 'no DPoP proof');
  let payload;
  let protectedHeader;
  try {
    ({ payload, protectedHeader } = await jose.jwtVerify(proof, jose.EmbeddedJWK, {
      typ: 'dpop+jwt', algorithms: ['ES256', 'PS256', 'RS256', 'EdDSA'],
    }));
  } catch (err) {
    return refuse('invalid_dpop_proof', `proof: ${err.message}`);
  }
  const now = Math.floor(Date.now() / 1000);
  const ath = jose.base64url.encode(crypto.createHash('sha256').update(token).digest());
  if (payload.htm !== req.method) return refuse('invalid_dpop_proof', 'htm');
  if (payload.htu !== `${issuer}${url.pathname}`) return refuse('invalid_dpop_proof', 'htu');
  if (typeof payload.iat !== 'number' || Math.abs(now - payload.iat) > 60) return refuse('invalid_dpop_proof', 'iat');
  if (payload.ath !== ath) return refuse('invalid_dpop_proof', 'ath');
  if (dpopNonce && payload.nonce !== apiNonce) return refuse('use_dpop_nonce', 'nonce required');
  const at = (await provider.AccessToken.find(token)) ?? (await provider.ClientCredentials.find(token));
  if (!at || at.isExpired) return refuse('invalid_token', 'unknown or expired token');
  const jkt = await jose.calculateJwkThumbprint(protectedHeader.jwk);
  if (!at.jkt || at.jkt !== jkt) return refuse('invalid_dpop_proof', 'the proof key is not the token\'s');
  stats.dpop_api_calls += 1;
  res.setHeader('content-type', 'application/json');
  res.end(JSON.stringify({ sub: at.accountId ?? at.clientId, client_id: at.clientId, jkt }));
}

async function revokeGrants() {
  for (const id of grantIds) {
    await provider.AccessToken.revokeByGrantId(id);
    await provider.RefreshToken.revokeByGrantId(id);
    await provider.AuthorizationCode.revokeByGrantId(id);
    await provider.Grant.adapter.destroy(id);
  }
  const n = grantIds.size;
  grantIds.clear();
  return n;
}

const server = http.createServer((req, res) => {
  const url = new URL(req.url, 'http://127.0.0.1');
  if (url.pathname === '/admin/stats' && req.method === 'GET') {
    res.setHeader('content-type', 'application/json');
    res.end(JSON.stringify({ ...stats, grants: grantIds.size }));
    return;
  }
  if (url.pathname === '/admin/revoke-grants' && req.method === 'POST') {
    revokeGrants().then((n) => {
      res.setHeader('content-type', 'application/json');
      res.end(JSON.stringify({ revoked: n }));
    }, (err) => {
      res.statusCode = 500;
      res.end(String(err));
    });
    return;
  }
  if (url.pathname === '/api/dpop-echo') {
    dpopEcho(req, res, url).catch((err) => {
      res.statusCode = 500;
      res.end(String(err));
    });
    return;
  }
  // oidc-provider emits no event for revocation, so count the requests.
  if (url.pathname === '/token/revocation' && req.method === 'POST') stats.revocations += 1;
  handler(req, res);
});

server.listen(port, '127.0.0.1', () => {
  issuer = `http://127.0.0.1:${server.address().port}`;
  provider = newProvider(issuer);
  handler = provider.callback();
  process.stdout.write(`ready ${issuer}\n`);
});

for (const signal of ['SIGINT', 'SIGTERM']) {
  process.on(signal, () => server.close(() => process.exit(0)));
}
