package buildinfo

import (
	"io"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

func TestLinkerFlagsWin(t *testing.T) {
	i := read("v1.2.3", "0123456789abcdef0123-dirty")
	if i.Version != "v1.2.3" || i.Commit != "0123456789abcdef0123" || !i.Modified {
		t.Errorf("read = %+v", i)
	}
	if got := i.String(); !strings.HasPrefix(got, "flowgate v1.2.3 commit 0123456789ab (modified) go") {
		t.Errorf("String() = %q", got)
	}
}

func TestBuildInfoMetric(t *testing.T) {
	reg := prometheus.NewRegistry()
	reg.MustRegister(Info{Version: "v9.9.9", Commit: "abcdef0123456789", GoVersion: "go1.26"}.Collector())
	want := `# HELP flowgate_build_info The running build: always 1, with version, commit, modified and Go version as labels.
# TYPE flowgate_build_info gauge
flowgate_build_info{commit="abcdef012345",goversion="go1.26",modified="false",version="v9.9.9"} 1
`
	rec := httptest.NewRecorder()
	promhttp.HandlerFor(reg, promhttp.HandlerOpts{}).ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	body, _ := io.ReadAll(rec.Body)
	if string(body) != want {
		t.Errorf("/metrics =\n%s\nwant\n%s", body, want)
	}
}
