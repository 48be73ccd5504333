package authserver

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"reflect"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/zitadel/oidc/v3/pkg/oidc"
	"github.com/zitadel/oidc/v3/pkg/op"
	"github.com/zitadel/schema"

	"github.com/flowgate/flowgate/internal/audit"
	"github.com/flowgate/flowgate/internal/dpop"
	"github.com/flowgate/flowgate/internal/store"
)

// provider is Flowgate's implementation of zitadel's op.Server: op routes
// the protocol endpoints, parses their requests, authenticates clients
// through VerifyClient, checks grant types and writes OAuth errors; these
// methods apply Flowgate's rules (docs/security.md) and mint tokens with the Server's keys and store.
type provider struct {
	op.UnimplementedServer
	s *Server
}

var _ op.Server = (*provider)(nil)

// exchange is what op does not carry to a Server method: the HTTP request
// and response of the call (for session cookies and audit addresses, which
// are ours), and how to answer when the answer is not op's JSON.
type exchange struct {
	w http.ResponseWriter
	r *http.Request
	// page, when set, answers the request with an HTML page instead of
	// what op writes (an error page that must not redirect, the signed-out
	// page).
	page func(http.ResponseWriter)
	// challenge is the WWW-Authenticate header of a 401 (and of a 403
	// when bearerChallenge).
	challenge       string
	bearerChallenge bool
	// contentType replaces op's application/json (the JWKS).
	contentType string
	// dpopScheme: the userinfo request came with Authorization: DPoP,
	// handed to op as Bearer so that op reads the token.
	dpopScheme bool
	// ow is w's value, allocated with the exchange.
	ow opWriter
}

type exchangeKey struct{}

func exchangeOf(ctx context.Context) *exchange {
	x, _ := ctx.Value(exchangeKey{}).(*exchange)
	if x == nil {
		return &exchange{}
	}
	return x
}

// requestOf returns the HTTP request of an op call, for audit records.
func requestOf(ctx context.Context) *http.Request { return exchangeOf(ctx).r }

// errPage is returned to op when exchange.page answers instead; what op
// writes for it is discarded.
func errPage() error { return oidc.ErrInvalidRequest().WithDescription("answered with a page") }

// opWriter lets the exchange adjust or replace what op writes.
type opWriter struct {
	http.ResponseWriter
	x *exchange
}

