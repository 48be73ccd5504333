package odata

import (
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"reflect"
	"testing"
	"time"

	"github.com/flowgate/flowgate/internal/store"
)

func testProps() map[string]store.DataType {
	return map[string]store.DataType{"Status": store.DataString, "Version": store.DataInt, "amount": store.DataFloat,
		"urgent": store.DataBool, "StartedAt": store.DataTime, "EndedAt": store.DataTime}
}

func TestParseFilter(t *testing.T) {
	cmp := func(f, op string, v any) store.DataCompare { return store.DataCompare{Field: f, Op: op, Value: v} }
	day := time.Date(2024, 1, 2, 0, 0, 0, 0, time.UTC)
	for src, want := range map[string]store.DataExpr{
		"Status eq 'done'":                       cmp("Status", "eq", "done"),
		"Status eq 'it''s'":                      cmp("Status", "eq", "it's"),
		"Version ne 2":                           cmp("Version", "ne", int64(2)),
		"amount gt -1.5":                         cmp("amount", "gt", -1.5),
		"amount ge 10":                           cmp("amount", "ge", int64(10)),
		"3 lt Version":                           cmp("Version", "gt", int64(3)),
		"StartedAt le 2024-01-02T03:04:05.5Z":    cmp("StartedAt", "le", time.Date(2024, 1, 2, 3, 4, 5, 5e8, time.UTC)),
		"StartedAt lt 2024-01-02T05:00:00+02:00": cmp("StartedAt", "lt", time.Date(2024, 1, 2, 3, 0, 0, 0, time.UTC)),
		"StartedAt ge 2024-01-02":                cmp("StartedAt", "ge", day),
		"EndedAt eq null":                        cmp("EndedAt", "eq", nil),
		"urgent":                                 cmp("urgent", "eq", true),
		"not urgent":                             store.DataNot{X: cmp("urgent", "eq", true)},
		"urgent eq false":                        cmp("urgent", "eq", false),
		"Status eq 019380f2-1c0b-7cc0-8a3e-6d3b0a1b2c3d": cmp("Status", "eq", "019380f2-1c0b-7cc0-8a3e-6d3b0a1b2c3d"),
		"contains(Status,'on')":                          store.DataMatch{Func: "contains", Field: "Status", Value: "on"},
		"startswith(Status, 'd') and endswith(Status,'e')": store.DataAnd{
			L: store.DataMatch{Func: "startswith", Field: "Status", Value: "d"},
			R: store.DataMatch{Func: "endswith", Field: "Status", Value: "e"}},
		// and binds tighter than or; parentheses group.
		"Version eq 1 or Version eq 2 and urgent": store.DataOr{L: cmp("Version", "eq", int64(1)),
			R: store.DataAnd{L: cmp("Version", "eq", int64(2)), R: cmp("urgent", "eq", true)}},
		"(Version eq 1 or Version eq 2) and not (Status eq 'x')": store.DataAnd{
			L: store.DataOr{L: cmp("Version", "eq", int64(1)), R: cmp("Version", "eq", int64(2))},
			R: store.DataNot{X: cmp("Status", "eq", "x")}},
	} {
		got, err := ParseFilter(src, testProps())
		if err != nil {
			t.Errorf("ParseFilter(%q): %v", src, err)
			continue
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("ParseFilter(%q) =\n %#v, want\n %#v", src, got, want)
		}
	}
}

func TestParseFilterErrors(t *testing.T) {
	for src, status := range map[string]int{
		"":                           400,
		"Status eq":                  400,
		"Status eq 'open":            400,
		"Nope eq 1":                  400,
		"Status eq 1":                400,
		"Version eq 'x'":             400,
		"StartedAt gt 2024-13-01":    400,
		"StartedAt gt '2024-01-01'":  400,
		"EndedAt gt null":            400,
		"Status eq 'a' Status":       400,
		"(Status eq 'a'":             400,
		"Version":                    400,
		"Status eq 'a' and Version":  400,
		"frobnicate(Status)":         400,
		"contains(Status,1)":         400,
		"contains(Version,'1')":      400,
		"Version add 1 eq 2":         501,
		"Status in ('a','b')":        501,
		"tolower(Status) eq 'a'":     501,
		"Status eq Status":           501,
		"1 eq 1":                     501,
		"Items/any(i: i eq 1)":       400,
		"Status/Name eq 'x'":         501,
		"StartedAt gt duration'P1D'": 501,
		"Flowgate.Func(Status)":      501,
		"Status eq @p":               501,
		"Version eq 1.5M":            400,
		"amount eq INF":              501,
	} {
		_, err := ParseFilter(src, testProps())
		var oe *Error
		if !errors.As(err, &oe) {
			t.Errorf("ParseFilter(%q) error %v, want an *Error", src, err)
			continue
		}
		if oe.Status != status {
			t.Errorf("ParseFilter(%q) = %d %q, want %d", src, oe.Status, oe.Message, status)
		}
	}
	deep := ""
	for range 200 {
		deep += "("
	}
	if _, err := ParseFilter(deep+"urgent", testProps()); err == nil {
		t.Error("200 nested parentheses were accepted")
	}
	long := fmt.Sprintf("Status eq '%0*d'", maxFilterLen, 0)
	if _, err := ParseFilter(long, testProps()); err == nil {
		t.Error("an over-long filter was accepted")
	}
}

