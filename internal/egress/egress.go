// Package egress decides where Flowgate's outbound HTTP connections may go:
// http steps, trusted issuers' metadata and key sets, outbound OAuth
// servers, clients' jwks_uri. A URL can be built from a flow's input, so
// without a policy anyone allowed to start a flow could make Flowgate read
// what only Flowgate can reach: its own /metrics, a sidecar on loopback,
// the cloud metadata service at 169.254.169.254.
//
// The policy is checked when a connection is made, on the address actually
// dialled after DNS resolution (a net.Dialer Control function), so a name
// that resolves to an allowed address when checked and to a denied one when
// connecting (DNS rebinding) gains nothing, and every redirect is checked
// too, since it dials through the same function.
//
// By default loopback, link-local, unspecified addresses (0.0.0.0 and ::
// reach the local host), the AWS IPv6 metadata address and Flowgate's own
// listen address are denied, and everything else, company-internal
// networks included, is allowed. Deny entries add to the defaults; an
// allow entry wins over every deny, the defaults included. Entries are
// CIDRs, IP addresses or host names; a host name matches the host of the
// URL as written (case-insensitive, without a trailing dot, no wildcards),
// not what it resolves to: allowing a name allows whatever it resolves to,
// denying a name refuses it before any lookup.
package egress

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"syscall"
	"time"
)

// Policy decides which addresses outbound connections may reach. It is
// immutable and safe for concurrent use.
type Policy struct {
	allowNets  []netip.Prefix
	allowHosts map[string]bool
	denyNets   []rule
	denyHosts  map[string]bool
	self       []netip.AddrPort
	// localAddrs lists this machine's interface addresses:
	// net.InterfaceAddrs, replaced by tests that need known ones.
	localAddrs func() ([]net.Addr, error)
}

// rule is a denied network and why it is denied, for the error message.
type rule struct {
	net    netip.Prefix
	reason string
}

// defaultDeny is what every policy denies unless allowed. IPv4-mapped IPv6
// addresses are unmapped before matching, so ::ffff:127.0.0.1 is loopback.
var defaultDeny = []rule{
	{netip.MustParsePrefix("127.0.0.0/8"), "loopback"},
	{netip.MustParsePrefix("::1/128"), "loopback"},
	{netip.MustParsePrefix("169.254.0.0/16"), "link-local"},
	{netip.MustParsePrefix("fe80::/10"), "link-local"},
	// Connecting to 0.0.0.0 or :: reaches the local host on Linux.
	{netip.MustParsePrefix("0.0.0.0/8"), "unspecified"},
	{netip.MustParsePrefix("::/128"), "unspecified"},
	// The AWS instance metadata service's IPv6 address (the IPv4 one is
	// link-local).
	{netip.MustParsePrefix("fd00:ec2::254/128"), "cloud metadata"},
}

// Reasons a DeniedError gives besides those of the default networks.
const (
	ReasonSelf       = "Flowgate's own address"
	ReasonDenied     = "listed in egress.deny"
	ReasonDeniedHost = "host listed in egress.deny"
)

// DeniedError is the error of a connection the policy refused.
type DeniedError struct {
	// Host is the host name of the URL; "" when it was an IP address.
	Host string
	// Addr is the address that would have been dialled; invalid when the
	// host name itself was denied, before any lookup.
	Addr netip.AddrPort
	// Port is the port asked for, kept for the message when Addr is
	// invalid.
	Port string
	// Reason says which rule refused it: loopback, link-local, …
	Reason string
}

// Error names the address, the rule and the policy, so that a flow's
// author sees at once why the step failed.
func (e *DeniedError) Error() string {
	var target string
	switch {
	case !e.Addr.IsValid():
		target = net.JoinHostPort(e.Host, e.Port) + " (" + e.Reason + ")"
	case e.Host != "":
		target = net.JoinHostPort(e.Host, e.Port) + " (" + e.Addr.Addr().String() + ", " + e.Reason + ")"
	default:
		target = e.Addr.String() + " (" + e.Reason + ")"
	}
	return "egress denied: " + target + " is not allowed by the egress policy"
}

