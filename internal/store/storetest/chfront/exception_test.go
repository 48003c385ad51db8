package chfront

import (
	"errors"
	"testing"

	"github.com/ClickHouse/ch-go/proto"

	"github.com/netview/netview/internal/store"
)

func TestExceptionOfError(t *testing.T) {
	f := func(err error, code proto.Error, msg string) {
		t.Helper()
		e := exception(err)
		if e.Code != code || e.Name != "DB::Exception" || e.Message != msg {
			t.Errorf("exception(%v) = %+v; want code %d, message %q", err, e, code, msg)
		}
	}
	f(&store.EngineError{Message: "Code: 60. DB::Exception: Unknown table expression identifier 'x' in scope SELECT * FROM x. (UNKNOWN_TABLE)"},
		proto.ErrUnknownTable, "DB::Exception: Unknown table expression identifier 'x' in scope SELECT * FROM x")
	f(&store.EngineError{Message: "Code: 395. DB::Exception: boom: while executing 'f'. (FUNCTION_THROW_IF_VALUE_IS_NON_ZERO) (version 26.7.2.1)"},
		proto.ErrFunctionThrowIfValueIsNonZero, "DB::Exception: boom: while executing 'f'")
	f(&store.EngineError{Message: "Code: 62. DB::Exception: Syntax error: failed at position 1 (line 1, col 1): SELEKT. (SYNTAX_ERROR)"},
		proto.ErrSyntaxError, "DB::Exception: Syntax error: failed at position 1 (line 1, col 1): SELEKT")
	f(&store.EngineError{Message: "something odd"}, proto.ErrUnknownException, "DB::Exception: something odd")
	f(errorf(proto.ErrNotImplemented, "no %s", "way"), proto.ErrNotImplemented, "DB::Exception: no way")
	f(errors.New("plain"), proto.ErrUnknownException, "DB::Exception: plain")
}
