package store

import (
	"context"
	"errors"
	"strconv"
	"strings"

	"github.com/ClickHouse/ch-go"
	"github.com/ClickHouse/ch-go/proto"
)

// Refused reports whether err is the engine refusing an insert for the
// rows it carries (a value it cannot parse or store, a block touching too
// many partitions...): the same rows fail again, while other rows go
// through. Outages, timeouts, memory and disk limits, and errors of the
// statement or schema (the same for any rows) are not refusals.
func Refused(err error) bool {
	if err == nil || errors.Is(err, ErrUnavailable) || errors.Is(err, ErrClosed) ||
		errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return false
	}
	code, msg, ok := exception(err)
	if !ok {
		return false
	}
	if code == proto.ErrTooManyParts {
		// One code for two things: a block spanning more partitions than
		// max_partitions_per_insert_block (the rows' doing), and merges
		// falling behind inserts (load: fewer, bigger writes help, not
		// splitting).
		return strings.Contains(msg, "partitions for single INSERT block")
	}
	_, notData := notRefusals[code]
	return !notData
}

// notRefusals are engine errors that do not depend on the inserted rows.
var notRefusals = map[proto.Error]struct{}{
	// Resources and load.
	proto.ErrTimeoutExceeded: {}, proto.ErrSocketTimeout: {}, proto.ErrNetworkError: {},
	proto.ErrMemoryLimitExceeded: {}, proto.ErrCannotAllocateMemory: {}, proto.ErrNotEnoughSpace: {},
	proto.ErrTooManySimultaneousQueries: {}, proto.ErrServerOverloaded: {}, proto.ErrCannotScheduleTask: {},
	proto.ErrDistributedTooManyPendingBytes: {}, proto.ErrQueryWasCancelled: {}, proto.ErrAborted: {},
	// Storage that cannot be written.
	proto.ErrTableIsReadOnly: {}, proto.ErrReadonly: {}, proto.ErrCannotFsync: {}, proto.ErrCannotWriteToFileDescriptor: {},
	proto.ErrCannotOpenFile: {}, proto.ErrCannotWriteToOstream: {}, proto.ErrTableIsDropped: {},
	proto.ErrNoZookeeper: {}, proto.ErrKeeperException: {}, proto.ErrAllConnectionTriesFailed: {},
	// The statement, schema or rights: wrong for every row alike.
	proto.ErrUnknownTable: {}, proto.ErrUnknownDatabase: {}, proto.ErrNoSuchColumnInTable: {}, proto.ErrThereIsNoColumn: {},
	proto.ErrUnknownIdentifier: {}, proto.ErrSyntaxError: {}, proto.ErrUnknownSetting: {}, proto.ErrReadonlySetting: {},
	proto.ErrNotImplemented: {}, proto.ErrAccessDenied: {}, proto.ErrAuthenticationFailed: {}, proto.ErrUnknownUser: {},
}

// exception finds the engine's exception in err: a server's, or the
// embedded engine's text ("Code: 27. DB::Exception: ...").
func exception(err error) (proto.Error, string, bool) {
	var exc *ch.Exception
	if errors.As(err, &exc) {
		return exc.Code, exc.Message, true
	}
	var ee *EngineError
	if !errors.As(err, &ee) {
		return 0, "", false
	}
	rest, ok := strings.CutPrefix(strings.TrimSpace(ee.Message), "Code: ")
	if !ok {
		return 0, ee.Message, false
	}
	num, _, _ := strings.Cut(rest, ".")
	n, perr := strconv.Atoi(num)
	if perr != nil {
		return 0, ee.Message, false
	}
	return proto.Error(n), ee.Message, true
}
