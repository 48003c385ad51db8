package chfront

import (
	"errors"
	"fmt"
	"regexp"
	"strconv"

	"github.com/ClickHouse/ch-go/proto"

	"github.com/netview/netview/internal/store"
)

// exceptionName is what a ClickHouse server sends as the name of every
// exception it raises itself; the message repeats it ("DB::Exception: ...").
const exceptionName = "DB::Exception"

// frontError is an exception the front raises itself, with the code a
// server would use for the same failure.
type frontError struct {
	code proto.Error
	msg  string
}

func (e *frontError) Error() string { return e.msg }

func errorf(code proto.Error, format string, args ...any) error {
	return &frontError{code: code, msg: fmt.Sprintf(format, args...)}
}

var (
	// "Code: 60. DB::Exception: Unknown table ... (UNKNOWN_TABLE)", the
	// engine's text of an exception.
	engineCode   = regexp.MustCompile(`(?s)^Code: (\d+)\. (.*)$`)
	engineSuffix = regexp.MustCompile(`(?s)\.? \([A-Z][A-Z0-9_]*\)( \(version [^)]*\))?\s*$`)
)

// exception turns an error of the engine or of the front into the
// exception a server would send: code, name, and message.
func exception(err error) proto.Exception {
	var fe *frontError
	if errors.As(err, &fe) {
		return proto.Exception{Code: fe.code, Name: exceptionName, Message: exceptionName + ": " + fe.msg}
	}
	var ee *store.EngineError
	if errors.As(err, &ee) {
		if m := engineCode.FindStringSubmatch(ee.Message); m != nil {
			code, convErr := strconv.Atoi(m[1])
			if convErr == nil {
				return proto.Exception{Code: proto.Error(code), Name: exceptionName, Message: engineSuffix.ReplaceAllString(m[2], "")}
			}
		}
		return proto.Exception{Code: proto.ErrUnknownException, Name: exceptionName, Message: exceptionName + ": " + ee.Message}
	}
	return proto.Exception{Code: proto.ErrUnknownException, Name: exceptionName, Message: exceptionName + ": " + err.Error()}
}
