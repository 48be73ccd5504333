// An independent OpenID provider (panva/node-oidc-provider) playing a company's identity provider
// that Flowgate signs people in through (federation, internal/federation). People sign in on the
// provider's own login and consent pages (devInteractions: the login typed is the account id, any
// password); their claims come from an account table the test sets and may change between
// sign-ins (groups, email, email_verified).
//
// Configuration (env):
//   PORT          listen port on 127.0.0.1; 0 (default) picks a free one
//   REDIRECT_URI  Flowgate's redirect URI (public URL + /login/callback)
//   PKJWT_JWKS    JSON {"keys":[…]}: public key(s) of the private_key_jwt client; unset: not registered
//   EXTRA_REDIRECT another redirect URI of flowgate-rp (Flowgate's /oauth-callback, when the same
//                 client also serves as an oauth_servers entry)
//   APP_REDIRECT  redirect URI of "app", a second client that gets JWT access tokens for the API
//                 (resource api://flowgate), as an application calling Flowgate with the IdP's token
//
// Clients:
//   flowgate-rp / flowgate-rp-secret   client_secret_basic, redirect REDIRECT_URI
//   flowgate-rp-jwt                    private_key_jwt (key from PKJWT_JWKS), redirect REDIRECT_URI
//   app / app-secret                   client_secret_basic, redirect APP_REDIRECT
// Scopes: openid email profile groups; ID tokens carry the claims of the scopes granted
// (conformIdTokenClaims off), groups in the "groups" claim. end_session_endpoint is advertised.
//
// Admin hooks (test-only, no authentication, bound to 127.0.0.1):
//   PUT  /admin/accounts   body {"<id>": {"email": …, "email_verified": …, "preferred_username": …,
//                          "name": …, "groups": […]}}: replaces the account table
//   GET  /admin/stats      {"code_grants": n}
//
// Once listening it prints one line: "ready <issuer>".

import * as crypto from 'node:crypto';
import * as http from 'node:http';

import Provider from 'oidc-provider';

const port = Number(process.env.PORT ?? 0);
const redirectURI = process.env.REDIRECT_URI ?? 'http://127.0.0.1:9/login/callback';
const appRedirect = process.env.APP_REDIRECT ?? 'http://127.0.0.1:9/app';
const audience = 'api://flowgate';
const apiScopes = 'workflows.read workflows.start tasks flows.invoke';

let accounts = {};
const stats = { code_grants: 0 };

const rp = {
  grant_types: ['authorization_code'],
  response_types: ['code'],
  redirect_uris: [redirectURI, ...(process.env.EXTRA_REDIRECT ? [process.env.EXTRA_REDIRECT] : [])],
  post_logout_redirect_uris: [],
  scope: 'openid email profile groups',
};
const clients = [
  { ...rp, client_id: 'flowgate-rp', client_secret: 'flowgate-rp-secret', token_endpoint_auth_method: 'client_secret_basic' },
  {
    client_id: 'app', client_secret: 'app-secret', token_endpoint_auth_method: 'client_secret_basic',
    grant_types: ['authorization_code'], response_types: ['code'], redirect_uris: [appRedirect],
    scope: `openid ${apiScopes}`,
  },
];
if (process.env.PKJWT_JWKS) {
  clients.push({ ...rp, client_id: 'flowgate-rp-jwt', token_endpoint_auth_method: 'private_key_jwt', jwks: JSON.parse(process.env.PKJWT_JWKS) });
}

// Exported through a KeyObject of its own: exporting generateKeyPairSync's key directly can
// deadlock on Node.js 20 when a garbage collection runs during the export.
function jwkOf(privateKey) {
  return crypto.createPrivateKey(privateKey.export({ type: 'pkcs8', format: 'pem' })).export({ format: 'jwk' });
}

function newProvider(issuer) {
  const signing = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 });
  const provider = new Provider(issuer, {
    clients,
    scopes: ['openid', 'email', 'profile', 'groups', ...apiScopes.split(' ')],
    claims: {
      openid: ['sub'],
      email: ['email', 'email_verified'],
      profile: ['name', 'preferred_username'],
      groups: ['groups'],
    },
    conformIdTokenClaims: false,
    jwks: { keys: [{ ...jwkOf(signing.privateKey), kid: 'upstream-1', alg: 'RS256', use: 'sig' }] },
    findAccount: async (_ctx, sub) => ({
      accountId: sub,
      claims: async () => ({ sub, ...(accounts[sub] ?? {}) }),
    }),
    features: {
      devInteractions: { enabled: true },
      rpInitiatedLogout: { enabled: true },
      resourceIndicators: {
        enabled: true,
        defaultResource: async () => undefined,
        useGrantedResource: async () => true,
        getResourceServerInfo: async (_ctx, resource) => {
          if (resource !== audience) throw new Provider.errors.InvalidTarget();
          return { scope: apiScopes, audience, accessTokenTTL: 600, accessTokenFormat: 'jwt', jwt: { sign: { alg: 'RS256' } } };
        },
      },
    },
    pkce: { required: () => true },
    ttl: { AccessToken: 600, AuthorizationCode: 60, IdToken: 600, Interaction: 600, Session: 3600, Grant: 3600 },
  });
  provider.proxy = false;
  provider.on('grant.success', (ctx) => {
    if (ctx.oidc.params.grant_type === 'authorization_code') stats.code_grants += 1;
  });
  return provider;
}

let handler;
const server = http.createServer((req, res) => {
  const url = new URL(req.url, 'http://127.0.0.1');
  if (url.pathname === '/admin/accounts' && req.method === 'PUT') {
    let body = '';
    req.on('data', (c) => { body += c; });
    req.on('end', () => {
      try {
        accounts = JSON.parse(body);
        res.end('{}');
      } catch (err) {
        res.statusCode = 400;
        res.end(String(err));
      }
    });
    return;
  }
  if (url.pathname === '/admin/stats' && req.method === 'GET') {
    res.setHeader('content-type', 'application/json');
    res.end(JSON.stringify(stats));
    return;
  }
  handler(req, res);
});

server.listen(port, '127.0.0.1', () => {
  const issuer = `http://127.0.0.1:${server.address().port}`;
  handler = newProvider(issuer).callback();
  process.stdout.write(`ready ${issuer}\n`);
});
