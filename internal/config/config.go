// Package config sets a program's flags from, in rising precedence, their
// defaults, an optional file of "name = value" lines (--config), NETVIEW_*
// environment variables, and the command line. One flag set is the only
// schema, so every source knows exactly the flags the program has.
//
// Why not github.com/peterbourgon/ff (v3.4.0, read for issue #15): it names
// and orders the sources the same way (NETVIEW_STORE_DSN; command line over
// environment over file; an empty variable is unset), but its file format is
// "name value", so this package's "name = value" lines, quoting, repeated
// names and file:line messages would stay as a parser of ours handed to it;
// and it has no way to leave $NETVIEW_INGEST_TOKEN to the auth package
// (ownEnv), so taking it would change behaviour. What it would replace is
// the 40 lines of the environment pass.
package config

import (
	"bufio"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
)

// FlagName is the flag that names the configuration file.
const FlagName = "config"

// ownEnv are variables that packages read themselves with a meaning of their
// own: auth adds $NETVIEW_INGEST_TOKEN to the --ingest.token list, so letting
// it also replace the flag would drop the file's tokens when it is set.
var ownEnv = map[string]bool{"NETVIEW_INGEST_TOKEN": true}

// EnvName is the environment variable of a flag: NETVIEW_ and the name
// upper-cased with . and - as _ (store.dsn is NETVIEW_STORE_DSN).
func EnvName(flagName string) string {
	return "NETVIEW_" + strings.ToUpper(strings.NewReplacer(".", "_", "-", "_").Replace(flagName))
}

// Parse registers --config on fs (if missing), parses args, then sets every
// flag the command line left alone from the environment or else the file.
// about is the first paragraph of --help. Stray arguments are an error:
// every setting is a flag.
func Parse(fs *flag.FlagSet, args []string, about string) error {
	return parse(fs, args, about, os.LookupEnv)
}

func parse(fs *flag.FlagSet, args []string, about string, lookup func(string) (string, bool)) error {
	if fs.Lookup(FlagName) == nil {
		fs.String(FlagName, "", "`file` of name = value lines, one flag a line (also $"+EnvName(FlagName)+")")
	}
	fs.Usage = func() { usage(fs, about) }
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q: settings are flags (see -h)", fs.Arg(0))
	}
	onCmdLine := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { onCmdLine[f.Name] = true })

	type setting struct{ value, source string }
	chosen := map[string]setting{}
	file := fs.Lookup(FlagName).Value.String()
	if !onCmdLine[FlagName] {
		if v, ok := lookup(EnvName(FlagName)); ok && v != "" {
			file = v
		}
	}
	if file != "" {
		lines, err := readFile(fs, file)
		if err != nil {
			return err
		}
		for _, l := range lines {
			chosen[l.name] = setting{l.value, fmt.Sprintf("%s:%d", file, l.n)}
		}
	}
	fs.VisitAll(func(f *flag.Flag) {
		env := EnvName(f.Name)
		if f.Name == FlagName || ownEnv[env] {
			return
		}
		// An empty variable counts as unset, as the packages' own do.
		if v, ok := lookup(env); ok && v != "" {
			chosen[f.Name] = setting{v, "$" + env}
		}
	})
	names := make([]string, 0, len(chosen))
	for name := range chosen {
		if !onCmdLine[name] {
			names = append(names, name)
		}
	}
	sort.Strings(names)
	for _, name := range names {
		s := chosen[name]
		if err := fs.Set(name, s.value); err != nil {
			return fmt.Errorf("%s: invalid value %q for %s: %v", s.source, s.value, name, err)
		}
	}
	return nil
}

type line struct {
	n           int
	name, value string
}

// readFile reads name = value lines. Blank lines and lines starting with #
// are skipped; a # after a space ends the value, unless it is quoted ("...",
// Go syntax) so a value may hold anything.
func readFile(fs *flag.FlagSet, path string) ([]line, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("config file: %w", err)
	}
	defer f.Close()
	var out []line
	first := map[string]int{}
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		text := strings.TrimSpace(sc.Text())
		if text == "" || text[0] == '#' {
			continue
		}
		at := fmt.Sprintf("%s:%d", path, n)
		name, value, ok := strings.Cut(text, "=")
		if !ok {
			return nil, fmt.Errorf("%s: want name = value, got %q", at, text)
		}
		name = strings.TrimLeft(strings.TrimSpace(name), "-")
		if value, err = parseValue(strings.TrimSpace(value)); err != nil {
			return nil, fmt.Errorf("%s: %s: %v", at, name, err)
		}
		switch {
		case name == "":
			return nil, fmt.Errorf("%s: no name before =", at)
		case name == FlagName:
			return nil, fmt.Errorf("%s: %s cannot be set in a config file", at, FlagName)
		case fs.Lookup(name) == nil:
			return nil, fmt.Errorf("%s: unknown name %q (names are the flags of -h, without dashes)", at, name)
		case first[name] != 0:
			return nil, fmt.Errorf("%s: %s set again (first on line %d)", at, name, first[name])
		}
		first[name] = n
		out = append(out, line{n, name, value})
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("config file %s: %w", path, err)
	}
	return out, nil
}

func parseValue(v string) (string, error) {
	if strings.HasPrefix(v, `"`) {
		q, err := strconv.QuotedPrefix(v)
		if err != nil {
			return "", errors.New("unterminated or bad quoted value")
		}
		if rest := strings.TrimSpace(v[len(q):]); rest != "" && rest[0] != '#' {
			return "", fmt.Errorf("text after the quoted value: %q", rest)
		}
		return strconv.Unquote(q)
	}
	for i := 1; i < len(v); i++ {
		if v[i] == '#' && (v[i-1] == ' ' || v[i-1] == '\t') {
			return strings.TrimSpace(v[:i]), nil
		}
	}
	return v, nil
}

func usage(fs *flag.FlagSet, about string) {
	w := fs.Output()
	if about != "" {
		fmt.Fprintln(w, strings.TrimSpace(about))
		fmt.Fprintln(w)
	}
	fmt.Fprintf(w, "Usage: %s [flags]\n\n", filepath.Base(fs.Name()))
	fs.PrintDefaults()
	printSources(w, fs)
}

func printSources(w io.Writer, fs *flag.FlagSet) {
	example := ""
	fs.VisitAll(func(f *flag.Flag) {
		if example == "" && f.Name != FlagName {
			example = f.Name
		}
	})
	fmt.Fprintf(w, `
Every flag can also be set
  - in the environment, as NETVIEW_ and its name upper-cased with . and - as _
    (--%s is $%s; an empty variable counts as unset);
  - in the file of --config (or $%s): one "name = value" a line, the name
    without dashes; # starts a comment at the beginning of a line or after a
    space; "..." quotes a value (Go syntax). An unknown name is an error.
The command line wins over the environment, which wins over the file.
`, example, EnvName(example), EnvName(FlagName))
}