func (w *opWriter) WriteHeader(code int) {
	if w.x.page != nil {
		return
	}
	h := w.Header()
	if w.x.challenge != "" && (code == http.StatusUnauthorized || (code == http.StatusForbidden && w.x.bearerChallenge)) {
		h.Set("WWW-Authenticate", w.x.challenge)
	}
	if w.x.contentType != "" {
		h.Set("Content-Type", w.x.contentType)
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *opWriter) Write(b []byte) (int, error) {
	if w.x.page != nil {
		return len(b), nil
	}
	return w.ResponseWriter.Write(b)
}

// formDecoder is op's default decoder (schema, unknown parameters
// ignored) with two differences:
//   - parameter names match only as spelled: OAuth parameter names are
//     case-sensitive (RFC 6749), and schema matches them ignoring case, so
//     a GRANT_TYPE or Scope parameter is dropped before schema sees it, as
//     any other unknown parameter;
//   - an authorization request whose max_age is not a number is still
//     decoded (without it): Authorize refuses it at the client's redirect
//     URI, as it does every bad request naming a registered one, where op
//     would answer it with a JSON error.
type formDecoder struct {
	dec *schema.Decoder
	// names holds, per request type, the parameter names schema decodes
	// into it (reflect.Type → map[string]bool).
	names sync.Map
}

func newFormDecoder() *formDecoder {
	d := schema.NewDecoder()
	d.IgnoreUnknownKeys(true)
	return &formDecoder{dec: d}
}

// Decode is httphelper.Decoder's. The requests of the client-authenticated
// endpoints, which op decodes on every token, introspection and revocation
// request, are filled directly (decodeDirect); every other type goes
// through schema's reflection.
func (d *formDecoder) Decode(dst any, src map[string][]string) error {
	if decodeDirect(dst, src) {
		return nil
	}
	return d.decodeReflect(dst, src)
}

// decodeReflect is Decode through schema, for any request type.
func (d *formDecoder) decodeReflect(dst any, src map[string][]string) error {
	src = d.exactNames(dst, src)
	err := d.dec.Decode(dst, src)
	if _, ok := dst.(*oidc.AuthRequest); ok && err != nil && len(src["max_age"]) > 0 {
		rest := make(map[string][]string, len(src))
		for k, v := range src {
			if k != "max_age" {
				rest[k] = v
			}
		}
		return d.dec.Decode(dst, rest)
	}
	return err
}

// decodeDirect fills dst as schema would, without reflection, when it is
// one of the request types of the token, introspection and revocation
// endpoints, and reports whether it was. The rules are schema's, with
// names matched only as spelled: of a parameter given more than once,
// the last value counts; an empty one leaves a string field unset; a
// scope is split on single spaces, so an empty one is [""]. The fields
// of each type are its schema tags (TestDirectDecodingIsSchemas and
// FuzzTokenForm compare the two decodings).
func decodeDirect(dst any, src map[string][]string) bool {
	switch dst := dst.(type) {
	case *op.ClientCredentials:
		formClient(src, &dst.ClientID, &dst.ClientSecret, &dst.ClientAssertion, &dst.ClientAssertionType)
	case *oidc.ClientCredentialsRequest:
		formString(src, "grant_type", (*string)(&dst.GrantType))
		formScope(src, &dst.Scope)
		formClient(src, &dst.ClientID, &dst.ClientSecret, &dst.ClientAssertion, &dst.ClientAssertionType)
	case *oidc.AccessTokenRequest:
		formString(src, "code", &dst.Code)
		formString(src, "redirect_uri", &dst.RedirectURI)
		formString(src, "code_verifier", &dst.CodeVerifier)
		formClient(src, &dst.ClientID, &dst.ClientSecret, &dst.ClientAssertion, &dst.ClientAssertionType)
	case *oidc.RefreshTokenRequest:
		formString(src, "refresh_token", &dst.RefreshToken)
		formScope(src, &dst.Scopes)
		formClient(src, &dst.ClientID, &dst.ClientSecret, &dst.ClientAssertion, &dst.ClientAssertionType)
	case *oidc.IntrospectionRequest:
		formString(src, "token", &dst.Token)
	case *oidc.RevocationRequest:
		formString(src, "token", &dst.Token)
		formString(src, "token_type_hint", &dst.TokenTypeHint)
	default:
		return false
	}
	return true
}

// formClient reads the client authentication parameters.
func formClient(src map[string][]string, id, secret, assertion, assertionType *string) {
	formString(src, "client_id", id)
	formString(src, "client_secret", secret)
	formString(src, "client_assertion", assertion)
	formString(src, "client_assertion_type", assertionType)
}

// formString sets *dst to the last value of the parameter name, unless
// that is empty.
func formString(src map[string][]string, name string, dst *string) {
	if v := src[name]; len(v) > 0 && v[len(v)-1] != "" {
		*dst = v[len(v)-1]
	}
}

// formScope sets *dst to the last value of scope split on single spaces
// (oidc.SpaceDelimitedArray's UnmarshalText), when scope is given.
func formScope(src map[string][]string, dst *oidc.SpaceDelimitedArray) {
	v, ok := src["scope"]
	if !ok {
		return
	}
	last := ""
	if len(v) > 0 {
		last = v[len(v)-1]
	}
	*dst = strings.Split(last, " ")
}

// exactNames returns src without the parameters that are not named
// exactly as a field of dst: src itself when there are none, nil when
// none is.
func (d *formDecoder) exactNames(dst any, src map[string][]string) map[string][]string {
	t := reflect.TypeOf(dst)
	known, ok := d.names.Load(t)
	if !ok {
		names := map[string]bool{}
		if t.Kind() == reflect.Pointer && t.Elem().Kind() == reflect.Struct {
			schemaNames(t.Elem(), names)
		}
		known, _ = d.names.LoadOrStore(t, names)
	}
	names := known.(map[string]bool)
	for k := range src {
		if names[k] {
			continue
		}
		var exact map[string][]string // nil when no name is dst's
		for k, v := range src {
			if names[k] {
				if exact == nil {
					exact = make(map[string][]string, len(src))
				}
				exact[k] = v
			}
		}
		return exact
	}
	return src
}

// schemaNames adds to names the parameter names schema decodes into the
// struct type t: a field's tag name, or its Go name without one, and the
// names of embedded structs. op's request types are flat, so dotted paths
// into nested structs, which schema also decodes, are not needed.
func schemaNames(t reflect.Type, names map[string]bool) {
	for i := range t.NumField() {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("schema"), ",")
		if name == "-" {
			continue
		}
		if name == "" {
			name = f.Name
		}
		names[name] = true
		ft := f.Type
		if ft.Kind() == reflect.Pointer {
			ft = ft.Elem()
		}
		if f.Anonymous && ft.Kind() == reflect.Struct {
			schemaNames(ft, names)
		}
	}
}

