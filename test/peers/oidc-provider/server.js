// An independent OpenID provider (panva/node-oidc-provider) that Flowgate's Go tests use as an
// external trusted issuer. It is a test peer, not part of Flowgate: it issues real JWT access
// tokens (RFC 9068, via resource indicators) through the client_credentials grant, so the Go
// validator is exercised against someone else's implementation rather than our own.
//
// Configuration (argv wins over env):
//   node server.js [port] [issuer] [audience]
//   PORT       listen port on 127.0.0.1; 0 (default) picks a free one
//   ISSUER     issuer URL; default http://127.0.0.1:<port>
//   AUDIENCE   resource indicator tokens are issued for by default; default api://flowgate
//   SIGNING_ALG RS256 (default) or ES256
//   TOKEN_TTL  access token lifetime in seconds; default 300
//   ROLES      space-separated roles put in the "roles" claim; default "approver reader"
//
// Static client: client_id "flowgate-test", client_secret "flowgate-test-secret"
// (client_secret_basic or client_secret_post), grant client_credentials.
// Resources: AUDIENCE and "api://other" (to obtain wrong-audience tokens).
//
// Admin hooks (test-only, no authentication, bound to 127.0.0.1):
//   POST /admin/rotate          add a new signing key and sign with it; old keys stay published
//   POST /admin/rotate?drop=1   same, but stop publishing the previous keys
//   GET  /admin/stats           {"jwks_requests": n, "kids": [...]} — n counts GET /jwks
//
// Once listening it prints one line: "ready <issuer>".

import * as crypto from 'node:crypto';
import * as http from 'node:http';

import Provider from 'oidc-provider';

const port = Number(process.argv[2] ?? process.env.PORT ?? 0);
const audience = process.argv[4] ?? process.env.AUDIENCE ?? 'api://flowgate';
const alg = process.env.SIGNING_ALG ?? 'RS256';
const ttl = Number(process.env.TOKEN_TTL ?? 300);
const roles = (process.env.ROLES ?? 'approver reader').split(' ').filter(Boolean);
const resourceScopes = 'workflows.read flows.invoke ext.tasks';

const CLIENT = {
  client_id: 'flowgate-test',
  client_secret: 'flowgate-test-secret',
  grant_types: ['client_credentials'],
  response_types: [],
  redirect_uris: [],
  token_endpoint_auth_method: 'client_secret_basic',
  scope: resourceScopes,
  // The provider checks the client's ID token algorithm against the keys it holds, so with
  // SIGNING_ALG=ES256 (no RSA key) the client must name ES256 too.
  id_token_signed_response_alg: alg,
};

let keySerial = 0;
let keys = [];
let jwksRequests = 0;

function newKey() {
  keySerial += 1;
  const kid = `peer-key-${keySerial}`;
  const pair = alg === 'ES256'
    ? crypto.generateKeyPairSync('ec', { namedCurve: 'P-256' })
    : crypto.generateKeyPairSync('rsa', { modulusLength: 2048 });
  // Exported through a KeyObject of its own: exporting generateKeyPairSync's key directly can
  // deadlock on Node.js 20 when a garbage collection runs during the export.
  const own = crypto.createPrivateKey(pair.privateKey.export({ type: 'pkcs8', format: 'pem' }));
  return { ...own.export({ format: 'jwk' }), kid, alg, use: 'sig' };
}

function newProvider(issuer) {
  const provider = new Provider(issuer, {
    clients: [CLIENT],
    scopes: ['openid', 'offline_access', ...resourceScopes.split(' ')],
    // The first key of an alg signs, so a rotation puts the new key first.
    jwks: { keys },
    features: {
      devInteractions: { enabled: false },
      clientCredentials: { enabled: true },
      introspection: { enabled: false },
      revocation: { enabled: false },
      resourceIndicators: {
        enabled: true,
        defaultResource: async () => audience,
        useGrantedResource: async () => true,
        getResourceServerInfo: async (_ctx, resourceIndicator) => {
          if (resourceIndicator !== audience && resourceIndicator !== 'api://other') {
            throw new Provider.errors.InvalidTarget();
          }
          return {
            scope: resourceScopes,
            audience: resourceIndicator,
            accessTokenTTL: ttl,
            accessTokenFormat: 'jwt',
            jwt: { sign: { alg } },
          };
        },
      },
    },
    extraTokenClaims: async () => ({ roles }),
  });
  provider.proxy = false;
  return provider;
}

let handler;

const server = http.createServer((req, res) => {
  const url = new URL(req.url, 'http://127.0.0.1');
  if (url.pathname === '/admin/stats' && req.method === 'GET') {
    res.setHeader('content-type', 'application/json');
    res.end(JSON.stringify({ jwks_requests: jwksRequests, kids: keys.map((k) => k.kid) }));
    return;
  }
  if (url.pathname === '/admin/rotate' && req.method === 'POST') {
    const key = newKey();
    keys = url.searchParams.get('drop') ? [key] : [key, ...keys];
    handler = newProvider(issuerURL).callback();
    res.setHeader('content-type', 'application/json');
    res.end(JSON.stringify({ kid: key.kid, kids: keys.map((k) => k.kid) }));
    return;
  }
  if (url.pathname === '/jwks') {
    jwksRequests += 1;
  }
  handler(req, res);
});

let issuerURL;

server.listen(port, '127.0.0.1', () => {
  const actual = server.address().port;
  issuerURL = process.argv[3] ?? process.env.ISSUER ?? `http://127.0.0.1:${actual}`;
  keys = [newKey()];
  handler = newProvider(issuerURL).callback();
  process.stdout.write(`ready ${issuerURL}\n`);
});

for (const signal of ['SIGINT', 'SIGTERM']) {
  process.on(signal, () => server.close(() => process.exit(0)));
}
