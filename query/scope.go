package query

import (
	"strconv"
	"strings"

	"github.com/google/uuid"

	"github.com/netview/netview/internal/store"
)

// scope narrows a list to some containers, pods and network namespaces,
// and by the hunting filters (addresses, ports, states, processes, DNS
// names; see filter.go). A filter given again widens it (OR); different
// filters narrow it (AND).
type scope struct {
	containers, pods []string
	netns            []uint64
	// hunt are the hunting filters, in the order of huntParams.
	hunt []huntFilter
}

// scopeParams are the query parameters a scope reads; each may repeat.
var scopeParams = append([]string{"container", "pod", "netns"}, huntParams...)

// maxScopeValues bounds the values of one filter, and maxScopeValue the
// length of one: a filter list is for a person's question, not a dump.
const (
	maxScopeValues = 32
	maxScopeValue  = 255
)

// scope reads container=, pod= and netns=. Every list and the events hold
// their network namespace (flows and events since schema version 9; their
// older rows, and those of sensors that do not report it, hold 0, which no
// filter names).
func (p *params) scope(t *target) scope {
	var s scope
	for _, name := range scopeParams {
		vals := p.args.PeekMulti(name)
		if p.err != nil || len(vals) == 0 {
			continue
		}
		if len(vals) > maxScopeValues {
			p.err = badParam(name, "given %d times, at most %d", len(vals), maxScopeValues)
			return s
		}
		for _, raw := range vals {
			v := string(raw)
			if v == "" || len(v) > maxScopeValue {
				p.err = badParam(name, "%q must be 1 to %d bytes", v, maxScopeValue)
				return s
			}
			switch name {
			default:
				if !s.addHunt(t, name, v, p) {
					return s
				}
			case "container":
				s.containers = append(s.containers, v)
			case "pod":
				s.pods = append(s.pods, v)
			case "netns":
				n, err := strconv.ParseUint(v, 10, 64)
				if err != nil || n == 0 {
					p.err = badParam(name, "%q is not a namespace inode (a positive decimal number)", v)
					return s
				}
				s.netns = append(s.netns, n)
			}
		}
	}
	return s
}

// key is the scope as a cursor binds it: a cursor of one scope is refused
// with another.
func (s scope) key() string {
	ns := make([]string, len(s.netns))
	for i, n := range s.netns {
		ns[i] = strconv.FormatUint(n, 10)
	}
	return " container=" + strings.Join(s.containers, "\x00") + " pod=" + strings.Join(s.pods, "\x00") + " netns=" + strings.Join(ns, ",") +
		s.huntKey()
}

// where returns the scope's condition, " AND ..." or "", with its values
// bound as parameters (never spliced into the text). Columns are named as
// table.column: a view's SELECT has aggregates of the same names
// (argMax(container_id, seq) AS container_id), which the engine would
// otherwise take in WHERE.
//
// A container is named by its id, a prefix of it of at least 12 hex digits
// (as docker ps shows it), or its name. A pod is named by its name, by
// namespace/name, or by its UID.
func (s scope) where(table string, params *[]store.Param) string {
	c := func(col string) string { return table + "." + col }
	var w strings.Builder
	bind := func(prefix string, i int, v, typ string) string {
		name := prefix + strconv.Itoa(i)
		*params = append(*params, store.P(name, v))
		return "{" + name + ":" + typ + "}"
	}
	oneOf := func(n int, cond func(i int) string) {
		if n == 0 {
			return
		}
		conds := make([]string, n)
		for i := range n {
			conds[i] = "(" + cond(i) + ")"
		}
		w.WriteString(" AND (" + strings.Join(conds, " OR ") + ")")
	}
	oneOf(len(s.containers), func(i int) string {
		v := s.containers[i]
		ph := bind("sc", i, v, "String")
		if len(v) >= 12 && strings.Trim(v, "0123456789abcdef") == "" {
			return "startsWith(" + c("container_id") + ", " + ph + ") OR " + c("container_name") + " = " + ph
		}
		return c("container_id") + " = " + ph + " OR " + c("container_name") + " = " + ph
	})
	oneOf(len(s.pods), func(i int) string {
		v := s.pods[i]
		if u, err := uuid.Parse(v); err == nil {
			return c("pod_uid") + " = " + bind("sp", i, u.String(), "String")
		}
		if ns, name, ok := strings.Cut(v, "/"); ok {
			return c("pod_namespace") + " = " + bind("spn", i, ns, "String") + " AND " + c("pod") + " = " + bind("sp", i, name, "String")
		}
		return c("pod") + " = " + bind("sp", i, v, "String")
	})
	oneOf(len(s.netns), func(i int) string {
		return c("netns") + " = " + bind("sn", i, strconv.FormatUint(s.netns[i], 10), "UInt64")
	})
	s.huntWhere(table, &w, params)
	return w.String()
}

// empty says whether the scope narrows nothing.
func (s scope) empty() bool { return len(s.containers)+len(s.pods)+len(s.netns)+len(s.hunt) == 0 }