// opEndpoints are the provider's paths, given to op.RegisterServer.
func opEndpoints() op.Endpoints {
	return op.Endpoints{
		Authorization: op.NewEndpoint(PathAuthorize),
		Token:         op.NewEndpoint(PathToken),
		Introspection: op.NewEndpoint(PathIntrospect),
		Userinfo:      op.NewEndpoint(PathUserinfo),
		Revocation:    op.NewEndpoint(PathRevoke),
		EndSession:    op.NewEndpoint(PathEndSession),
		JwksURI:       op.NewEndpoint(PathJWKS),
	}
}

// serveOp prepares a request for op's handler: the content-type and
// body-size rules for POST bodies (op would accept anything), query
// parameters ignored where only the body counts, no-store headers, and
// the exchange in the context.
func (s *Server) serveOp(w http.ResponseWriter, r *http.Request) {
	x := &exchange{r: r}
	path := r.URL.Path
	if path == PathToken && s.auditUnavailable() != nil {
		// RFC 6749 §5.2 has no such code; temporarily_unavailable is the
		// one OAuth defines for this (§4.1.2.1), and clients retry a 503.
		w.Header().Set("Cache-Control", "no-store")
		w.Header().Set("Retry-After", "5")
		s.writeOAuthError(w, r, oauthErr(&oidc.Error{ErrorType: "temporarily_unavailable"}, "the audit log cannot be written; try again later", http.StatusServiceUnavailable))
		return
	}
	clientAuth := path == PathToken || path == PathRevoke || path == PathIntrospect
	switch {
	case clientAuth:
		x.challenge = `Basic realm="flowgate"`
		w.Header().Set("Cache-Control", "no-store")
		if path == PathToken {
			w.Header().Set("Pragma", "no-cache")
		}
	case path == PathUserinfo:
		x.challenge, x.bearerChallenge = "Bearer", true
		w.Header().Set("Cache-Control", "no-store")
		if scheme, tok, ok := strings.Cut(r.Header.Get("Authorization"), " "); ok && strings.EqualFold(scheme, "DPoP") {
			x.dpopScheme = true
			r = r.Clone(r.Context())
			r.Header.Set("Authorization", "Bearer "+strings.TrimSpace(tok))
		}
	case path == PathJWKS:
		x.contentType = "application/jwk-set+json"
	case path == PathASMetadata:
		u := *r.URL
		u.Path = PathDiscovery
		r = r.WithContext(r.Context())
		r.URL = &u
	}
	if r.Method == http.MethodPost {
		parse := parseForm
		if clientAuth {
			// Parameters of these endpoints are read from the body only.
			parse = parseBodyForm
		}
		if path == PathUserinfo && r.Header.Get("Content-Type") == "" {
			// A bearer token in the header and no body.
			r.Body = http.MaxBytesReader(w, r.Body, maxBodyBytes)
		} else if err := parse(w, r); err != nil {
			switch path {
			case PathAuthorize:
				s.errorPage(w, http.StatusBadRequest, "The authorization request is malformed.", err.Error())
			case PathEndSession:
				s.errorPage(w, http.StatusBadRequest, "The logout request is malformed.", err.Error())
			default:
				s.writeOAuthError(w, r, err)
			}
			return
		}
	}
	switch {
	case clientAuth:
		if name := repeatedParam(r.PostForm); name != "" {
			s.writeOAuthError(w, r, errInvalidRequest(fmt.Sprintf("parameter %q is given more than once", truncate(name, 64))))
			return
		}
		if err := s.presentsClient(r); err != nil {
			s.writeOAuthError(w, r, err)
			return
		}
	case path == PathUserinfo:
		// The token comes in the header or a form body, not the query.
		if r.PostForm == nil {
			r.PostForm = url.Values{}
		}
		r.Form = r.PostForm
	}
	x.ow = opWriter{ResponseWriter: w, x: x}
	x.w = &x.ow
	x.r = r.WithContext(context.WithValue(r.Context(), exchangeKey{}, x))
	s.handler.ServeHTTP(x.w, x.r)
	if x.page != nil {
		x.page(w)
	}
}

