package query

import (
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"unicode"

	"github.com/netview/netview/heartbeat"
	"github.com/netview/netview/internal/store"
	"github.com/netview/netview/internal/tcpstate"
)

// The hunting filters narrow the lists and the events by what a row says
// about its traffic and its process. They are part of the scope: read with
// container=, pod= and netns=, bound the same way (values only as
// parameters), carried by cursors the same way.
var huntParams = []string{"addr", "local_addr", "remote_addr", "src_addr", "dst_addr", "port", "protocol", "state",
	"direction", "binary", "binary_path", "pid", "uid", "dns", "answer", "host", "q"}

// target is what a table's rows hold that the filters can ask about. A
// filter for something a table does not hold is refused, not ignored: an
// ignored filter would answer a question nobody asked.
type target struct {
	name string
	// ends are the row's two ends: the prefix of their filter (local_,
	// src_) and their address and port columns. A listener has one end;
	// the second is then zero.
	ends                     [2]end
	protocol, direction, dns bool
	// states are the values state= may name; nil when the rows have no
	// state.
	states []string
}

type end struct{ prefix, addr, port string }

var (
	socketEnds = [2]end{{"local", "local_address", "local_port"}, {"remote", "remote_address", "remote_port"}}
	flowEnds   = [2]end{{"src", "src_address", "src_port"}, {"dst", "dst_address", "dst_port"}}
	// targets are by table, the name scope.where knows its table by.
	targets = map[string]*target{
		"tcp_connections": {name: "connections", ends: socketEnds, states: tcpstate.Names()},
		"tcp_listeners":   {name: "listening", ends: [2]end{socketEnds[0]}},
		"udp_listeners":   {name: "udp", ends: socketEnds},
		"active_flows":    {name: "flows", ends: flowEnds, protocol: true, direction: true, states: tcpstate.Names()},
		// An event's state is a completed flow's final state (network_flow
		// events); the other kinds have none.
		"events": {name: "events", ends: flowEnds, protocol: true, dns: true, states: heartbeat.FinalStates},
		// A graph sighting (graph.go) is oriented like a flow (src is the
		// client), with a direction (inbound: the server's sighting) and a
		// state: a final state, or the TCP state of a connection still open.
		"graph": {name: "graph", ends: flowEnds, protocol: true, direction: true,
			states: append(append([]string{}, heartbeat.FinalStates...), tcpstate.Names()...)},
	}
	protocols = []string{"tcp", "udp", "sctp"}
	dnsKinds  = []string{"dns_query", "dns_lookup", "dns_resolution"}
)

// huntFilter is one filter's values, ORed.
type huntFilter struct {
	param string
	// end is which end an address filter reads: 0 or 1, or -1 for either.
	end  int
	vals []huntValue
}

type huntValue struct {
	raw    string     // as given, for the cursor's key
	lo, hi netip.Addr // an address range (IPv4 as v4-mapped IPv6); lo alone for answer=
	s      string     // a string to compare with
	prefix bool       // s is a prefix (binary*), or a suffix (dns=*.x)
	not    bool       // state=!X
}

