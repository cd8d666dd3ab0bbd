# vmcas build. `make` builds build/vmcas; `make test` builds an ASan+UBSan
# copy under build/asan and runs every test; `make demo` runs the demo;
# `make bench` runs the benchmarks (optimised, -DNDEBUG); `make fuzz` runs
# every fuzz target of fuzz/ with libFuzzer (clang) for FUZZ_SECONDS each.
# CFLAGS_BASE and LIBS are expanded when used, after `deps` has installed
# pkg-config and the libraries on a fresh machine.
#
# Sources are found by wildcard: every src/<part>/*.c goes into libvmcas.a
# except the command's main; every tests/**/test_*.c is a test program.

PKGS     := libcrypto zlib libzstd lmdb jansson libmicrohttpd libcurl libsystemd
CC       ?= gcc
OPT      ?= -O2
CFLAGS_BASE = -std=c11 -D_GNU_SOURCE -D_FILE_OFFSET_BITS=64 -g $(OPT) \
               -Wall -Wextra -Werror -Wshadow -Wno-unused-parameter \
               -Isrc $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
LIBS     = $(shell pkg-config --libs $(PKGS) 2>/dev/null) -lrados -lpthread -lm
SAN      := -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined

LIB_SRC  := $(filter-out src/cli/main.c,$(wildcard src/*/*.c))
TEST_SRC := $(wildcard tests/*/test_*.c)
BENCH_SRC:= $(wildcard bench/bench_*.c)

.PHONY: all deps test-deps bench-deps test demo bench clean valgrind-build fuzz fuzz-bins fuzz-corpus man install uninstall
all: deps build/vmcas build/nbdkit-vmcas-plugin.so man

# VMCAS_NO_DEPS=1: install no Debian package (a package build has them)
deps:
	@[ -n "$(VMCAS_NO_DEPS)" ] || bash scripts/deps.sh

# what only the tests need (scripts/deps.sh test): jsonschema, chromium, debhelper...
test-deps: deps
	@[ -n "$(VMCAS_NO_DEPS)" ] || bash scripts/deps.sh test

# --- installation: `make install PREFIX=/usr DESTDIR=...`; `make uninstall`
# removes exactly what it installed (scripts/install.sh holds the list).
# NBDKIT_PLUGIN: the nbdkit plugin, installed into nbdkit's plugin
# directory if it was built.
VERSION         := 0.2
PREFIX          ?= /usr/local
BINDIR          ?= $(PREFIX)/bin
MANDIR          ?= $(PREFIX)/share/man
DOCDIR          ?= $(PREFIX)/share/doc/vmcas
DATADIR         ?= $(PREFIX)/share/vmcas
BASHCOMPDIR     ?= $(PREFIX)/share/bash-completion/completions
SYSTEMDUNITDIR  ?= $(PREFIX)/lib/systemd/system
SYSUSERSDIR     ?= $(PREFIX)/lib/sysusers.d
NBDKIT_PLUGINDIR ?= $(or $(shell pkg-config --variable=plugindir nbdkit 2>/dev/null),$(PREFIX)/lib/nbdkit/plugins)
NBDKIT_PLUGIN   ?= build/nbdkit-vmcas-plugin.so
INSTALL_VARS     = DESTDIR="$(DESTDIR)" PREFIX="$(PREFIX)" BINDIR="$(BINDIR)" MANDIR="$(MANDIR)" \
                   DOCDIR="$(DOCDIR)" DATADIR="$(DATADIR)" BASHCOMPDIR="$(BASHCOMPDIR)" \
                   SYSTEMDUNITDIR="$(SYSTEMDUNITDIR)" SYSUSERSDIR="$(SYSUSERSDIR)" \
                   NBDKIT_PLUGINDIR="$(NBDKIT_PLUGINDIR)" NBDKIT_PLUGIN="$(NBDKIT_PLUGIN)"

# man pages: POD (man/*.pod, "=include FILE" lines pull in man/inc/), pod2man
MAN_SRC  := $(wildcard man/vmcas*.pod)
MAN_PAGES:= $(patsubst man/%.pod,build/man/%.1,$(MAN_SRC))
man: $(MAN_PAGES)
build/man/%.1: man/%.pod $(wildcard man/inc/*.pod)
	@mkdir -p $(dir $@)
	cd man && awk '/^=include /{ f = $$2; while ((getline l < f) > 0) print l; close(f); next } { print }' $*.pod \
	  | pod2man --utf8 --section=1 --center="vmcas manual" --release="vmcas $(VERSION)" \
	    --date="$$(date -u -d @$${SOURCE_DATE_EPOCH:-$$(git log -1 --format=%ct 2>/dev/null || date +%s)} +%Y-%m-%d)" \
	    --name="$$(echo $* | tr a-z A-Z)" > ../$@.tmp && mv ../$@.tmp ../$@

install: build/vmcas man
	@echo "installing into $(DESTDIR)$(PREFIX):"
	@$(INSTALL_VARS) bash scripts/install.sh install

uninstall:
	@$(INSTALL_VARS) bash scripts/install.sh uninstall

# --- variant rules: $(1)=dir $(2)=extra cflags -------------------------------
define variant
$(1)/obj/%.o: %.c $$(wildcard src/*/*.h) | deps
	@mkdir -p $$(dir $$@)
	$$(CC) $$(CFLAGS_BASE) $(2) -c $$< -o $$@
$(1)/libvmcas.a: $$(patsubst %.c,$(1)/obj/%.o,$$(LIB_SRC))
	@rm -f $$@
	ar rcs $$@ $$^
$(1)/vmcas: $(1)/obj/src/cli/main.o $(1)/libvmcas.a
	$$(CC) $(2) $$(LDFLAGS) -o $$@ $$^ $$(LIBS)
endef

# build/ is position-independent: its library also links into the disk plugin
$(eval $(call variant,build,-fPIC))
$(eval $(call variant,build/asan,$(SAN) -O1))
$(eval $(call variant,build/vg,-O1))
$(eval $(call variant,build/bench,-DNDEBUG -O3 -march=native))
$(eval $(call variant,build/fuzz,$(SAN) -fsanitize=fuzzer-no-link -O1))

build/asan/tests/%: build/asan/obj/tests/%.o build/asan/libvmcas.a
	@mkdir -p $(dir $@)
	$(CC) $(SAN) -o $@ $^ $(LIBS) -lcmocka

build/bench/bin/%: build/bench/obj/bench/%.o build/bench/libvmcas.a
	@mkdir -p $(dir $@)
	$(CC) -o $@ $^ $(LIBS)

# The nbdkit plugin that serves a workspace's disk (plugins/vmcas/): its own
# library symbols hidden, so that nothing of vmcas meets nbdkit's.
build/nbdkit-vmcas-plugin.so: plugins/vmcas/vmcas_plugin.c build/libvmcas.a $(wildcard src/*/*.h) | deps
	$(CC) $(CFLAGS_BASE) -fPIC -shared -o $@ $< build/libvmcas.a -Wl,--exclude-libs,ALL $(LIBS)

build/tools/vc-testimg: tests/tools/vc_testimg.c | deps
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_BASE) -o $@ $<

TEST_BINS  := $(patsubst tests/%.c,build/asan/tests/%,$(TEST_SRC))
BENCH_BINS := $(patsubst bench/%.c,build/bench/bin/%,$(BENCH_SRC))

# --- fuzzing (README "Fuzzing") ------------------------------------------------
# Each fuzz/fuzz_<name>.c is a libFuzzer target with a seed corpus in
# fuzz/corpus/<name>/. It is linked twice: with fuzz/replay.c by $(CC)
# under ASan+UBSan (build/asan/fuzz/replay_<name>, which `make test` runs
# on the corpus: no clang needed), and with libFuzzer by clang over a
# libvmcas built with coverage (build/fuzz/bin/fuzz_<name>, for `make fuzz`).
FUZZ_NAMES   := $(patsubst fuzz/fuzz_%.c,%,$(wildcard fuzz/fuzz_*.c))
FUZZ_TARGETS ?= $(FUZZ_NAMES)
FUZZ_SECONDS ?= 60
FUZZ_CC      ?= clang
REPLAY_BINS  := $(patsubst %,build/asan/fuzz/replay_%,$(FUZZ_NAMES))
FUZZ_BINS    := $(patsubst %,build/fuzz/bin/fuzz_%,$(FUZZ_TARGETS))

build/fuzz/%: CC = $(FUZZ_CC)
$(foreach v,build build/asan build/fuzz,$(patsubst %.c,$(v)/obj/%.o,$(wildcard fuzz/*.c))): fuzz/fuzz.h

build/asan/fuzz/replay_%: build/asan/obj/fuzz/replay.o build/asan/obj/fuzz/common.o build/asan/obj/fuzz/fuzz_%.o \
                          build/asan/libvmcas.a
	@mkdir -p $(dir $@)
	$(CC) $(SAN) -o $@ $^ $(LIBS)

build/fuzz/bin/fuzz_%: build/fuzz/obj/fuzz/fuzz_%.o build/fuzz/obj/fuzz/common.o build/fuzz/libvmcas.a
	@mkdir -p $(dir $@)
	$(CC) $(SAN) -fsanitize=fuzzer -o $@ $^ $(LIBS)

build/tools/gen-fuzz-corpus: build/obj/fuzz/gen_corpus.o build/libvmcas.a
	@mkdir -p $(dir $@)
	$(CC) -o $@ $^ $(LIBS)

# Installs clang first (scripts/deps.sh fuzz), then builds and runs.
fuzz:
	@bash scripts/deps.sh fuzz
	@$(MAKE) --no-print-directory fuzz-bins
	@FUZZ_SECONDS=$(FUZZ_SECONDS) bash fuzz/run.sh $(FUZZ_TARGETS)

fuzz-bins: $(FUZZ_BINS)

# Rewrites the generated seeds (seed-*); inputs added by hand stay.
fuzz-corpus: deps build/tools/gen-fuzz-corpus
	rm -f fuzz/corpus/*/seed-*
	build/tools/gen-fuzz-corpus fuzz/corpus

test: test-deps build/vmcas build/nbdkit-vmcas-plugin.so man build/asan/vmcas build/vg/vmcas build/tools/vc-testimg $(TEST_BINS) $(REPLAY_BINS)
	@bash tests/run.sh

demo: deps build/vmcas build/tools/vc-testimg
	@bash scripts/demo.sh

# bench-deps: restic, borg and casync for bench/peers.sh (scripts/deps.sh
# bench); a failed install only means the peers are skipped.
bench-deps: deps
	@[ -n "$(VMCAS_NO_DEPS)" ] || bash scripts/deps.sh bench || echo "bench: peers not installed; bench/peers.sh skips them" >&2

bench: bench-deps build/bench/vmcas build/tools/vc-testimg $(BENCH_BINS)
	@bash bench/run.sh

clean:
	rm -rf build
.SECONDARY:
