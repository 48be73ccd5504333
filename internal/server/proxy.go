package server

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"strings"
)

// Proxies are the reverse proxies whose forwarding headers are believed.
type Proxies struct {
	prefixes []netip.Prefix
}

// ParseProxies reads CIDRs or single addresses (server.trusted_proxies).
func ParseProxies(entries []string) (*Proxies, error) {
	p := &Proxies{}
	for _, e := range entries {
		if pre, err := netip.ParsePrefix(e); err == nil {
			p.prefixes = append(p.prefixes, pre.Masked())
			continue
		}
		a, err := netip.ParseAddr(e)
		if err != nil {
			return nil, fmt.Errorf("trusted proxy %q: not a CIDR or an IP address", e)
		}
		a = a.Unmap()
		p.prefixes = append(p.prefixes, netip.PrefixFrom(a, a.BitLen()))
	}
	return p, nil
}

func (p *Proxies) trusted(a netip.Addr) bool {
	if p == nil {
		return false
	}
	a = a.Unmap()
	for _, pre := range p.prefixes {
		if pre.Contains(a) {
			return true
		}
	}
	return false
}

type httpsKey struct{}

// IsHTTPS reports whether the client reached Flowgate over HTTPS: this
// server's own TLS, or a trusted proxy's X-Forwarded-Proto.
func IsHTTPS(r *http.Request) bool {
	if r.TLS != nil {
		return true
	}
	v, _ := r.Context().Value(httpsKey{}).(bool)
	return v
}

// forwarded rewrites r for a request that came through a trusted proxy:
// RemoteAddr becomes the client's address, the last one in
// X-Forwarded-For that is not itself a trusted proxy (addresses further
// left were written by the client and prove nothing), and
// X-Forwarded-Proto: https marks the request as HTTPS (IsHTTPS). From any
// other peer both headers are removed, so nothing later reads them.
func (p *Proxies) forwarded(r *http.Request) *http.Request {
	host, port, err := net.SplitHostPort(r.RemoteAddr)
	peer, perr := netip.ParseAddr(host)
	if err != nil || perr != nil || !p.trusted(peer) {
		if r.Header.Get("X-Forwarded-For") != "" || r.Header.Get("X-Forwarded-Proto") != "" {
			r.Header.Del("X-Forwarded-For")
			r.Header.Del("X-Forwarded-Proto")
		}
		return r
	}
	client := peer
	var hops []string
	for _, v := range r.Header.Values("X-Forwarded-For") {
		hops = append(hops, strings.Split(v, ",")...)
	}
	for i := len(hops) - 1; i >= 0; i-- {
		a, err := netip.ParseAddr(strings.TrimSpace(hops[i]))
		if err != nil {
			break // a malformed hop: trust nothing beyond it
		}
		client = a.Unmap()
		if !p.trusted(client) {
			break
		}
	}
	r2 := r.WithContext(r.Context())
	r2.RemoteAddr = net.JoinHostPort(client.String(), port)
	if proto := r.Header.Get("X-Forwarded-Proto"); proto != "" {
		proto, _, _ = strings.Cut(proto, ",")
		r2 = r2.WithContext(context.WithValue(r2.Context(), httpsKey{}, strings.EqualFold(strings.TrimSpace(proto), "https")))
	}
	return r2
}

// SetTrustedProxies makes the server believe forwarding headers from p's
// peers only; call before Serve.
func (s *Server) SetTrustedProxies(p *Proxies) { s.proxies = p }

// secureCookies marks every cookie of a response Secure: the request came
// over HTTPS through a trusted proxy, so the browser sees an https page
// even when the public URL (which decides Secure elsewhere) says http.
type secureCookies struct {
	http.ResponseWriter
	done bool
}

func (w *secureCookies) fix() {
	if w.done {
		return
	}
	w.done = true
	h := w.Header()
	cookies := h.Values("Set-Cookie")
	for i, c := range cookies {
		if !strings.Contains(strings.ToLower(c), "; secure") {
			cookies[i] = c + "; Secure"
		}
	}
}

// WriteHeader is http.ResponseWriter's.
func (w *secureCookies) WriteHeader(code int) {
	w.fix()
	w.ResponseWriter.WriteHeader(code)
}

// Write is http.ResponseWriter's.
func (w *secureCookies) Write(b []byte) (int, error) {
	w.fix()
	return w.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the connection's writer.
func (w *secureCookies) Unwrap() http.ResponseWriter { return w.ResponseWriter }
