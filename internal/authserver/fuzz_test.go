package authserver

import (
	"net/url"
	"reflect"
	"testing"

	"github.com/zitadel/oidc/v3/pkg/oidc"
	"github.com/zitadel/oidc/v3/pkg/op"
	"github.com/zitadel/schema"
)

// FuzzFormDecoder decodes arbitrary token-request forms with the hand-read
// fast path and with the schema decoder it stands in for: the two must
// agree field for field, and neither may panic.
func FuzzFormDecoder(f *testing.F) {
	for _, s := range []string{
		"grant_type=client_credentials&scope=a+b&client_id=c&client_secret=s",
		"grant_type=client_credentials&client_assertion_type=urn%3Aietf%3Aparams%3Aoauth%3Aclient-assertion-type%3Ajwt-bearer&client_assertion=x.y.z",
		"GRANT_TYPE=x&Scope=&client_id=a&client_id=b", "scope=%20%20a", "client_secret=&client_secret=x", "=&&=x", "%zz",
	} {
		f.Add(s)
	}
	fast := newFormDecoder()
	slow := schema.NewDecoder()
	slow.IgnoreUnknownKeys(true)
	f.Fuzz(func(t *testing.T, form string) {
		src, err := url.ParseQuery(form)
		if err != nil {
			return
		}
		var gotCreds, wantCreds op.ClientCredentials
		errFast, errSlow := fast.Decode(&gotCreds, src), slow.Decode(&wantCreds, src)
		if (errFast == nil) != (errSlow == nil) || (errSlow == nil && !reflect.DeepEqual(gotCreds, wantCreds)) {
			t.Fatalf("client credentials of %q: fast %+v (%v), schema %+v (%v)", form, gotCreds, errFast, wantCreds, errSlow)
		}
		var gotReq, wantReq oidc.ClientCredentialsRequest
		errFast, errSlow = fast.Decode(&gotReq, src), slow.Decode(&wantReq, src)
		if (errFast == nil) != (errSlow == nil) || (errSlow == nil && !reflect.DeepEqual(gotReq, wantReq)) {
			t.Fatalf("client credentials request of %q: fast %+v (%v), schema %+v (%v)", form, gotReq, errFast, wantReq, errSlow)
		}
	})
}
