package api

import (
	_ "embed"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
)

// openAPIDocument describes every route of routes() (see docs/api.md). It
// is written by hand, as the contract callers read; the tests check that
// it lists exactly the registered routes with their scopes and switches,
// and validate every answer they receive against its schemas.
//
//go:embed openapi.json
var openAPIDocument []byte

// apiScopes are the scopes of Flowgate's APIs, as the OAuth security
// schemes offer them to tools that get tokens themselves.
var apiScopes = map[string]string{
	"workflows.read":  "list flows and your instances, read an instance and its history, your connections",
	"workflows.start": "start and cancel instances",
	"tasks":           "your worklist, and acting on tasks",
	"flows.invoke":    "run a flow as an API",
	"admin":           "the admin API (with the admin role)",
}

// servedOpenAPI is the document as served from publicURL: with the server's
// URL, and with OAuth 2.0 and OpenID Connect security schemes whose
// endpoints are this server's, so that Swagger UI and client generators
// can obtain tokens by themselves. Every operation a bearer token opens
// also accepts those two, with the same scopes. The embedded document
// cannot hold them: the endpoints' URLs depend on the public URL.
func servedOpenAPI(publicURL string) ([]byte, error) {
	var doc map[string]any
	if err := json.Unmarshal(openAPIDocument, &doc); err != nil {
		return nil, fmt.Errorf("openapi.json: %w", err)
	}
	base := strings.TrimRight(publicURL, "/")
	doc["servers"] = []any{map[string]any{"url": base, "description": "this Flowgate server"}}
	components, _ := doc["components"].(map[string]any)
	schemes, _ := components["securitySchemes"].(map[string]any)
	if schemes == nil {
		return nil, fmt.Errorf("openapi.json: components.securitySchemes is missing")
	}
	schemes["oauth2"] = map[string]any{
		"type":        "oauth2",
		"description": "Tokens of Flowgate's own authorization server: a person's sign-in (authorization code with PKCE) or a client's own credentials.",
		"flows": map[string]any{
			"authorizationCode": map[string]any{
				"authorizationUrl": base + "/oauth2/authorize",
				"tokenUrl":         base + "/oauth2/token",
				"refreshUrl":       base + "/oauth2/token",
				"scopes":           apiScopes,
			},
			"clientCredentials": map[string]any{
				"tokenUrl": base + "/oauth2/token",
				"scopes":   apiScopes,
			},
		},
	}
	schemes["openIdConnect"] = map[string]any{
		"type":             "openIdConnect",
		"description":      "Flowgate's OpenID Provider, discovered from its metadata.",
		"openIdConnectUrl": base + "/.well-known/openid-configuration",
	}
	paths, _ := doc["paths"].(map[string]any)
	for _, item := range paths {
		ops, _ := item.(map[string]any)
		for _, op := range ops {
			o, ok := op.(map[string]any)
			if !ok {
				continue
			}
			reqs, _ := o["security"].([]any)
			for _, r := range reqs {
				if scopes, ok := r.(map[string]any)["bearer"]; ok {
					reqs = append(reqs, map[string]any{"oauth2": scopes}, map[string]any{"openIdConnect": scopes})
					o["security"] = reqs
					break
				}
			}
		}
	}
	return json.Marshal(doc)
}

// serveOpenAPI serves GET /api/v1/openapi.json, without credentials: a
// client needs it to learn how to get them.
func (a *API) serveOpenAPI(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(a.openapi)
}
