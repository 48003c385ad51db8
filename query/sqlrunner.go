package query

import (
	"context"
	"errors"

	"github.com/valyala/fasthttp"

	"github.com/netview/netview/internal/store"
	"github.com/netview/netview/query/analyst"
)

// AnalystSQL returns the runner of POST /api/v1/sql on ro, a store opened
// with analyst.Settings: read-only and limited by the engine itself, with
// analyst.Guard refusing what readonly alone would let through.
func AnalystSQL(ro store.Store) SQLRunner {
	return func(ctx context.Context, q, format string, r *fasthttp.RequestCtx) (int, error) {
		r.SetContentType(analyst.ContentType(format))
		rows, err := analyst.RunRows(ctx, ro, q, format, r)
		if err == nil {
			return rows, nil
		}
		r.ResetBody()
		var refusal *analyst.Refusal
		var engine *store.EngineError
		var unsupported *analyst.UnsupportedTypeError
		switch {
		case errors.As(err, &refusal) && refusal.Forbidden:
			return 0, &apiError{Status: 403, Msg: "refused: " + refusal.Reason}
		case errors.As(err, &refusal):
			return 0, &apiError{Status: 400, Msg: "refused: " + refusal.Reason}
		case errors.As(err, &engine):
			return 0, &apiError{Status: 400, Msg: "the engine refused the statement: " + engine.Message}
		case errors.As(err, &unsupported):
			return 0, &apiError{Status: 400, Msg: err.Error()}
		}
		return 0, err
	}
}
