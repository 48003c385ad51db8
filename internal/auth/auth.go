// Package auth checks bearer tokens in constant time. Ingest uses it for
// sensor tokens and the query service for API tokens.
package auth

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"flag"
	"fmt"
	"os"
	"slices"
	"strings"
)

// Tokens is a set of accepted bearer tokens, kept as SHA-256 digests so a
// comparison takes the same time whatever the token's length.
type Tokens struct{ sums [][32]byte }

// NewTokens returns the set of the given tokens; empty strings are ignored.
func NewTokens(tokens ...string) *Tokens {
	t := &Tokens{}
	for _, s := range tokens {
		if s = strings.TrimSpace(s); s != "" {
			t.sums = append(t.sums, sha256.Sum256([]byte(s)))
		}
	}
	return t
}

// Fingerprint is a digest of the whole set, the same for equal sets in any
// order: services that share tokens can derive a shared secret from it.
func (t *Tokens) Fingerprint() []byte {
	sums := append([][32]byte(nil), t.sums...)
	slices.SortFunc(sums, func(a, b [32]byte) int { return bytes.Compare(a[:], b[:]) })
	h := sha256.New()
	for _, s := range sums {
		h.Write(s[:])
	}
	return h.Sum(nil)
}

// Len counts the tokens.
func (t *Tokens) Len() int { return len(t.sums) }

// Check reports whether an Authorization header value carries a known
// bearer token. It compares against every token, so the time taken does
// not tell which one matched or how much of it.
func (t *Tokens) Check(header []byte) bool {
	tok, ok := bytes.CutPrefix(header, []byte("Bearer "))
	if !ok || len(tok) == 0 {
		return false
	}
	sum := sha256.Sum256(tok)
	match := 0
	for i := range t.sums {
		match |= subtle.ConstantTimeCompare(sum[:], t.sums[i][:])
	}
	return match == 1
}

// TokenFlags are the flags and variables a program takes its tokens from.
type TokenFlags struct {
	List string // comma-separated, from the flag
	File string // one token a line; # starts a comment
	env  string
	name string
}

// Register adds PREFIX.token and PREFIX.token-file flags; env names the
// environment variable that may hold more (comma-separated).
func (f *TokenFlags) Register(fs *flag.FlagSet, prefix, env, what string) {
	f.env, f.name = env, prefix
	fs.StringVar(&f.List, prefix+".token", "", what+"s, comma-separated (also $"+env+")")
	fs.StringVar(&f.File, prefix+".token-file", "", "file with one "+what+" a line")
}

// Load gathers the tokens from the flag, the environment and the file. It
// refuses to run with none: an open endpoint is never the default.
func (f *TokenFlags) Load() (*Tokens, error) {
	list := strings.Split(f.List, ",")
	if f.env != "" {
		list = append(list, strings.Split(os.Getenv(f.env), ",")...)
	}
	if f.File != "" {
		b, err := os.ReadFile(f.File)
		if err != nil {
			return nil, fmt.Errorf("%s token file: %w", f.name, err)
		}
		sc := bufio.NewScanner(bytes.NewReader(b))
		for sc.Scan() {
			line, _, _ := strings.Cut(sc.Text(), "#")
			list = append(list, line)
		}
	}
	t := NewTokens(list...)
	if t.Len() == 0 {
		return nil, errors.New(f.name + ": no token configured: set --" + f.name + ".token, --" + f.name + ".token-file or $" + f.env)
	}
	return t, nil
}
