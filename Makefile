# trp: a Raft-replicated, hash-chained, append-only log for the shell.
#
# One static and one shared library (libtrp) built from lib/*.c, one binary
# per cmd/*.c, one unit-test program per tests/unit/test_*.c. Everything is
# found by wildcard so that adding a module needs no edit here.

VERSION    := 0.1.0
PREFIX     ?= /usr/local
DESTDIR    ?=
BINDIR     ?= $(PREFIX)/bin
LIBDIR     ?= $(PREFIX)/lib
INCDIR     ?= $(PREFIX)/include
MANDIR     ?= $(PREFIX)/share/man

CC         ?= cc
PKGS       := libcrypto gmp libcjson
PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS   := $(shell pkg-config --libs $(PKGS) 2>/dev/null || echo -lcrypto -lgmp -lcjson)
OPT        ?= -O2 -g
WARN       := -std=c11 -Wall -Wextra -Werror -Wshadow -Wno-unused-parameter
CFLAGS     ?=
CPPFLAGS   += -D_GNU_SOURCE -DTRP_VERSION='"$(VERSION)"' -Ilib $(PKG_CFLAGS)
ALL_CFLAGS  = $(WARN) $(OPT) -fPIC $(CFLAGS)
LDLIBS     += $(PKG_LIBS) -lpthread

