package odata

import (
	"net/http"
	"net/url"
	"strings"
)

// Power BI, Excel and other Power Query clients sign in with an
// "Organizational account" by discovery: they call the feed without a
// token and read the Entra ID authority from the 401's challenge,
// WWW-Authenticate: Bearer authorization_uri="…/TENANT/oauth2/authorize".

// EntraAuthorizationURI returns the authorize endpoint of the first
// Entra ID tenant among issuers (trusted issuer URLs such as
// https://login.microsoftonline.com/TENANT/v2.0 or
// https://sts.windows.net/TENANT/), or "" when none is one.
func EntraAuthorizationURI(issuers []string) string {
	for _, iss := range issuers {
		u, err := url.Parse(iss)
		if err != nil || u.Scheme != "https" {
			continue
		}
		if u.Host != "login.microsoftonline.com" && u.Host != "sts.windows.net" {
			continue
		}
		tenant, _, _ := strings.Cut(strings.TrimPrefix(u.Path, "/"), "/")
		if tenant == "" {
			continue
		}
		return "https://login.microsoftonline.com/" + url.PathEscape(tenant) + "/oauth2/authorize"
	}
	return ""
}

// challengeWriter adds authorization_uri to the Bearer challenge of a
// 401 answer.
type challengeWriter struct {
	http.ResponseWriter
	uri string
}

func (c *challengeWriter) WriteHeader(status int) {
	if status == http.StatusUnauthorized {
		if v := c.Header().Get("WWW-Authenticate"); strings.HasPrefix(v, "Bearer") {
			c.Header().Set("WWW-Authenticate", v+`, authorization_uri="`+c.uri+`"`)
		}
	}
	c.ResponseWriter.WriteHeader(status)
}

func (s *Service) withChallenge(next http.Handler) http.Handler {
	if s.o.AuthorizationURI == "" {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		next.ServeHTTP(&challengeWriter{ResponseWriter: w, uri: s.o.AuthorizationURI}, r)
	})
}