// addHunt reads value v of hunting filter name into s, for rows of t. It
// reports false, with p.err set, when the value is bad or the filter does
// not apply to t.
func (s *scope) addHunt(t *target, name, v string, p *params) bool {
	notFor := func(what string) bool {
		p.err = badParam(name, "does not apply to %s: its rows have no %s", t.name, what)
		return false
	}
	bad := func(format string, args ...any) bool {
		p.err = badParam(name, format, args...)
		return false
	}
	val, which := huntValue{raw: v}, -1
	switch name {
	case "addr", "local_addr", "remote_addr", "src_addr", "dst_addr":
		if pre, ok := strings.CutSuffix(name, "_addr"); ok {
			which = slices.IndexFunc(t.ends[:], func(e end) bool { return e.prefix == pre && e.prefix != "" })
			if which < 0 {
				return notFor(pre + " address")
			}
		}
		lo, hi, ok := addrRange(v)
		if !ok {
			return bad("%q is not an IP address or CIDR prefix (e.g. 203.0.113.7, 10.0.0.0/8, 2001:db8::/32)", v)
		}
		val.lo, val.hi = lo, hi
	case "port":
		n, err := strconv.ParseUint(v, 10, 16)
		if err != nil || n == 0 {
			return bad("%q is not a port (1 to 65535)", v)
		}
		val.s = strconv.FormatUint(n, 10)
	case "protocol":
		if !t.protocol {
			return notFor("protocol column (each of its rows is of one protocol)")
		}
		if !slices.Contains(protocols, v) {
			return bad("%q is not one of %s", v, strings.Join(protocols, ", "))
		}
		val.s = v
	case "state":
		if t.states == nil {
			return notFor("state")
		}
		val.s, val.not = strings.CutPrefix(v, "!")
		if !slices.Contains(t.states, val.s) {
			return bad("%q is not a state of %s; one of %s, or !<state> to leave it out", v, t.name, strings.Join(t.states, ", "))
		}
	case "direction":
		if !t.direction {
			return notFor("direction")
		}
		if !slices.Contains(heartbeat.Directions, v) {
			return bad("%q is not one of %s", v, strings.Join(heartbeat.Directions, ", "))
		}
		val.s = v
	case "binary", "binary_path":
		val.s, val.prefix = strings.CutSuffix(v, "*")
		if val.s == "" {
			return bad("%q: a prefix needs at least one character before the *", v)
		}
	case "pid", "uid":
		n, err := strconv.ParseUint(v, 10, 32)
		if err != nil || (name == "pid" && n == 0) {
			return bad("%q is not a %s (a decimal number from %d to 4294967295)", v, name, map[bool]int{true: 1, false: 0}[name == "pid"])
		}
		val.s = strconv.FormatUint(n, 10)
	case "dns":
		if !t.dns {
			return notFor("DNS query name")
		}
		// Names are compared as the DNS does, without regard to case.
		name := strings.ToLower(v)
		if rest, ok := strings.CutPrefix(name, "*."); ok {
			name, val.prefix = "."+rest, true
		}
		if strings.Trim(name, "abcdefghijklmnopqrstuvwxyz0123456789-_.") != "" || strings.Trim(name, ".") == "" {
			return bad("%q is not a DNS name, or *.<name> for the names under it", v)
		}
		val.s = name
	case "answer":
		if !t.dns {
			return notFor("DNS answers")
		}
		a, err := netip.ParseAddr(v)
		if err != nil || a.Zone() != "" {
			return bad("%q is not an IP address", v)
		}
		val.lo = netip.AddrFrom16(a.As16())
	case "host":
		// Host names are ASCII and compared without regard to case, as the
		// DNS does.
		val.s, val.prefix = strings.CutSuffix(strings.ToLower(v), "*")
		if val.s == "" || strings.Trim(val.s, "abcdefghijklmnopqrstuvwxyz0123456789-_.") != "" {
			return bad("%q is not a host name, or a prefix of one ending in * (e.g. web-1, web-*)", v)
		}
	case "q":
		// A word of the Console's search box: see searchWhere.
		if strings.ContainsFunc(v, func(r rune) bool { return unicode.IsSpace(r) || unicode.IsControl(r) || r == '*' }) {
			return bad("%q is not one word: q finds a binary, a host or a DNS name by one whole word, without spaces or * (for a prefix use binary=, host= or dns=)", v)
		}
		val.s = strings.ToLower(v)
	default:
		// Only a name of huntParams reaches here.
		panic("query: no hunting filter " + name)
	}
	i := slices.IndexFunc(s.hunt, func(f huntFilter) bool { return f.param == name })
	if i < 0 {
		s.hunt = append(s.hunt, huntFilter{param: name, end: which})
		i = len(s.hunt) - 1
	}
	s.hunt[i].vals = append(s.hunt[i].vals, val)
	return true
}

