package store

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/ClickHouse/ch-go"
	"github.com/ClickHouse/ch-go/proto"
)

func TestRefused(t *testing.T) {
	f := func(err error, want bool) {
		t.Helper()
		if got := Refused(err); got != want {
			t.Errorf("Refused(%v) = %v, want %v", err, got, want)
		}
	}
	f(nil, false)
	f(fmt.Errorf("%w: down", ErrUnavailable), false)
	f(context.DeadlineExceeded, false)
	f(errors.New("chdb: insert not committed"), false)
	f(fmt.Errorf("store: insert into events: %w", engineError("Code: 27. DB::Exception: Cannot parse input. (CANNOT_PARSE_INPUT_ASSERTION_FAILED)")), true)
	f(engineError("Code: 252. DB::Exception: Too many partitions for single INSERT block (more than 100). (TOO_MANY_PARTS)"), true)
	f(engineError("Code: 252. DB::Exception: Too many parts (300). Merges are processing significantly slower than inserts. (TOO_MANY_PARTS)"), false)
	f(engineError("Code: 241. DB::Exception: Memory limit (total) exceeded. (MEMORY_LIMIT_EXCEEDED)"), false)
	f(engineError("Code: 60. DB::Exception: Table netview.events does not exist. (UNKNOWN_TABLE)"), false)
	f(&ch.Exception{Code: proto.ErrTooLargeStringSize, Message: "too large"}, true)
	f(&ch.Exception{Code: proto.ErrTimeoutExceeded, Message: "timeout"}, false)
}
