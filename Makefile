# Netview: `make run` starts it, `make test` proves it. Both fetch what they
# need on a fresh machine (the ClickHouse engine library from the npm registry).
SHELL := /bin/bash
GO ?= go

CHDB_VERSION := 26.7.3-stable.1
CHDB_DIR     := .cache/chdb
LIBCHDB      := $(CURDIR)/$(CHDB_DIR)/package/libchdb.so
export NETVIEW_LIBCHDB := $(LIBCHDB)

DATA ?= data

.PHONY: all deps build test run bench fuzz cluster-ddl clean

all: build

# The embedded engine: chDB's libchdb.so (566 MB) from the npm package,
# pinned, checked by npm's integrity hash, kept out of git.
deps: $(LIBCHDB)

$(LIBCHDB):
	@command -v npm >/dev/null || { echo "npm is needed to fetch the engine library"; exit 1; }
	mkdir -p $(CHDB_DIR)/tmp
	cd $(CHDB_DIR)/tmp && npm pack --silent @chdb/lib-linux-x64-gnu@$(CHDB_VERSION) >/dev/null
	cd $(CHDB_DIR)/tmp && tar xzf chdb-lib-linux-x64-gnu-$(CHDB_VERSION).tgz package/libchdb.so
	mkdir -p $(CHDB_DIR)/package && mv $(CHDB_DIR)/tmp/package/libchdb.so $@
	rm -rf $(CHDB_DIR)/tmp

build:
	$(GO) build -o bin/ ./ingest/cmd/netview-ingest ./sensor/cmd/netview-sensor ./query/cmd/netview-query

test: deps
	$(GO) vet ./...
	$(GO) test -count=1 -timeout 20m ./...

# Starts ingest on the embedded store in ./data at 127.0.0.1:8090 and a
# sensor reporting this host to it. Ctrl-C stops both cleanly.
run: deps build
	@mkdir -p $(DATA)
	@test -s $(DATA)/ingest.token || head -c 24 /dev/urandom | base64 | tr -d '/+=' > $(DATA)/ingest.token
	@echo "ingest: http://127.0.0.1:8090/v1/heartbeat  token: $$(cat $(DATA)/ingest.token)  (in $(DATA)/ingest.token)"
	@./bin/netview-ingest --store.dsn=embedded:$(DATA)/clickhouse --ingest.token-file=$(DATA)/ingest.token & ingest=$$!; \
	trap 'kill -TERM $$ingest 2>/dev/null; wait $$ingest' EXIT; \
	./bin/netview-sensor --sensor.state=$(DATA)/sensor --sensor.token-file=$(DATA)/ingest.token \
		--sensor.ingest=http://127.0.0.1:8090/v1/heartbeat

bench: deps
	$(GO) test -run '^$$' -bench . -benchtime 3x ./bench/
	$(GO) test -run '^$$' -bench . ./ingest/ ./ingest/jsonscan/

fuzz:
	$(GO) test -run '^$$' -fuzz FuzzScanner -fuzztime 30s ./ingest/jsonscan/

cluster-ddl:
	$(GO) run ./sql/cmd/cluster-ddl > deploy/clickhouse/cluster.sql

clean:
	rm -rf bin
