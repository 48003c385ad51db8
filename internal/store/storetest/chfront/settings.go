package chfront

import (
	"slices"
	"strings"

	"github.com/ClickHouse/ch-go/compress"
	"github.com/ClickHouse/ch-go/proto"

	"github.com/netview/netview/internal/store"
)

// applySettings makes the session's settings those the query carries, as
// a server applies them to that one query: the session keeps them until a
// query carries other values or none, when they are reset to their
// defaults. readonly goes last, since it forbids changing the others; a
// session left readonly is replaced by a fresh one.
func (c *conn) applySettings(ss []proto.Setting) error {
	want := make(map[string]proto.Setting, len(ss))
	for _, s := range ss {
		want[s.Key] = s
	}
	if _, ok := c.applied["readonly"]; ok && !sameSettings(c.applied, want) {
		// readonly forbids changing any setting, itself included: start
		// over on a fresh session.
		if err := c.reopen(); err != nil {
			return err
		}
	}
	for _, k := range sortedKeys(c.applied) {
		if _, ok := want[k]; !ok {
			if err := c.exec("SET "+k+" = DEFAULT", nil); err != nil {
				return err
			}
			delete(c.applied, k)
		}
	}
	for _, k := range sortedKeys(want) {
		s := want[k]
		if v, ok := c.applied[k]; ok && v == s.Value {
			continue
		}
		if !validSetting(k) {
			if s.Important {
				return errorf(proto.ErrUnknownSetting, "Unknown setting '%s'", k)
			}
			continue
		}
		value := store.Quote(s.Value)
		if s.Custom {
			value = s.Value // a custom setting's value is a literal already
		}
		if err := c.exec("SET "+k+" = "+value, nil); err != nil {
			if !s.Important && exception(err).Code == proto.ErrUnknownSetting {
				continue // a server ignores unknown settings the client marks unimportant
			}
			return err
		}
		c.applied[k] = s.Value
	}
	return nil
}

func sameSettings(applied map[string]string, want map[string]proto.Setting) bool {
	if len(applied) != len(want) {
		return false
	}
	for k, s := range want {
		if v, ok := applied[k]; !ok || v != s.Value {
			return false
		}
	}
	return true
}

// reopen replaces the session by a fresh one on the same current database,
// with no settings changed.
func (c *conn) reopen() error {
	var col proto.ColStr
	db := ""
	err := c.sess.Select(c.srv.ctx, store.Query{SQL: "SELECT currentDatabase() AS db"}, proto.Results{{Name: "db", Data: &col}},
		func(int) error { db = col.Row(0); return nil })
	if err != nil {
		return err
	}
	sess, err := c.srv.openSession()
	if err != nil {
		return errorf(proto.ErrUnknownException, "%v", err)
	}
	c.sess.Close()
	c.sess, c.applied = sess, map[string]string{}
	return c.exec("USE "+quoteIdent(db), nil)
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b string) int {
		if (a == "readonly") != (b == "readonly") {
			if a == "readonly" {
				return 1
			}
			return -1
		}
		return strings.Compare(a, b)
	})
	return keys
}

func validSetting(name string) bool {
	if name == "" {
		return false
	}
	for _, c := range name {
		if c != '_' && (c < 'a' || c > 'z') && (c < 'A' || c > 'Z') && (c < '0' || c > '9') {
			return false
		}
	}
	return true
}

// compressionMethod is the codec of the blocks the server sends: the
// network_compression_method setting, LZ4 by default, as on a server.
func compressionMethod(ss []proto.Setting) (compress.Method, error) {
	v := "lz4"
	for _, s := range ss {
		if s.Key == "network_compression_method" {
			v = strings.ToLower(s.Value)
		}
	}
	switch v {
	case "lz4":
		return compress.LZ4, nil
	case "lz4hc":
		return compress.LZ4HC, nil
	case "zstd":
		return compress.ZSTD, nil
	case "none":
		return compress.None, nil
	}
	return 0, errorf(proto.ErrUnknownCodec, "Unknown codec family: %s", v)
}
