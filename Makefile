# Netview: `make run` starts it, `make test` proves it. Both fetch what they
# need on a fresh machine (the ClickHouse engine library from the npm registry).
SHELL := /bin/bash
GO ?= go

CHDB_VERSION := 26.7.3-stable.1
CHDB_DIR     := .cache/chdb
LIBCHDB      := $(CURDIR)/$(CHDB_DIR)/package/libchdb.so
export NETVIEW_LIBCHDB := $(LIBCHDB)

DATA ?= data

# Test tools: playwright-core drives Debian's Chromium in the Console's
# browser tests; yaml and kubernetes-models parse and check the deploy/
# manifests in their tests.
NODE_DIR     := .cache/node
NODE_MODULES := $(CURDIR)/$(NODE_DIR)/node_modules
NODE_PKGS    := playwright-core@1.64.1 yaml@2.9.1 kubernetes-models@5.1.0
CHROMIUM     := /usr/bin/chromium
NGINX        := /usr/sbin/nginx
PODMAN       := /usr/bin/podman
RUNC         := /usr/bin/runc
BUSYBOX      := /bin/busybox
export NETVIEW_NODE_MODULES := $(NODE_MODULES)

.PHONY: all deps test-deps build test run bench fuzz generate cluster-ddl clean

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

# The stamp holds the package list, so changing a version reinstalls.
test-deps: $(CHROMIUM) $(NGINX) $(PODMAN) $(RUNC) $(BUSYBOX)
	@test "$$(cat $(NODE_DIR)/.installed 2>/dev/null)" = "$(NODE_PKGS)" || { \
		npm install --prefix $(NODE_DIR) --no-save --no-audit --no-fund --silent $(NODE_PKGS) && \
		echo "$(NODE_PKGS)" > $(NODE_DIR)/.installed; }

# Debian's Chromium (test tools must not download browsers of their own)
# and nginx, the load balancer of the scale-out tests.
$(CHROMIUM) $(NGINX):
	@command -v apt-get >/dev/null || { echo "$@ is needed by the tests (Debian packages chromium, nginx-light)"; exit 1; }
	apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium nginx-light >/dev/null

# Podman with runc (crun refuses hybrid cgroup hosts) and a static busybox:
# the sensor's container tests run real containers from a busybox folder,
# since no image can be pulled. One recipe (&:) makes all three: apt-get
# is run once, not once per missing file.
$(PODMAN) $(RUNC) $(BUSYBOX) &:
	@command -v apt-get >/dev/null || { echo "$@ is needed by the tests (Debian packages podman, runc, busybox-static)"; exit 1; }
	apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends podman runc busybox-static >/dev/null

build:
	$(GO) build -o bin/ ./cmd/netview-ingest ./cmd/netview-sensor ./cmd/netview-query ./cmd/netview

# NETVIEW_REQUIRE_BROWSER, NETVIEW_REQUIRE_NGINX and NETVIEW_REQUIRE_CONTAINERS
# turn the skips of tests that need Chromium, nginx or Podman into failures:
# test-deps installed all three, so a skip here would hide a broken setup.
test: deps test-deps
	$(GO) vet ./...
	NETVIEW_REQUIRE_BROWSER=1 NETVIEW_REQUIRE_NGINX=1 NETVIEW_REQUIRE_CONTAINERS=1 $(GO) test -count=1 -timeout 30m ./...

# All of Netview for this host in one process on $(DATA): ingest, the query
# service with the Console, and a sensor. It prints the Console URL (and on
# the first start the admin token and enrollment secret it made, kept in
# $(DATA)/token and $(DATA)/enroll-secret). Ctrl-C stops it.
run: deps build
	@if test -s $(DATA)/token; then echo "Console token: $$(cat $(DATA)/token) (in $(DATA)/token)"; fi
	@if test -s $(DATA)/enroll-secret; then echo "Sensors' enrollment secret: in $(DATA)/enroll-secret"; fi
	./bin/netview --data $(DATA)

bench: deps
	$(GO) test -run '^$$' -bench . -benchtime 3x ./bench/
	$(GO) test -run '^$$' -bench . ./ingest/ ./heartbeat/ ./heartbeat/internal/jsonscan/

# Every fuzz target, as package:Target. go test -fuzz takes one target per
# run, so they run one after another, FUZZTIME each (12 targets: ~6 min at 30s).
FUZZ_TARGETS := \
	ingest:FuzzDecode \
	heartbeat/internal/jsonscan:FuzzScanner \
	heartbeat:FuzzRoundTrip \
	sensor/procnet:FuzzParse \
	sensor/procnet:FuzzSCTP \
	sensor/procnet:FuzzLines \
	sensor/diag:FuzzParse \
	query:FuzzCursorOpen \
	query:FuzzCursorRoundTrip \
	query:FuzzFilters \
	query/analyst:FuzzGuard \
	sensor/ebpf:FuzzParseQuery
FUZZTIME ?= 30s
# Caps minimizing each new input; the 60 s default can eat a short run whole.
FUZZMINIMIZETIME ?= 5s

fuzz: deps
	@set -e; for t in $(FUZZ_TARGETS); do \
		echo "== $${t#*:} ./$${t%%:*}/ for $(FUZZTIME)"; \
		$(GO) test -run '^$$' -fuzz "^$${t#*:}\$$" -fuzztime $(FUZZTIME) -fuzzminimizetime $(FUZZMINIMIZETIME) ./$${t%%:*}/; \
	done

# The sensor's BPF object and its Go loader (sensor/ebpf) are generated from
# bpf/netview.c and committed, so building needs no clang; this regenerates
# them after the C changes, with Debian's clang-16 and libbpf headers.
CLANG := /usr/bin/clang-16
generate: $(CLANG)
	cd sensor/ebpf && $(GO) generate ./...

$(CLANG):
	@command -v apt-get >/dev/null || { echo "clang-16 and libbpf-dev are needed to compile the BPF programs"; exit 1; }
	apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends clang-16 llvm-16 libbpf-dev >/dev/null

cluster-ddl:
	$(GO) run ./cmd/cluster-ddl > deploy/clickhouse/cluster.sql

clean:
	rm -rf bin test-artifacts