// sensorsWhoseHost starts the sensors whose hostname (lower case, as host=
// and q= compare it) is what the condition after it says: the current
// hostname, the one the rows show. The sensors table keeps one row a
// sensor (replaced by seq), but until the engine merges it may still hold
// an older one, with the name the sensor had before.
const sensorsWhoseHost = "(SELECT sensor_id FROM (SELECT sensor_id, lower(argMax(hostname, seq)) AS host FROM sensors GROUP BY sensor_id) WHERE "

// searchWhere is the condition of q=word (word in lower case): what a
// bare word typed in the Console's search box means. A row matches when,
// without regard to case,
//   - its binary is the word (q=curl), or
//   - its sensor's hostname is the word, or starts with the word and a dot
//     (q=web-1 finds web-1 and web-1.prod.example, not web-10), or
//   - on the events, it is a DNS event (dns_query, dns_lookup,
//     dns_resolution) whose query name is the word or ends with a dot and
//     the word (q=evil.example finds evil.example and api.evil.example,
//     not notevil.example).
//
// Addresses and ports are not words: the search box sends those as addr=
// and port=.
func searchWhere(t *target, c func(string) string, word string, bind func(v, typ string) string) string {
	w := bind(word, "String")
	cond := "lower(" + c("binary") + ") = " + w +
		" OR " + c("sensor_id") + " IN " + sensorsWhoseHost + "host = " + w + " OR startsWith(host, " + bind(word+".", "String") + "))"
	if t.dns {
		name := "lower(" + c("query_name") + ")"
		cond += " OR (" + c("kind") + " IN " + bind("['"+strings.Join(dnsKinds, "','")+"']", "Array(String)") +
			" AND (" + name + " = " + w + " OR endsWith(" + name + ", " + bind("."+word, "String") + ")))"
	}
	return cond
}

// addrRange reads an address or a CIDR prefix as the range of IPv6 values
// it covers: IPv4 is stored v4-mapped (::ffff:a.b.c.d), so 10.0.0.0/8 is
// ::ffff:10.0.0.0/104. The range is compared with the column as IPv6
// values, which the engine orders as addresses.
func addrRange(v string) (lo, hi netip.Addr, ok bool) {
	var pfx netip.Prefix
	if a, err := netip.ParseAddr(v); err == nil {
		if a.Zone() != "" {
			return lo, hi, false
		}
		pfx = netip.PrefixFrom(a, a.BitLen())
	} else if pfx, err = netip.ParsePrefix(v); err != nil {
		return lo, hi, false
	}
	bits := pfx.Bits()
	if pfx.Addr().Is4() {
		bits += 96
	}
	b := netip.AddrFrom16(pfx.Addr().As16()).As16()
	for i := range 128 {
		if i >= bits {
			b[i/8] &^= 0x80 >> (i % 8)
		}
	}
	lo = netip.AddrFrom16(b)
	for i := bits; i < 128; i++ {
		b[i/8] |= 0x80 >> (i % 8)
	}
	return lo, netip.AddrFrom16(b), true
}

// huntKey is the hunting filters as a cursor binds them; "" when there
// are none, so cursors without them read as they did before them.
func (s scope) huntKey() string {
	var b strings.Builder
	for _, f := range s.hunt {
		b.WriteString(" " + f.param + "=")
		for i, v := range f.vals {
			if i > 0 {
				b.WriteByte(',')
			}
			b.WriteString(strconv.Quote(v.raw))
		}
	}
	return b.String()
}

// forFlows is the scope of a connections page as the flows beside it take
// it: a flow has no local or remote end but a source and a destination,
// so local_addr and remote_addr narrow them as addr does, by either end.
func (s scope) forFlows() scope {
	out := s
	out.hunt = slices.Clone(s.hunt)
	for i, f := range out.hunt {
		if f.param == "local_addr" || f.param == "remote_addr" {
			out.hunt[i].end = -1
		}
	}
	return out
}