// repeatedParam names a parameter the form gives more than once, "" when
// none is. RFC 6749 (§3.1, §5.2) forbids repeating one: which value counts
// would otherwise depend on the reader (op's decoder takes the last, a
// proxy or a log may take the first). resource is the exception: RFC 8707
// names several resources by repeating it. Of several repeated names, the
// first in sort order, so that the answer does not vary.
func repeatedParam(form url.Values) string {
	name := ""
	for k, v := range form {
		if len(v) > 1 && k != "resource" && (name == "" || k < name) {
			name = k
		}
	}
	return name
}

// presentsClient refuses, as invalid_client and with an audit record
// (as every failed client authentication is), a request to a client-authenticated endpoint that names no
// client or carries a client assertion of another type; op would answer
// both with invalid_request before VerifyClient is reached.
func (s *Server) presentsClient(r *http.Request) error {
	f := r.PostForm
	_, _, basic := r.BasicAuth()
	why := ""
	switch {
	case f.Get("client_assertion") != "" && f.Get("client_assertion_type") != oidc.ClientAssertionTypeJWTAssertion:
		why = "unsupported client_assertion_type"
	case !basic && f.Get("client_id") == "" && f.Get("client_assertion") == "":
		why = "no client authentication"
	default:
		return nil
	}
	s.audit(r.Context(), r, store.AuditEvent{Event: audit.ClientAuthFailure, Client: truncate(f.Get("client_id"), 128), Outcome: audit.OutcomeFailure, Detail: why})
	return errInvalidClient("client authentication failed")
}

// issEncoder is op's encoder for the error redirects op builds itself
// (its own authorization-request checks), adding iss as our redirects do
// (RFC 9207; discovery says authorization_response_iss_parameter_supported).
type issEncoder struct {
	enc interface {
		Encode(src any, dst map[string][]string) error
	}
	issuer string
}

// Encode is httphelper.Encoder's.
func (e issEncoder) Encode(src any, dst map[string][]string) error {
	if err := e.enc.Encode(src, dst); err != nil {
		return err
	}
	if _, ok := src.(*oidc.Error); ok {
		dst["iss"] = []string{e.issuer}
	}
	return nil
}

// opError is err as op is to answer it: our OAuth errors (oauthErr) as
// they are, any other error logged and answered as a server_error that
// tells nothing of it.
func (s *Server) opError(err error) error {
	var se op.StatusError
	if errors.As(err, &se) {
		return err
	}
	s.logger.Error("authorization server error", "err", err)
	return oidc.ErrServerError().WithDescription("internal error")
}

// client is a store.Client as op sees it. Those of confidential clients
// are shared by the requests of one clientCache period: never changed
// after newClient.
type client struct {
	c             store.Client
	grants        []oidc.GrantType
	responseTypes []oidc.ResponseType
}

func newClient(c store.Client) *client {
	cl := &client{c: c, grants: make([]oidc.GrantType, len(c.GrantTypes)), responseTypes: []oidc.ResponseType{oidc.ResponseTypeCode}}
	for i, g := range c.GrantTypes {
		cl.grants[i] = oidc.GrantType(g)
	}
	return cl
}

// GetID is part of op.Client.
func (c *client) GetID() string { return c.c.ID }

// RedirectURIs is part of op.Client.
func (c *client) RedirectURIs() []string { return c.c.RedirectURIs }

// PostLogoutRedirectURIs is part of op.Client.
func (c *client) PostLogoutRedirectURIs() []string { return c.c.PostLogoutRedirectURIs }

// ApplicationType is part of op.Client: a client whose redirect URI has
// a scheme of its own is native, others are web clients (op then allows
// their registered http:// URIs, as Flowgate does).
func (c *client) ApplicationType() op.ApplicationType {
	for _, u := range c.c.RedirectURIs {
		if !strings.HasPrefix(u, "http://") && !strings.HasPrefix(u, "https://") {
			return op.ApplicationTypeNative
		}
	}
	return op.ApplicationTypeWeb
}

// AuthMethod is part of op.Client.
func (c *client) AuthMethod() oidc.AuthMethod { return oidc.AuthMethod(c.c.TokenEndpointAuthMethod) }

// ResponseTypes is part of op.Client. Authorize answers any other
// response_type with unsupported_response_type itself (RFC 6749
// §4.1.2.1), so the requested one is let through op's check.
func (c *client) ResponseTypes() []oidc.ResponseType { return c.responseTypes }