// Default is the policy without any configuration and without a listen
// address: the default networks denied, everything else allowed.
func Default() *Policy {
	p, _ := New(nil, nil)
	return p
}

// New builds a policy from the configuration's egress.allow and
// egress.deny entries and the addresses Flowgate listens on (an
// unspecified IP, as in ":8080", means every local interface address at
// that port). An entry that is neither a CIDR, an IP address nor a host
// name is an error naming it.
func New(allow, deny []string, self ...net.Addr) (*Policy, error) {
	p := &Policy{allowHosts: map[string]bool{}, denyHosts: map[string]bool{}, localAddrs: net.InterfaceAddrs}
	var errs []error
	for _, s := range allow {
		pfx, host, err := ParseEntry(s)
		switch {
		case err != nil:
			errs = append(errs, fmt.Errorf("egress.allow: %w", err))
		case host != "":
			p.allowHosts[host] = true
		default:
			p.allowNets = append(p.allowNets, pfx)
		}
	}
	p.denyNets = append(p.denyNets, defaultDeny...)
	for _, s := range deny {
		pfx, host, err := ParseEntry(s)
		switch {
		case err != nil:
			errs = append(errs, fmt.Errorf("egress.deny: %w", err))
		case host != "":
			p.denyHosts[host] = true
		default:
			p.denyNets = append(p.denyNets, rule{pfx, ReasonDenied})
		}
	}
	for _, a := range self {
		ap, err := netip.ParseAddrPort(a.String())
		if err != nil {
			errs = append(errs, fmt.Errorf("egress: listen address %s: %w", a, err))
			continue
		}
		p.self = append(p.self, netip.AddrPortFrom(ap.Addr().Unmap().WithZone(""), ap.Port()))
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return p, nil
}

// ParseEntry reads one egress.allow or egress.deny entry: a CIDR
// ("10.0.0.0/8"), an IP address (one address) or a host name (returned
// lower-case without a trailing dot).
func ParseEntry(s string) (netip.Prefix, string, error) {
	switch {
	case strings.Contains(s, "/"):
		pfx, err := netip.ParsePrefix(s)
		if err != nil {
			return netip.Prefix{}, "", fmt.Errorf("%q is not a CIDR: %w", s, err)
		}
		return unmapPrefix(pfx.Masked()), "", nil
	case strings.Contains(s, ":") || looksNumeric(s):
		a, err := netip.ParseAddr(s)
		if err != nil {
			return netip.Prefix{}, "", fmt.Errorf("%q is not an IP address: %w", s, err)
		}
		if a.Zone() != "" {
			return netip.Prefix{}, "", fmt.Errorf("%q: an address with a zone cannot be matched", s)
		}
		a = a.Unmap()
		return netip.PrefixFrom(a, a.BitLen()), "", nil
	}
	host := normalizeHost(s)
	if !validHostName(host) {
		return netip.Prefix{}, "", fmt.Errorf("%q is not a CIDR, an IP address or a host name", s)
	}
	return netip.Prefix{}, host, nil
}

// unmapPrefix turns an IPv4-mapped IPv6 prefix (::ffff:10.0.0.0/104) into
// its IPv4 form, since addresses are unmapped before matching.
func unmapPrefix(p netip.Prefix) netip.Prefix {
	if !p.Addr().Is4In6() || p.Bits() < 96 {
		return p
	}
	return netip.PrefixFrom(p.Addr().Unmap(), p.Bits()-96)
}

// looksNumeric reports whether s is made of digits and dots only: meant as
// an IPv4 address, never a host name (no top-level domain is numeric).
func looksNumeric(s string) bool {
	return s != "" && strings.Trim(s, "0123456789.") == ""
}

func normalizeHost(h string) string { return strings.TrimSuffix(strings.ToLower(h), ".") }

// validHostName checks the syntax of a DNS name: labels of letters, digits,
// hyphens and underscores, none empty or longer than 63, 253 in all.
func validHostName(h string) bool {
	if h == "" || len(h) > 253 {
		return false
	}
	for label := range strings.SplitSeq(h, ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for _, c := range label {
			if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
				return false
			}
		}
	}
	return true
}

