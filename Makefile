# gatehouse — plain GNU make with pkg-config.
#   make            build build/gatehouse (release, -O2)
#   make run        install deps, build, serve the embedded demo
#   make test       install deps, build, unit + end-to-end tests, then again under ASan+UBSan
#   make bench      side-by-side benchmark with nginx and HAProxy (bench/)
#   make fuzz       build the libFuzzer harnesses and run each for FUZZ_SECONDS
#   CC=clang make   builds clean with clang too
CC      ?= gcc
PKGS    := libuv libssl libcrypto libnghttp2 libfyaml jansson libpcre2-8 zlib libbrotlienc libbrotlidec
# -D_GNU_SOURCE: accept4, SO_REUSEPORT, memmem; C11 otherwise.
CFLAGS  ?= -O2 -g
CFLAGS  += -std=c11 -D_GNU_SOURCE -DPCRE2_CODE_UNIT_WIDTH=8 -Wall -Wextra -Werror -Wshadow -Wno-unused-parameter -fno-strict-aliasing -Isrc
LDLIBS  += $(shell pkg-config --libs $(PKGS) 2>/dev/null) -lpthread -lm
CFLAGS  += $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
VERSION := $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
CFLAGS  += -DGH_VERSION='"$(VERSION)"'

BUILD   ?= build
SRCS    := $(sort $(shell find src -name '*.c'))
OBJS    := $(SRCS:src/%.c=$(BUILD)/obj/%.o)
LIBOBJS := $(filter-out $(BUILD)/obj/main.o,$(OBJS))
UNIT_SRCS := $(sort $(wildcard tests/unit/test_*.c))
UNIT_BINS := $(UNIT_SRCS:tests/unit/%.c=$(BUILD)/tests/%)
FUZZ_SRCS := $(sort $(wildcard tests/fuzz/fuzz_*.c))
FUZZ_SECONDS ?= 60
PYTEST  := /usr/bin/python3 -m pytest

.PHONY: all deps run test unit e2e test-san bench fuzz fuzz-build clean
all: $(BUILD)/gatehouse

deps:
	@scripts/install-deps.sh build

$(BUILD)/gatehouse: $(OBJS)
	$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/obj/%.o: src/%.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -MMD -MP -c -o $@ $<

$(BUILD)/tests/%: tests/unit/%.c $(LIBOBJS)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -Itests/unit -o $@ $< $(LIBOBJS) $(LDLIBS) -lcmocka

-include $(OBJS:.o=.d)

run: deps all
	./$(BUILD)/gatehouse run

unit: $(UNIT_BINS)
	@set -e; for t in $(UNIT_BINS); do echo "== $$t"; $$t; done

e2e: $(BUILD)/gatehouse
	GATEHOUSE_BIN=$(CURDIR)/$(BUILD)/gatehouse $(PYTEST) -q -x tests/e2e $(PYTEST_ARGS)

# The whole suite: release build, then ASan+UBSan build of the same tests.
test:
	@scripts/install-deps.sh test
	$(MAKE) unit e2e
	$(MAKE) test-san

test-san:
	$(MAKE) BUILD=build/san CC=clang \
	  CFLAGS="-O1 -g -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer" \
	  LDFLAGS="-fsanitize=address,undefined" \
	  PYTEST_ARGS="$(PYTEST_ARGS)" unit e2e

fuzz-build:
	@scripts/install-deps.sh test
	@mkdir -p build/fuzz
	@set -e; for f in $(FUZZ_SRCS); do n=$$(basename $$f .c); \
	  $(MAKE) --no-print-directory BUILD=build/fuzz/obj-$$n CC=clang \
	    CFLAGS="-O1 -g -fsanitize=fuzzer-no-link,address,undefined -DGH_FUZZING" $$(echo build/fuzz/obj-$$n/obj/dummy >/dev/null) \
	    build/fuzz/obj-$$n/lib.stamp; \
	  clang -O1 -g -std=c11 -D_GNU_SOURCE -Isrc $$(pkg-config --cflags $(PKGS)) -fsanitize=fuzzer,address,undefined \
	    -o build/fuzz/$$n $$f $$(find build/fuzz/obj-$$n/obj -name '*.o' ! -name main.o) $(LDLIBS); done

$(BUILD)/lib.stamp: $(LIBOBJS)
	@touch $@

fuzz: fuzz-build
	@set -e; for f in $(FUZZ_SRCS); do n=$$(basename $$f .c); mkdir -p build/fuzz/corpus-$$n; \
	  echo "== $$n for $(FUZZ_SECONDS)s"; \
	  dict=""; [ -f tests/fuzz/$$n.dict ] && dict="-dict=tests/fuzz/$$n.dict"; \
	  build/fuzz/$$n -max_total_time=$(FUZZ_SECONDS) -print_final_stats=1 $$dict \
	    build/fuzz/corpus-$$n tests/fuzz/corpus/$$n; done

bench: all
	@scripts/install-deps.sh bench
	bench/run-all

clean:
	rm -rf build
