// A browser app on another origin than Flowgate, as a team would write
// one with oidc-client-ts: sign in (code flow + PKCE), call the API with
// the access token, refresh with the refresh token, call again. Each
// outcome goes into an element the Go test reads; #error holds the first
// failure. Settings come from window.SPA (authority, client_id, api).
import { UserManager, WebStorageStateStore } from 'oidc-client-ts';

const cfg = window.SPA;
const show = (id, v) => { document.getElementById(id).textContent = v; };
const um = new UserManager({
  authority: cfg.authority,
  client_id: cfg.client_id,
  redirect_uri: `${location.origin}/callback`,
  response_type: 'code',
  scope: 'openid profile offline_access workflows.read',
  userStore: new WebStorageStateStore({ store: window.sessionStorage }),
  automaticSilentRenew: false,
});

async function me(token) {
  const r = await fetch(`${cfg.api}/api/v1/me`, { headers: { Authorization: `Bearer ${token}` } });
  if (!r.ok) throw new Error(`/api/v1/me: HTTP ${r.status}`);
  return (await r.json()).principal;
}

async function main() {
  if (location.pathname === '/callback') {
    const user = await um.signinRedirectCallback();
    show('signed-in', user.profile.sub);
    show('me', await me(user.access_token));
    const renewed = await um.signinSilent();
    show('refreshed', renewed.access_token !== user.access_token && renewed.refresh_token !== user.refresh_token ? 'new tokens' : 'same tokens');
    show('me-after', await me(renewed.access_token));
  } else if (location.hash === '#probe') {
    // An origin no client lists: the browser must not let it read answers.
    try {
      await fetch(`${cfg.authority}/.well-known/openid-configuration`);
      show('probe', 'readable');
    } catch {
      show('probe', 'blocked');
    }
  } else {
    await um.signinRedirect();
  }
}

main().catch((err) => show('error', String(err && err.message || err)));