// GrantTypes is part of op.Client.
func (c *client) GrantTypes() []oidc.GrantType { return c.grants }

// LoginURL is part of op.Client.
func (c *client) LoginURL(id string) string { return PathLogin + "?request=" + url.QueryEscape(id) }

// AccessTokenType is part of op.Client: RFC 9068 JWTs.
func (c *client) AccessTokenType() op.AccessTokenType { return op.AccessTokenTypeJWT }

// IDTokenLifetime is part of op.Client; tokens are minted by the Server.
func (c *client) IDTokenLifetime() time.Duration { return 0 }

// DevMode is part of op.Client. op uses it only to relax its own
// redirect-URI scheme policy (http only for confidential clients asking
// for a code), which is not Flowgate's: its rule is that the redirect URI
// is one the client registered, exactly (docs/configuration.md, clients), which VerifyAuthRequest checks
// before op does. Without it, op would answer an http redirect URI with
// a response_type other than code with a JSON error instead of letting
// Authorize send unsupported_response_type to the client.
func (c *client) DevMode() bool { return true }

// RestrictAdditionalIdTokenScopes is part of op.Client.
func (c *client) RestrictAdditionalIdTokenScopes() func([]string) []string {
	return func(s []string) []string { return s }
}

// RestrictAdditionalAccessTokenScopes is part of op.Client.
func (c *client) RestrictAdditionalAccessTokenScopes() func([]string) []string {
	return func(s []string) []string { return s }
}

// IsScopeAllowed is part of op.Client.
func (c *client) IsScopeAllowed(scope string) bool { return slices.Contains(c.c.Scopes, scope) }

// IDTokenUserinfoClaimsAssertion is part of op.Client.
func (c *client) IDTokenUserinfoClaimsAssertion() bool { return false }

// ClockSkew is part of op.Client.
func (c *client) ClockSkew() time.Duration { return clockSkew }

// scopeFields is a scope parameter as strings.Fields reads it: op splits
// on single spaces, which leaves empty scopes for doubled or trailing ones.
func scopeFields(a oidc.SpaceDelimitedArray) []string {
	if !slices.Contains(a, "") {
		return a
	}
	return strings.Fields(strings.Join(a, " "))
}

func storeClient(c op.Client) *store.Client { return &c.(*client).c }

// Discovery is part of op.Server: the provider's metadata, also served at
// the RFC 8414 path.
func (p *provider) Discovery(_ context.Context, _ *op.Request[struct{}]) (*op.Response, error) {
	resp := op.NewResponse(p.s.metadata())
	resp.Header.Set("Cache-Control", "public, max-age=300")
	return resp, nil
}

// Keys is part of op.Server: the published keys, current and previous.
func (p *provider) Keys(_ context.Context, _ *op.Request[struct{}]) (*op.Response, error) {
	resp := op.NewResponse(json.RawMessage(p.s.keys.JWKS()))
	// Short: a rotation must reach relying parties well before the old
	// key retires.
	resp.Header.Set("Cache-Control", "public, max-age=60")
	return resp, nil
}

// VerifyClient is part of op.Server: the client's registered method
// and nothing else, every failure the same invalid_client, the audit log says why.
func (p *provider) VerifyClient(ctx context.Context, r *op.Request[op.ClientCredentials]) (op.Client, error) {
	c, err := p.s.authenticateClient(ctx, r.Header, r.Data)
	if err != nil {
		return nil, p.s.opError(err)
	}
	return c, nil
}

// ClientCredentialsExchange is part of op.Server.
func (p *provider) ClientCredentialsExchange(ctx context.Context, r *op.ClientRequest[oidc.ClientCredentialsRequest]) (*op.Response, error) {
	resp, err := p.s.clientCredentials(ctx, storeClient(r.Client), scopeFields(r.Data.Scope))
	if err != nil {
		return nil, p.s.opError(err)
	}
	return op.NewResponse(resp), nil
}

// CodeExchange is part of op.Server.
func (p *provider) CodeExchange(ctx context.Context, r *op.ClientRequest[oidc.AccessTokenRequest]) (*op.Response, error) {
	resp, err := p.s.codeExchange(ctx, storeClient(r.Client), r.Data)
	if err != nil {
		return nil, p.s.opError(err)
	}
	return op.NewResponse(resp), nil
}

