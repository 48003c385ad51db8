// Package program is what every Netview command shares around its own
// work: flags from the command line, a config file and the environment;
// a logger; a context that SIGINT and SIGTERM end; exit codes; and serving
// HTTP until that context ends. The mains under cmd/ hold only what is
// theirs.
package program

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"syscall"

	"github.com/valyala/fasthttp"

	"github.com/netview/netview/internal/config"
)

// Flags registers the flags of each part of a program, in order: one
// register for Main.
func Flags(register ...func(*flag.FlagSet)) func(*flag.FlagSet) {
	return func(fs *flag.FlagSet) {
		for _, r := range register {
			r(fs)
		}
	}
}

// Main parses the flags register adds, then runs run until it returns or
// a signal ends its context; a second signal then quits at once (what was
// acknowledged is already on disk, in storage or a sensor's spool). It
// exits 2 on bad flags and 1 when run fails.
func Main(name, about string, register func(*flag.FlagSet), run func(ctx context.Context, log *slog.Logger) error) {
	os.Exit(main(name, about, os.Args[1:], os.Stderr, register, run))
}

func main(name, about string, args []string, stderr io.Writer, register func(*flag.FlagSet), run func(ctx context.Context, log *slog.Logger) error) int {
	// ExitOnError, as flag.CommandLine: -h exits 0 and a bad flag 2, each
	// after the flag package has said why.
	fs := flag.NewFlagSet(name, flag.ExitOnError)
	fs.SetOutput(stderr)
	register(fs)
	if err := config.Parse(fs, args, about); err != nil {
		fmt.Fprintf(stderr, "%s: %v\n", name, err)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	context.AfterFunc(ctx, stop) // the signals' default again: the next one quits
	if err := run(ctx, slog.New(slog.NewTextHandler(stderr, nil))); err != nil {
		fmt.Fprintf(stderr, "%s: %v\n", name, err)
		return 1
	}
	return 0
}

// Serve serves hs on ln until ctx ends (nil: the caller shuts hs down, in
// its own way) or hs stops on its own (its error).
func Serve(ctx context.Context, hs *fasthttp.Server, ln net.Listener) error {
	served := make(chan error, 1)
	go func() { served <- hs.Serve(ln) }()
	select {
	case <-ctx.Done():
		return nil
	case err := <-served:
		if err == nil {
			err = fmt.Errorf("server on %s stopped", ln.Addr())
		}
		return err
	}
}