// Check reports whether a connection to addr, asked for as host (the URL's
// host: a name, or "" or the address itself when the URL held an IP
// address), is allowed: nil, or a *DeniedError.
func (p *Policy) Check(host string, addr netip.AddrPort) error {
	name := hostName(host)
	if name != "" && p.allowHosts[name] {
		return nil
	}
	a := addr.Addr().Unmap().WithZone("")
	for _, pfx := range p.allowNets {
		if pfx.Contains(a) {
			return nil
		}
	}
	denied := func(reason string) error {
		return &DeniedError{Host: name, Addr: addr, Port: fmt.Sprint(addr.Port()), Reason: reason}
	}
	if name != "" && p.denyHosts[name] {
		return denied(ReasonDeniedHost)
	}
	if p.isSelf(netip.AddrPortFrom(a, addr.Port())) {
		return denied(ReasonSelf)
	}
	for _, r := range p.denyNets {
		if r.net.Contains(a) {
			return denied(r.reason)
		}
	}
	return nil
}

// hostName is host as a policy name: "" for an IP address.
func hostName(host string) string {
	if host == "" {
		return ""
	}
	if _, err := netip.ParseAddr(host); err == nil {
		return ""
	}
	return normalizeHost(host)
}

// isSelf reports whether a is an address Flowgate listens on. A listener
// on every interface is matched against the interface addresses as they
// are now (they may change while the server runs), looked up only for a
// connection to its port.
func (p *Policy) isSelf(a netip.AddrPort) bool {
	for _, s := range p.self {
		if s.Port() != a.Port() {
			continue
		}
		if !s.Addr().IsUnspecified() {
			if s.Addr() == a.Addr() {
				return true
			}
			continue
		}
		if a.Addr().IsUnspecified() || p.isLocal(a.Addr()) {
			return true
		}
	}
	return false
}

func (p *Policy) isLocal(a netip.Addr) bool {
	addrs, err := p.localAddrs()
	if err != nil {
		// Unknown interfaces: refuse rather than risk reaching ourselves.
		return true
	}
	for _, ia := range addrs {
		ipn, ok := ia.(*net.IPNet)
		if !ok {
			continue
		}
		if la, ok := netip.AddrFromSlice(ipn.IP); ok && la.Unmap() == a {
			return true
		}
	}
	return false
}

// DialContext connects like net.Dialer.DialContext, refusing what the
// policy does not allow: a denied host name before any lookup, a denied
// address (each one the name resolves to) before the connection is made.
func (p *Policy) DialContext(ctx context.Context, network, address string) (net.Conn, error) {
	host, port, err := net.SplitHostPort(address)
	if err != nil {
		return nil, err
	}
	d := &net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second}
	name := hostName(host)
	switch {
	case name != "" && p.allowHosts[name]:
		// Allowed by name: whatever it resolves to.
	case name != "" && p.denyHosts[name]:
		return nil, &net.OpError{Op: "dial", Net: network, Err: &DeniedError{Host: name, Port: port, Reason: ReasonDeniedHost}}
	default:
		d.Control = func(_, resolved string, _ syscall.RawConn) error {
			ap, err := netip.ParseAddrPort(resolved)
			if err != nil {
				return fmt.Errorf("egress: unexpected address %q: %w", resolved, err)
			}
			return p.Check(host, ap)
		}
	}
	return d.DialContext(ctx, network, address)
}

// Transport is http.DefaultTransport's configuration with every connection
// dialled through the policy. It uses no proxy: through a proxy the
// address dialled would be the proxy's and the policy could not see the
// target.
func (p *Policy) Transport() *http.Transport {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.Proxy = nil
	t.DialContext = p.DialContext
	return t
}

// Client is an HTTP client over Transport with the given overall timeout
// (none when zero).
func (p *Policy) Client(timeout time.Duration) *http.Client {
	return &http.Client{Transport: p.Transport(), Timeout: timeout}
}
