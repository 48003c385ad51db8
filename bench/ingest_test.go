// Package bench measures Netview end to end on the real engine. Each
// benchmark reports its figures beside a reference run made in the same
// process, so the ratio holds on a noisy shared machine.
package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/netview/netview/heartbeat"
	"github.com/netview/netview/ingest"
	"github.com/netview/netview/ingest/ingesttest"
	"github.com/netview/netview/internal/auth"
	"github.com/netview/netview/internal/store"
	"github.com/netview/netview/internal/store/storetest"
	"github.com/netview/netview/sql/schema"
)

const token = "bench-token"

// BenchmarkIngest sends heartbeats of 100 connections and 20 listeners
// from many sensors through a real ingest node on loopback into the
// embedded engine, then inserts the same rows straight into the engine
// (decoded beforehand, so only the insert is timed) and reports both.
//
//	heartbeats/s   acknowledged heartbeats per second, end to end
//	rows/s         rows per second, end to end
//	direct-rows/s  rows per second of the direct engine insert
//	e2e/direct     the ratio of the two
func BenchmarkIngest(b *testing.B) {
	const sensors, beats, senders = 1500, 2, 1500
	shape := heartbeat.Shape{Conns: 100, Listeners: 20}
	be := storetest.Embedded(b)
	ctx := context.Background()
	if _, err := schema.Migrate(ctx, be.Store, schema.Options{}); err != nil {
		b.Fatal(err)
	}
	cfg := ingest.Config{MaxBodyBytes: 4 << 20, MaxDecodedBytes: 32 << 20, MaxRatio: 40,
		BatchRows: 100_000, BatchAge: 200 * time.Millisecond, MaxPending: 1_000_000, AckTimeout: 30 * time.Second,
		Tokens: auth.TokenFlags{List: token}, SharedTokens: true}
	srv, err := ingest.New(cfg, be.Store, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		b.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	hs := srv.HTTPServer()
	go hs.Serve(ln)
	defer srv.Shutdown(ctx, hs)

	// Heartbeats made and encoded up front; each b.N round sends new seqs.
	gens := make([]*heartbeat.Generator, sensors)
	for i := range gens {
		gens[i] = heartbeat.NewGenerator(uint64(i+1), shape)
	}
	makeRound := func(round int) ([][]byte, int) {
		bodies := make([][]byte, 0, sensors*beats)
		rows := 0
		for k := range beats {
			for _, g := range gens {
				h := g.Next(time.Now().Add(time.Duration(round*beats+k) * 15 * time.Second))
				body, err := heartbeat.Encode(h)
				if err != nil {
					b.Fatal(err)
				}
				bodies = append(bodies, body)
				rows += len(h.TCPConnections) + len(h.TCPListeners) + 2
			}
		}
		return bodies, rows
	}

	client := &fasthttp.Client{MaxConnsPerHost: senders}
	url := "http://" + ln.Addr().String() + "/v1/heartbeat"
	var e2e, direct time.Duration
	var e2eRows, directRows, sent int
	for round := range b.N {
		bodies, rows := makeRound(round)
		b.StartTimer()
		start := time.Now()
		var next atomic.Int64
		var wg sync.WaitGroup
		var failed atomic.Int64
		for range senders {
			wg.Add(1)
			go func() {
				defer wg.Done()
				req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
				defer fasthttp.ReleaseRequest(req)
				defer fasthttp.ReleaseResponse(resp)
				for {
					i := int(next.Add(1)) - 1
					if i >= len(bodies) {
						return
					}
					req.Reset()
					req.SetRequestURI(url)
					req.Header.SetMethod("POST")
					req.Header.Set("Authorization", "Bearer "+token)
					req.Header.Set("Content-Encoding", "zstd")
					req.SetBodyRaw(bodies[i])
					if err := client.Do(req, resp); err != nil || resp.StatusCode() != 200 {
						failed.Add(1)
					}
				}
			}()
		}
		wg.Wait()
		e2e += time.Since(start)
		b.StopTimer()
		if f := failed.Load(); f > 0 {
			b.Fatalf("%d heartbeats not acknowledged", f)
		}
		e2eRows += rows
		sent += len(bodies)

		// Reference: the same kind of rows, decoded beforehand, inserted straight.
		ref, _ := makeRound(round + b.N)
		batch := ingest.NewBatch()
		var dec ingest.Decoder
		for _, body := range ref {
			doc, err := decompress(body)
			if err != nil {
				b.Fatal(err)
			}
			if _, err := dec.Decode(doc, batch); err != nil {
				b.Fatal(err)
			}
		}
		start = time.Now()
		if refused, err := batch.Insert(ctx, be.Store); err != nil || len(refused) > 0 {
			b.Fatal(err, refused)
		}
		direct += time.Since(start)
		directRows += batch.Rows()
	}
	hbps := float64(sent) / e2e.Seconds()
	rps := float64(e2eRows) / e2e.Seconds()
	drps := float64(directRows) / direct.Seconds()
	b.ReportMetric(hbps, "heartbeats/s")
	b.ReportMetric(rps, "rows/s")
	b.ReportMetric(drps, "direct-rows/s")
	b.ReportMetric(rps/drps, "e2e/direct")
	b.ReportMetric(0, "ns/op")
	fmt.Printf("ingest: %.0f heartbeats/s, %.0f rows/s end to end; direct insert %.0f rows/s; ratio %.2f\n", hbps, rps, drps, rps/drps)
}

// BenchmarkIngestHistory measures what the snapshot tables' history
// (migration 0018: a materialized view per snapshot table and sensors)
// costs a batch insert: the same decoded batches are inserted into a store
// with the history and into one whose views were dropped, alternately,
// in the same rounds, and the time of each is summed.
//
//	plain-rows/s     rows per second without the history
//	history-rows/s   rows per second with it
//	history/plain    time with the history over time without (1 = free)
func BenchmarkIngestHistory(b *testing.B) {
	const sensors = 300
	ctx := context.Background()
	with, plain := storetest.Embedded(b), storetest.Embedded(b)
	for _, be := range []storetest.Backend{with, plain} {
		if _, err := schema.Migrate(ctx, be.Store, schema.Options{}); err != nil {
			b.Fatal(err)
		}
	}
	for _, h := range schema.HistoryTables {
		if err := plain.Store.Exec(ctx, store.Query{SQL: "DROP VIEW " + h.History + "_mv"}); err != nil {
			b.Fatal(err)
		}
	}
	gens := make([]*heartbeat.Generator, sensors)
	for i := range gens {
		gens[i] = heartbeat.NewGenerator(uint64(i+1), sizingShape)
	}
	var times [2]time.Duration
	rows := 0
	base := time.Now().Add(-time.Duration(b.N) * 15 * time.Second)
	b.ResetTimer()
	for round := range b.N {
		b.StopTimer()
		batch := ingest.NewBatch()
		dec := ingest.Decoder{}
		for _, g := range gens {
			doc, err := json.Marshal(withFlows(g.Next(base.Add(time.Duration(round) * 15 * time.Second))))
			if err == nil {
				_, err = dec.Decode(doc, batch)
			}
			if err != nil {
				b.Fatal(err)
			}
		}
		rows += batch.Rows()
		b.StartTimer()
		for i := range 2 {
			k := (round + i) % 2 // each store goes first every other round
			st := []storetest.Backend{with, plain}[k].Store
			start := time.Now()
			if refused, err := batch.Insert(ctx, st); err != nil || len(refused) > 0 {
				b.Fatal(err, refused)
			}
			times[k] += time.Since(start)
		}
	}
	b.StopTimer()
	if n := ingesttest.Count(b, with.Store, "SELECT count() AS n FROM tcp_connections_history"); n == 0 {
		b.Fatal("the history was not written")
	}
	hr, pr := float64(rows)/times[0].Seconds(), float64(rows)/times[1].Seconds()
	b.ReportMetric(pr, "plain-rows/s")
	b.ReportMetric(hr, "history-rows/s")
	b.ReportMetric(times[0].Seconds()/times[1].Seconds(), "history/plain")
	fmt.Printf("ingest history: %d batches of %d heartbeats (%d rows): %.0f rows/s plain, %.0f rows/s with the history; %.2fx the time\n",
		b.N, sensors, rows/b.N, pr, hr, times[0].Seconds()/times[1].Seconds())
}