// huntWhere appends the hunting filters' conditions to w, " AND (...)"
// each, with every value a parameter.
func (s scope) huntWhere(table string, w *strings.Builder, params *[]store.Param) {
	t := targets[table]
	c := func(col string) string { return table + "." + col }
	bind := func(v, typ string) string {
		name := "h" + strconv.Itoa(len(*params))
		*params = append(*params, store.P(name, v))
		return "{" + name + ":" + typ + "}"
	}
	ends := func(which int) []end {
		if which >= 0 {
			return t.ends[which : which+1]
		}
		if t.ends[1].prefix == "" {
			return t.ends[:1]
		}
		return t.ends[:]
	}
	for _, f := range s.hunt {
		var anyOf, all []string // ORed values; ANDed exclusions (state=!X)
		for _, v := range f.vals {
			var cond string
			switch f.param {
			case "addr", "local_addr", "remote_addr", "src_addr", "dst_addr":
				var conds, cols []string
				for _, e := range ends(f.end) {
					cols = append(cols, c(e.addr))
					if v.lo != v.hi {
						conds = append(conds, c(e.addr)+" BETWEEN "+bind(v.lo.String(), "IPv6")+" AND "+bind(v.hi.String(), "IPv6"))
					}
				}
				if v.lo == v.hi {
					// One address, on either end, as has([ends], x): the form
					// migration 0010's bloom filter over both ends skips
					// granules on; an OR of the ends is read in full.
					cond = "has([" + strings.Join(cols, ", ") + "], " + bind(v.lo.String(), "IPv6") + ")"
				} else {
					cond = strings.Join(conds, " OR ")
				}
			case "port":
				var cols []string
				for _, e := range ends(-1) {
					cols = append(cols, c(e.port))
				}
				cond = "has([" + strings.Join(cols, ", ") + "], " + bind(v.s, "UInt16") + ")" // as addresses: 0010's index
			case "state":
				if v.not {
					all = append(all, c("state")+" != "+bind(v.s, "String"))
					continue
				}
				cond = c("state") + " = " + bind(v.s, "String")
			case "protocol", "direction":
				cond = c(f.param) + " = " + bind(v.s, "String")
			case "binary", "binary_path":
				if v.prefix {
					cond = "startsWith(" + c(f.param) + ", " + bind(v.s, "String") + ")"
				} else {
					cond = c(f.param) + " = " + bind(v.s, "String")
				}
			case "pid", "uid":
				cond = c(f.param) + " = " + bind(v.s, "UInt32")
			case "dns":
				// lower(query_name) is the expression migration 0011's ngram
				// index is built on: the engine skips granules on it only when
				// the condition names it as it is written there.
				name := "lower(" + c("query_name") + ")"
				if v.prefix {
					cond = "endsWith(" + name + ", " + bind(v.s, "String") + ")"
				} else {
					cond = name + " = " + bind(v.s, "String")
				}
				cond = c("kind") + " IN " + bind("['"+strings.Join(dnsKinds, "','")+"']", "Array(String)") + " AND " + cond
			case "answer":
				cond = "has(" + c("answers") + ", " + bind(v.lo.String(), "IPv6") + ")"
			case "host":
				if v.prefix {
					cond = c("sensor_id") + " IN " + sensorsWhoseHost + "startsWith(host, " + bind(v.s, "String") + "))"
				} else {
					cond = c("sensor_id") + " IN " + sensorsWhoseHost + "host = " + bind(v.s, "String") + ")"
				}
			case "q":
				cond = searchWhere(t, c, v.s, bind)
			}
			anyOf = append(anyOf, "("+cond+")")
		}
		if len(anyOf) > 0 {
			all = append([]string{"(" + strings.Join(anyOf, " OR ") + ")"}, all...)
		}
		w.WriteString(" AND (" + strings.Join(all, " AND ") + ")")
	}
}