// RefreshToken is part of op.Server: rotation on every use, family
// revocation on reuse (docs/security.md).
func (p *provider) RefreshToken(ctx context.Context, r *op.ClientRequest[oidc.RefreshTokenRequest]) (*op.Response, error) {
	resp, err := p.s.refresh(ctx, storeClient(r.Client), r.Data.RefreshToken, scopeFields(r.Data.Scopes))
	if err != nil {
		return nil, p.s.opError(err)
	}
	return op.NewResponse(resp), nil
}

// Introspect is part of op.Server (RFC 7662, client-authenticated).
func (p *provider) Introspect(ctx context.Context, r *op.Request[op.IntrospectionRequest]) (*op.Response, error) {
	c, err := p.s.authenticateClient(ctx, r.Header, r.Data.ClientCredentials)
	if err != nil {
		return nil, p.s.opError(err)
	}
	v, err := p.s.introspect(ctx, &c.c, r.Data.Token)
	if err != nil {
		return nil, p.s.opError(err)
	}
	return op.NewResponse(v), nil
}

// Revocation is part of op.Server (RFC 7009).
func (p *provider) Revocation(ctx context.Context, r *op.ClientRequest[oidc.RevocationRequest]) (*op.Response, error) {
	if err := p.s.revoke(ctx, storeClient(r.Client), r.Data.Token); err != nil {
		return nil, p.s.opError(err)
	}
	return op.NewResponse(nil), nil
}

// UserInfo is part of op.Server (OIDC Core §5.3).
func (p *provider) UserInfo(ctx context.Context, r *op.Request[oidc.UserInfoRequest]) (*op.Response, error) {
	v, err := p.s.userinfo(ctx, strings.TrimSpace(r.Data.AccessToken))
	if err != nil {
		var oe *oidc.Error
		if errors.As(err, &oe) {
			x := exchangeOf(ctx)
			switch {
			case oe.ErrorType == dpop.CodeInvalidProof || oe.ErrorType == dpop.CodeUseNonce:
				x.challenge = `DPoP error="` + string(oe.ErrorType) + `", algs="` + strings.Join(dpop.AlgNames(), " ") + `"`
			case x.dpopScheme:
				x.challenge = `DPoP error="` + string(oe.ErrorType) + `"`
			default:
				x.challenge = `Bearer error="` + string(oe.ErrorType) + `"`
			}
		}
		return nil, p.s.opError(err)
	}
	return op.NewResponse(v), nil
}

// VerifyAuthRequest is part of op.Server: the client and its redirect
// URI. Neither failure may redirect (the redirect URI is not trusted yet),
// so both answer with our error page.
func (p *provider) VerifyAuthRequest(ctx context.Context, r *op.Request[oidc.AuthRequest]) (*op.ClientRequest[oidc.AuthRequest], error) {
	c, err := p.s.verifyAuthRequest(ctx, r.Data)
	if err != nil {
		return nil, err
	}
	cl := newClient(c)
	if rt := r.Data.ResponseType; rt != "" && rt != oidc.ResponseTypeCode {
		cl.responseTypes = append(cl.responseTypes, rt)
	}
	return &op.ClientRequest[oidc.AuthRequest]{Request: r, Client: cl}, nil
}

// Authorize is part of op.Server: our checks (PKCE S256 only, scopes,
// prompt, max_age), then the session, login and consent pages. Every
// answer is a redirect: to our pages, or to the client with a code or an
// error (with iss, RFC 9207).
func (p *provider) Authorize(ctx context.Context, r *op.ClientRequest[oidc.AuthRequest]) (*op.Redirect, error) {
	target := p.s.authorize(ctx, storeClient(r.Client), r.Data, r.Form)
	if strings.HasPrefix(target, formPostMarker) {
		exchangeOf(ctx).page = func(w http.ResponseWriter) {
			w.Header().Set("Cache-Control", "no-store")
			writeFormPost(w, target)
		}
		return op.NewRedirect("/"), nil
	}
	red := op.NewRedirect(target)
	red.Header.Set("Cache-Control", "no-store")
	return red, nil
}

// EndSession is part of op.Server: RP-initiated logout.
func (p *provider) EndSession(ctx context.Context, r *op.Request[oidc.EndSessionRequest]) (*op.Redirect, error) {
	target, err := p.s.endSession(ctx, r.Data)
	if err != nil {
		return nil, err
	}
	red := op.NewRedirect(target)
	red.Header.Set("Cache-Control", "no-store")
	return red, nil
}