B          ?= build
LIB_SRC    := $(wildcard lib/*.c)
LIB_OBJ    := $(LIB_SRC:%.c=$(B)/%.o)
CMD_SRC    := $(wildcard cmd/*.c)
BINS       := $(CMD_SRC:cmd/%.c=$(B)/bin/%)
UNIT_SRC   := $(wildcard tests/unit/test_*.c)
UNITS      := $(UNIT_SRC:tests/unit/%.c=$(B)/t/%)
TOOL_SRC   := $(wildcard tests/tools/*.c)
TOOLS      := $(TOOL_SRC:tests/tools/%.c=$(B)/t/%)
HEADERS    := $(wildcard lib/trp*.h)
MANPAGES   := $(wildcard man/*.[1-8])

.SECONDARY:
.PHONY: all deps test test-asan unit check-tools bench demo install uninstall clean fuzz sim chaos format

all: $(B)/libtrp.a $(B)/libtrp.so $(BINS)

deps:
	@need=""; \
	for p in libssl-dev libgmp-dev libcjson-dev pkg-config jq; do \
	  dpkg -s $$p >/dev/null 2>&1 || need="$$need $$p"; \
	done; \
	if [ -z "$$need" ]; then echo "deps: all present (libssl-dev libgmp-dev libcjson-dev pkg-config jq)"; \
	else echo "deps: installing$$need with apt-get"; \
	  SUDO=; [ "$$(id -u)" = 0 ] || SUDO=sudo; \
	  $$SUDO apt-get update -qq && $$SUDO apt-get install -y -qq $$need; fi

$(B)/%.o: %.c $(wildcard lib/*.h) | $(B)/lib $(B)/cmd $(B)/tests/unit $(B)/tests/tools
	$(CC) $(CPPFLAGS) $(ALL_CFLAGS) -MMD -c -o $@ $<

$(B)/lib $(B)/cmd $(B)/bin $(B)/t $(B)/tests/unit $(B)/tests/tools:
	mkdir -p $@

$(B)/libtrp.a: $(LIB_OBJ)
	rm -f $@ && ar rcs $@ $^

$(B)/libtrp.so: $(LIB_OBJ)
	$(CC) -shared -Wl,-soname,libtrp.so.0 $(ALL_CFLAGS) -o $@ $^ $(LDFLAGS) $(LDLIBS)

$(B)/bin/%: $(B)/cmd/%.o $(B)/libtrp.a | $(B)/bin
	$(CC) $(ALL_CFLAGS) -o $@ $< $(B)/libtrp.a $(LDFLAGS) $(LDLIBS)

$(B)/t/%: $(B)/tests/unit/%.o $(B)/libtrp.a | $(B)/t
	$(CC) $(ALL_CFLAGS) -o $@ $< $(B)/libtrp.a $(LDFLAGS) $(LDLIBS)

$(B)/t/%: $(B)/tests/tools/%.o $(B)/libtrp.a | $(B)/t
	$(CC) $(ALL_CFLAGS) -o $@ $< $(B)/libtrp.a $(LDFLAGS) $(LDLIBS)

check-tools: all $(UNITS) $(TOOLS)

# The whole suite: unit programs, CLI and cluster scripts, simulator seeds.
# tests/run.sh prints one PASS/FAIL line per check and ends with
# "N passed, N failed".
test: check-tools
	B=$(B) sh tests/run.sh

test-asan:
	$(MAKE) B=build-asan OPT="-O1 -g -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all" \
	  LDFLAGS="-fsanitize=address,undefined" TRP_ASAN=1 test

bench: all $(TOOLS)
	B=$(B) sh tests/bench/run.sh

demo: all
	sh tests/demo.sh $(B)/bin

install: all
	install -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(LIBDIR)/pkgconfig $(DESTDIR)$(INCDIR) \
	  $(DESTDIR)$(MANDIR)/man1 $(DESTDIR)$(MANDIR)/man3 $(DESTDIR)$(MANDIR)/man5 \
	  $(DESTDIR)$(MANDIR)/man7 $(DESTDIR)$(MANDIR)/man8
	install -m 755 $(BINS) $(DESTDIR)$(BINDIR)/
	install -m 644 $(B)/libtrp.a $(DESTDIR)$(LIBDIR)/
	install -m 755 $(B)/libtrp.so $(DESTDIR)$(LIBDIR)/libtrp.so.0
	ln -sf libtrp.so.0 $(DESTDIR)$(LIBDIR)/libtrp.so
	install -m 644 $(HEADERS) $(DESTDIR)$(INCDIR)/
	sed -e 's|@PREFIX@|$(PREFIX)|' -e 's|@LIBDIR@|$(LIBDIR)|' -e 's|@INCDIR@|$(INCDIR)|' \
	  -e 's|@VERSION@|$(VERSION)|' lib/trp.pc.in > $(DESTDIR)$(LIBDIR)/pkgconfig/trp.pc
	for m in $(MANPAGES); do s=$${m##*.}; install -m 644 $$m $(DESTDIR)$(MANDIR)/man$$s/; done

uninstall:
	rm -f $(BINS:$(B)/bin/%=$(DESTDIR)$(BINDIR)/%) $(DESTDIR)$(LIBDIR)/libtrp.* \
	  $(DESTDIR)$(LIBDIR)/pkgconfig/trp.pc $(HEADERS:lib/%=$(DESTDIR)$(INCDIR)/%)

format:
	clang-format -i lib/*.c lib/*.h cmd/*.c tests/unit/*.c

clean:
	rm -rf build build-asan

-include $(shell find $(B) -name '*.d' 2>/dev/null)

# The Raft simulator: `make sim SEEDS=N [SEED=S] [TRACE=1] [REAL_DISK=1]` runs
# N seeds (default 1000) or replays seed S with a readable trace; REAL_DISK=1
# puts every node's log in the real log store (temporary directories).
sim: $(B)/t/sim
	$(B)/t/sim $(if $(REAL_DISK),--real-disk) $(if $(SEED),--seed $(SEED) $(if $(TRACE),--trace $(TRACE)),--seeds $(or $(SEEDS),1000) $(if $(BASE),--base $(BASE)))

# Fuzz targets (tests/fuzz/fuzz_*.c, libFuzzer entry points), built with clang
# -fsanitize=fuzzer,address into $(FUZZ_B) and each run for FUZZ_SECONDS from
# the seed corpus in tests/fuzz/corpus/NAME (new inputs go to $(FUZZ_B)).
# Needs clang's libFuzzer runtime (Debian: libclang-rt-14-dev); not part of
# `make test`.
FUZZ_CC      ?= clang
FUZZ_B       ?= build-fuzz
FUZZ_SECONDS ?= 30
FUZZ_SRC     := $(wildcard tests/fuzz/fuzz_*.c)
FUZZ_FLAGS   := -O1 -g -fno-omit-frame-pointer -fsanitize=address,undefined
FUZZ_LIBOBJ  := $(LIB_SRC:%.c=$(FUZZ_B)/%.o)

$(FUZZ_B)/lib/%.o: lib/%.c $(wildcard lib/*.h)
	@mkdir -p $(@D)
	$(FUZZ_CC) $(CPPFLAGS) $(WARN) $(FUZZ_FLAGS) -fsanitize=fuzzer-no-link -c -o $@ $<

$(FUZZ_B)/fuzz_%: tests/fuzz/fuzz_%.c $(FUZZ_LIBOBJ)
	$(FUZZ_CC) $(CPPFLAGS) $(WARN) $(FUZZ_FLAGS) -fsanitize=fuzzer -o $@ $< $(FUZZ_LIBOBJ) $(LDLIBS)

fuzz:
	@printf 'int LLVMFuzzerTestOneInput(const unsigned char *d, unsigned long n) { return 0; }\n' \
	  | $(FUZZ_CC) -x c -fsanitize=fuzzer -o /dev/null - 2>/dev/null || { \
	  echo "fuzz: $(FUZZ_CC) cannot link libFuzzer; install clang and its runtime" \
	       "(Debian: apt-get install clang libclang-rt-14-dev)"; exit 1; }
	$(MAKE) $(FUZZ_SRC:tests/fuzz/%.c=$(FUZZ_B)/%)
	@for f in $(FUZZ_SRC:tests/fuzz/%.c=%); do \
	  n=$${f#fuzz_}; mkdir -p $(FUZZ_B)/corpus/$$n; \
	  echo "fuzz: $$f for $(FUZZ_SECONDS) s"; \
	  seeds=tests/fuzz/corpus/$$n; [ -d $$seeds ] || seeds=; \
	  $(FUZZ_B)/$$f -max_total_time=$(FUZZ_SECONDS) -max_len=8192 -print_final_stats=1 \
	    -artifact_prefix=$(FUZZ_B)/$$f- $(FUZZ_B)/corpus/$$n $$seeds \
	    > $(FUZZ_B)/$$f.log 2>&1 || { tail -40 $(FUZZ_B)/$$f.log; echo "FAIL $$f"; exit 1; }; \
	  grep -E 'stat::number_of_executed_units|stat::peak_rss_mb' $(FUZZ_B)/$$f.log; \
	  echo "PASS $$f"; \
	done

# Jepsen-style fault scenarios against real trp-node clusters on 127.0.0.1
# (tests/chaos/run.sh; needs root for the disk-full tmpfs):
# `make chaos [SCENARIO=name|"a b"] [DURATION=seconds of faults each] [SEED=n]`.
# `make test` runs every scenario briefly through tests/run.sh.
chaos: all $(TOOLS)
	BIN=$(B)/bin T=$(B)/t SCENARIO="$(SCENARIO)" DURATION=$(or $(DURATION),60) SEED=$(or $(SEED),1) \
	  sh tests/chaos/run.sh