// FuzzParseFilter checks that no input panics, and that every accepted
// filter only names known properties with values of their types.
func FuzzParseFilter(f *testing.F) {
	for _, s := range []string{"Status eq 'a'", "not (Version gt 1 or urgent)", "contains(Status,'x''y')",
		"StartedAt ge 2024-01-02T03:04:05Z and EndedAt eq null", "3 lt Version", "((((urgent))))",
		"Status eq 019380f2-1c0b-7cc0-8a3e-6d3b0a1b2c3d", "amount le -1e3"} {
		f.Add(s)
	}
	props := testProps()
	f.Fuzz(func(t *testing.T, src string) {
		e, err := ParseFilter(src, props)
		if err != nil {
			var oe *Error
			if !errors.As(err, &oe) || (oe.Status != 400 && oe.Status != 501) {
				t.Fatalf("ParseFilter(%q): error %v is not a 400 or 501", src, err)
			}
			return
		}
		var walk func(store.DataExpr)
		walk = func(e store.DataExpr) {
			switch x := e.(type) {
			case store.DataAnd:
				walk(x.L)
				walk(x.R)
			case store.DataOr:
				walk(x.L)
				walk(x.R)
			case store.DataNot:
				walk(x.X)
			case store.DataCompare:
				typ, ok := props[x.Field]
				if !ok {
					t.Fatalf("%q: unknown field %q accepted", src, x.Field)
				}
				if x.Value == nil {
					return
				}
				var fits bool
				switch x.Value.(type) {
				case string:
					fits = typ == store.DataString
				case int64, float64:
					fits = typ == store.DataInt || typ == store.DataFloat
				case bool:
					fits = typ == store.DataBool
				case time.Time:
					fits = typ == store.DataTime
				}
				if !fits {
					t.Fatalf("%q: %s compared with %T", src, x.Field, x.Value)
				}
			case store.DataMatch:
				if props[x.Field] != store.DataString {
					t.Fatalf("%q: match on %s", src, x.Field)
				}
			default:
				t.Fatalf("%q: unexpected node %T", src, e)
			}
		}
		walk(e)
	})
}

func TestEntraAuthorizationURI(t *testing.T) {
	for want, issuers := range map[string][]string{
		"https://login.microsoftonline.com/0f1e2d3c-aaaa-bbbb-cccc-123456789abc/oauth2/authorize": {
			"https://accounts.google.com", "https://login.microsoftonline.com/0f1e2d3c-aaaa-bbbb-cccc-123456789abc/v2.0"},
		"https://login.microsoftonline.com/tenant-1/oauth2/authorize": {"https://sts.windows.net/tenant-1/"},
		"": {"https://login.microsoftonline.com/", "http://login.microsoftonline.com/x/v2.0", "https://okta.example.com"},
	} {
		if got := EntraAuthorizationURI(issuers); got != want {
			t.Errorf("EntraAuthorizationURI(%v) = %q, want %q", issuers, got, want)
		}
	}
}

func TestChallengeNamesTheAuthority(t *testing.T) {
	s := &Service{o: Options{AuthorizationURI: "https://login.microsoftonline.com/t1/oauth2/authorize"}}
	h := s.withChallenge(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("WWW-Authenticate", `Bearer realm="flowgate"`)
		w.WriteHeader(http.StatusUnauthorized)
	}))
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/odata/v4/", nil))
	if got := rec.Header().Get("WWW-Authenticate"); got != `Bearer realm="flowgate", authorization_uri="https://login.microsoftonline.com/t1/oauth2/authorize"` {
		t.Errorf("challenge %q", got)
	}
}
