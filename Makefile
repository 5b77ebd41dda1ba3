# gatehouse — plain GNU make with pkg-config.
#   make            build build/gatehouse (release, -O2)
#   make run        install deps, build, serve the embedded demo
#   make test       install deps, build, unit + end-to-end tests, then again under ASan+UBSan
#   make bench      side-by-side benchmark with nginx and HAProxy (bench/)
#   make fuzz       build the libFuzzer harnesses and run each for FUZZ_SECONDS
#   make CC=clang   builds clean with clang too
# CFLAGS/LDFLAGS are for the caller (optimisation, sanitizers); the flags the
# project needs are in GH_CFLAGS and always apply.
CC      ?= gcc
PKGS    := libuv libssl libcrypto libnghttp2 libfyaml jansson libpcre2-8 zlib libbrotlienc libbrotlidec hiredis
CFLAGS  ?= -O2 -g
BUILD   ?= build
VERSION := $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
# _GNU_SOURCE: accept4, SO_REUSEPORT, memmem; the language is C11.
GH_CFLAGS := -std=c11 -D_GNU_SOURCE -DPCRE2_CODE_UNIT_WIDTH=8 -Wall -Wextra -Werror -Wshadow \
             -Wno-unused-parameter -fno-strict-aliasing -Isrc -I$(BUILD)/gen \
             $(shell pkg-config --cflags $(PKGS))
LIBS    := $(shell pkg-config --libs $(PKGS)) -largon2 -lcrypt -lpthread -lm

