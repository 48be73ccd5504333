package authserver

import (
	"bytes"
	_ "embed"
	"html/template"
	"log/slog"
	"net/http"
	"net/url"
	"strings"

	"github.com/flowgate/flowgate/internal/pagestyle"
)

// Response modes of the authorization endpoint (OAuth 2.0 Multiple
// Response Type Encoding Practices, and Form Post Response Mode).
const (
	modeQuery    = "query"
	modeFragment = "fragment"
	modeFormPost = "form_post"
)

// PathFormPostScript is the one script of the form_post page: served
// from here so the page's CSP allows script from 'self' only, never
// inline.
const PathFormPostScript = "/assets/form-post.js"

//go:embed assets/form-post.js
var formPostJS []byte

// formPostMarker starts the target of an authorization response that
// goes back as a form_post; redirect and Authorize render it as the
// auto-submitting page instead of redirecting. The rest is the redirect
// URI with the response parameters as its query.
const formPostMarker = "form_post\x00"

// authResponse is where an authorization response goes: the client's
// redirect URI with params in its query (the default), its fragment, or,
// for form_post, a marked target that is rendered as a page.
func authResponse(redirectURI, mode string, params url.Values) string {
	u, err := url.Parse(redirectURI)
	if err != nil {
		return redirectURI
	}
	switch mode {
	case modeFragment:
		u.Fragment = ""
		u.RawFragment = ""
		return u.String() + "#" + params.Encode()
	case modeFormPost:
		u.RawQuery = params.Encode()
		return formPostMarker + u.String()
	default:
		q := u.Query()
		for k, v := range params {
			q[k] = v
		}
		u.RawQuery = q.Encode()
		return u.String()
	}
}

// responseModeOK reports whether mode is one the endpoint honours.
func responseModeOK(mode string) bool {
	switch mode {
	case "", modeQuery, modeFragment, modeFormPost:
		return true
	}
	return false
}

var formPostPage = template.Must(template.New("form_post").Parse(`<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Returning to the application</title>
<link rel="stylesheet" href="{{.Style}}">
<script src="{{.Script}}" defer></script>
</head>
<body>
<main>
<h1>Returning to the application</h1>
<form method="post" action="{{.Action}}" id="response">
{{range .Fields}}<input type="hidden" name="{{.Name}}" value="{{.Value}}">
{{end}}<p>If the application does not open by itself, continue:</p>
<button type="submit">Continue</button>
</form>
</main>
</body>
</html>
`))

// writeFormPost answers with the form_post page for a marked target. Its
// CSP allows the one script from this server and the form to post to
// the redirect URI's origin only.
func writeFormPost(w http.ResponseWriter, target string) {
	u, err := url.Parse(strings.TrimPrefix(target, formPostMarker))
	if err != nil {
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	d := struct {
		Style, Script, Action string
		Fields                []hiddenField
	}{Style: pagestyle.URL(), Script: PathFormPostScript}
	for k, vs := range u.Query() {
		for _, v := range vs {
			d.Fields = append(d.Fields, hiddenField{Name: k, Value: v})
		}
	}
	u.RawQuery = ""
	d.Action = u.String()
	var buf bytes.Buffer
	if err := formPostPage.Execute(&buf, d); err != nil {
		slog.Error("rendering the form_post page", "err", err)
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Content-Security-Policy", "default-src 'none'; script-src 'self'; style-src 'self'; form-action "+cspSource(u)+"; frame-ancestors 'none'; base-uri 'none'")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(buf.Bytes())
}

// cspSource is the CSP source expression of a URL's origin.
func cspSource(u *url.URL) string {
	if u.Scheme == "http" || u.Scheme == "https" {
		return u.Scheme + "://" + u.Host
	}
	// A native app's own scheme.
	return u.Scheme + ":"
}

// serveFormPostScript serves the form_post page's script.
func serveFormPostScript(w http.ResponseWriter, _ *http.Request) {
	h := w.Header()
	h.Set("Content-Type", "text/javascript; charset=utf-8")
	h.Set("Cache-Control", "public, max-age=86400")
	h.Set("X-Content-Type-Options", "nosniff")
	_, _ = w.Write(formPostJS)
}