SRCS    := $(sort $(shell find src -name '*.c'))
# generated sources (build/gen/, never committed): the dashboard's files
GEN_SRCS := $(BUILD)/gen/dashboard_assets.c
DASH_FILES := $(sort $(wildcard src/admin/dashboard/*))
OBJS    := $(SRCS:src/%.c=$(BUILD)/obj/%.o) $(GEN_SRCS:$(BUILD)/gen/%.c=$(BUILD)/obj/gen/%.o)
LIBOBJS := $(filter-out $(BUILD)/obj/main.o,$(OBJS))
UNIT_SRCS := $(sort $(wildcard tests/unit/test_*.c))
UNIT_BINS := $(UNIT_SRCS:tests/unit/%.c=$(BUILD)/tests/%)
FUZZ_SRCS := $(sort $(wildcard tests/fuzz/fuzz_*.c))
FUZZ_BINS := $(FUZZ_SRCS:tests/fuzz/%.c=build/fuzz/%)
FUZZ_SECONDS ?= 60
PYTEST  := /usr/bin/python3 -m pytest
SAN     := -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer

.PHONY: all deps run test unit e2e test-san bench fuzz fuzz-build clean
all: $(BUILD)/gatehouse

deps:
	@scripts/install-deps.sh build

$(BUILD)/gatehouse: $(OBJS)
	$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $^ $(LIBS)

$(BUILD)/obj/%.o: src/%.c
	@mkdir -p $(dir $@)
	$(CC) $(GH_CFLAGS) $(CFLAGS) -MMD -MP -c -o $@ $<

$(BUILD)/tests/%: tests/unit/%.c $(LIBOBJS)
	@mkdir -p $(dir $@)
	$(CC) $(GH_CFLAGS) $(CFLAGS) $(LDFLAGS) -Itests/unit -o $@ $< $(LIBOBJS) $(LIBS) -lcmocka

$(BUILD)/obj/gen/%.o: $(BUILD)/gen/%.c
	@mkdir -p $(dir $@)
	$(CC) $(GH_CFLAGS) $(CFLAGS) -MMD -MP -c -o $@ $<

-include $(OBJS:.o=.d)

# The dashboard (src/admin/dashboard/) is compiled into the binary.
$(BUILD)/gen/dashboard_assets.c: scripts/embed-assets.sh src/admin/dashboard $(DASH_FILES)
	@mkdir -p $(dir $@)
	scripts/embed-assets.sh $@ src/admin/dashboard

# The version string changes with every commit: only the files that print it
# are rebuilt, and only when it really changed.
$(BUILD)/gen/version.h: FORCE
	@mkdir -p $(dir $@)
	@echo '#define GH_VERSION "$(VERSION)"' > $@.tmp; cmp -s $@.tmp $@ || mv $@.tmp $@; rm -f $@.tmp
$(BUILD)/obj/main.o $(BUILD)/obj/server/server.o $(BUILD)/obj/admin/admin.o $(BUILD)/obj/admin/metrics.o: $(BUILD)/gen/version.h
.PHONY: FORCE
FORCE:

# Run from build/, so that a gatehouse.yaml lying in the checkout is not
# taken instead of the demo.
# deps before the build even under -j (a fresh machine has no headers yet).
run: deps
	@$(MAKE) --no-print-directory all
	cd $(BUILD) && ./gatehouse run

unit: $(UNIT_BINS)
	@set -e; for t in $(UNIT_BINS); do echo "== $$t"; $$t; done

# Two test processes (pytest-xdist): most tests wait on sockets and child
# processes, and every test takes its own ports (tests/e2e/conftest.py), so
# they run side by side; E2E_JOBS=1 runs them one at a time.
E2E_JOBS ?= 2
e2e: $(BUILD)/gatehouse
	GATEHOUSE_BIN=$(CURDIR)/$(BUILD)/gatehouse $(PYTEST) -q -p no:cacheprovider -n $(E2E_JOBS) tests/e2e $(PYTEST_ARGS)

# The whole suite: release build, then the same tests under ASan+UBSan.
test:
	@scripts/install-deps.sh test
	$(MAKE) unit e2e
	$(MAKE) test-san

test-san:
	$(MAKE) BUILD=build/san CC=clang CFLAGS="-O1 -g $(SAN)" LDFLAGS="$(SAN)" unit e2e

# libFuzzer harnesses: each links the project's objects built with coverage.
FUZZ_OBJS := $(filter-out build/fuzz/obj/main.o,$(SRCS:src/%.c=build/fuzz/obj/%.o)) build/fuzz/obj/gen/dashboard_assets.o
build/fuzz/obj/gen/%.o: build/gen/%.c
	@mkdir -p $(dir $@)
	clang $(GH_CFLAGS) -Ibuild/gen -O1 -g -fsanitize=fuzzer-no-link,address,undefined -DGH_FUZZING -c -o $@ $<
build/fuzz/obj/%.o: src/%.c build/gen/version.h
	@mkdir -p $(dir $@)
	clang $(GH_CFLAGS) -Ibuild/gen -O1 -g -fsanitize=fuzzer-no-link,address,undefined -DGH_FUZZING -c -o $@ $<

build/fuzz/%: tests/fuzz/%.c $(FUZZ_OBJS)
	clang $(GH_CFLAGS) -O1 -g -fsanitize=fuzzer,address,undefined -DGH_FUZZING -o $@ $< $(FUZZ_OBJS) $(LIBS)

fuzz-build:
	@scripts/install-deps.sh test
	$(MAKE) $(FUZZ_BINS)

fuzz: fuzz-build
	@set -e; for b in $(FUZZ_BINS); do n=$$(basename $$b); mkdir -p build/fuzz/corpus-$$n; \
	  echo "== $$n for $(FUZZ_SECONDS)s"; \
	  dict=""; [ -f tests/fuzz/$$n.dict ] && dict="-dict=tests/fuzz/$$n.dict"; \
	  $$b -max_total_time=$(FUZZ_SECONDS) -timeout=10 -print_final_stats=1 $$dict \
	    build/fuzz/corpus-$$n tests/fuzz/corpus/$$n; done

bench: all
	@scripts/install-deps.sh bench
	bench/run-all

clean:
	rm -rf build
