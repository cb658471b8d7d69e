# SPDX-License-Identifier: MIT
# cowarena build. `make` builds the libraries, the CLI and the examples in
# build/; `make test` (alias `make check`) and `make demo` first install
# missing dependencies (as root) or print the command that would; with
# NO_DEPS=1 they never install and fail with that command instead.
# CPPFLAGS, CFLAGS and LDFLAGS are honoured; a change of CC or of any flags
# rebuilds (build/.flags).

PREFIX ?= /usr/local
LIBDIR ?= $(PREFIX)/lib
INCDIR ?= $(PREFIX)/include
BINDIR ?= $(PREFIX)/bin
MANDIR ?= $(PREFIX)/share/man
DESTDIR ?=
BUILD ?= build
CC ?= cc
CXX ?= g++
# The version lives in one place: the COWARENA_VERSION_* macros of the
# header (cow_version() builds its string from them too).
version_part = $(shell sed -n \
	's/^\#define COWARENA_VERSION_$(1)  *\([0-9][0-9]*\).*/\1/p' \
	include/cowarena.h)
VERSION := $(call version_part,MAJOR).$(call version_part,MINOR).$(call version_part,PATCH)
SONAME := libcowarena.so.$(call version_part,MAJOR)

# Debian packages the build needs, and the pkg-config names that prove them.
DEPS_APT := liburing-dev libcmocka-dev libxxhash-dev pkg-config
DEPS_PC := liburing cmocka libxxhash
# ... and what `make bench` needs on top: the peers it measures against and
# gnuplot for the plots.
BENCH_DEPS_APT := liblmdb-dev libsqlite3-dev gnuplot-nox
BENCH_DEPS_PC := lmdb sqlite3

WARN := -Wall -Wextra -Wshadow -Wstrict-prototypes -Wmissing-prototypes \
	-Wundef -Wpointer-arith
CFLAGS ?= -O2 -g
ifeq ($(CI),true)
WERROR ?= -Werror
endif
# xxHash is compiled in (XXH_INLINE_ALL in src/hash.c, wal.c and
# snapfile.c): libxxhash-dev gives the header only, and the library links
# with liburing and pthread alone.
PKG_CFLAGS = $(shell pkg-config --cflags liburing libxxhash 2>/dev/null)
PKG_LIBS = $(shell pkg-config --libs liburing 2>/dev/null || echo -luring)
ALL_CFLAGS = -std=gnu11 $(CFLAGS) $(WARN) $(WERROR) -fvisibility=hidden \
	-fPIC -Iinclude -Isrc $(PKG_CFLAGS) $(CPPFLAGS) $(EXTRA_CFLAGS)
LIBS = $(PKG_LIBS) -lpthread
LDFLAGS_ALL = $(LDFLAGS) $(EXTRA_LDFLAGS)

LIB_SRC := $(wildcard src/*.c)
LIB_OBJ := $(LIB_SRC:src/%.c=$(BUILD)/obj/%.o)
# The same sources built again with the fault injector and the trace hook
# of src/sys.c (COW_FAULT_INJECT), for the tests only: the release .a/.so
# carry neither.
TEST_OBJ := $(LIB_SRC:src/%.c=$(BUILD)/obj-test/%.o)
TEST_LIB := $(BUILD)/libcowarena-test.a
HDRS := include/cowarena.h $(wildcard src/*.h)
EXAMPLES := $(patsubst examples/%.c,$(BUILD)/examples/%,$(wildcard examples/*.c))
TESTS := $(patsubst tests/%.c,$(BUILD)/tests/%,$(wildcard tests/test_*.c))
TEST_HELPERS := $(filter-out tests/test_%.c,$(wildcard tests/*.c))
# The C++ bindings' test, built as C++11 and as C++20 (with the span view),
# and the Python bindings' tests (skipped where python3 is missing).
CXX_TESTS := $(BUILD)/tests/test_cpp11 $(BUILD)/tests/test_cpp20
CXX_WARN := -Wall -Wextra -Werror -pedantic
PY_TESTS := tests/test_python.sh
BENCHES := $(patsubst bench/%.c,$(BUILD)/bench/%,$(wildcard bench/bench_*.c))
BENCH_HELPERS := $(filter-out bench/bench_%.c,$(wildcard bench/*.c))

.PHONY: all lib test check demo bench bench-deps deps asan ubsan tsan \
	check-all check-link check-build dist distcheck FORCE coverage fuzz install uninstall format format-check clean

all: lib $(BUILD)/cowarena $(EXAMPLES)

lib: $(BUILD)/libcowarena.a $(BUILD)/libcowarena.so $(BUILD)/cowarena.pc

# Installs what is missing when run as root; otherwise says how.
deps:
	@missing=""; for p in $(DEPS_PC); do \
		pkg-config --exists $$p 2>/dev/null || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
		sudo=sudo; [ "$$(id -u)" != 0 ] || sudo=; \
		if [ -n "$(NO_DEPS)" ]; then \
			echo "missing:$$missing (NO_DEPS set, not installing); run:" >&2; \
			echo "$${sudo:+sudo }apt-get install -y $(DEPS_APT)" >&2; \
			exit 1; \
		elif [ "$$(id -u)" = 0 ]; then \
			echo "installing build dependencies: $(DEPS_APT)"; \
			apt-get update -qq && \
			DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
				$(DEPS_APT) >/dev/null || exit 1; \
		else \
			echo "missing:$$missing; run: sudo apt-get install -y $(DEPS_APT)"; \
			exit 1; \
		fi; \
	fi

# The same for the benchmarks' dependencies (gnuplot is optional: without
# it the tables are written but not plotted).
bench-deps:
	@missing=""; for p in $(BENCH_DEPS_PC); do \
		pkg-config --exists $$p 2>/dev/null || missing="$$missing $$p"; \
	done; \
	command -v gnuplot >/dev/null 2>&1 || missing="$$missing gnuplot"; \
	if [ -n "$$missing" ]; then \
		sudo=sudo; [ "$$(id -u)" != 0 ] || sudo=; \
		if [ -n "$(NO_DEPS)" ]; then \
			echo "missing:$$missing (NO_DEPS set, not installing); run:" >&2; \
			echo "$${sudo:+sudo }apt-get install -y $(BENCH_DEPS_APT)" >&2; \
			command -v gnuplot >/dev/null 2>&1 || [ "$$missing" != " gnuplot" ] || exit 0; \
			exit 1; \
		elif [ "$$(id -u)" = 0 ]; then \
			echo "installing benchmark dependencies: $(BENCH_DEPS_APT)"; \
			apt-get update -qq && \
			DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
				$(BENCH_DEPS_APT) >/dev/null || exit 1; \
		else \
			echo "missing:$$missing; run: sudo apt-get install -y $(BENCH_DEPS_APT)"; \
			command -v gnuplot >/dev/null 2>&1 || [ "$$missing" != " gnuplot" ] || exit 0; \
			exit 1; \
		fi; \
	fi

# Everything built depends on this stamp, rewritten only when the compiler
# or the flags change: `make CC=clang` or `make CFLAGS=-O0` rebuilds all.
FLAGS_LINE = $(CC) $(ALL_CFLAGS) $(LDFLAGS_ALL) $(LIBS) | $(CXX)
FLAGS := $(BUILD)/.flags
$(FLAGS): FORCE | $(BUILD)/obj
	@printf '%s\n' '$(subst ','\'',$(FLAGS_LINE))' > $@.new; \
	if cmp -s $@.new $@; then rm -f $@.new; else mv -f $@.new $@; fi
FORCE:

$(BUILD)/obj/%.o: src/%.c $(HDRS) $(FLAGS) | $(BUILD)/obj
	$(CC) $(ALL_CFLAGS) -c -o $@ $<

$(BUILD)/obj-test/%.o: src/%.c $(HDRS) $(FLAGS) | $(BUILD)/obj-test
	$(CC) $(ALL_CFLAGS) -DCOW_FAULT_INJECT -c -o $@ $<

$(BUILD)/obj $(BUILD)/obj-test $(BUILD)/examples $(BUILD)/tests $(BUILD)/bench:
	mkdir -p $@

$(TEST_LIB): $(TEST_OBJ)
	rm -f $@
	ar rcs $@ $^

$(BUILD)/libcowarena.a: $(LIB_OBJ)
	rm -f $@
	ar rcs $@ $^

$(BUILD)/libcowarena.so: $(LIB_OBJ) libcowarena.map $(FLAGS)
	$(CC) -shared -Wl,-soname,$(SONAME) -Wl,-z,defs \
		-Wl,--version-script=libcowarena.map $(LDFLAGS_ALL) \
		-o $(BUILD)/libcowarena.so.$(VERSION) $(LIB_OBJ) $(LIBS)
	ln -sf libcowarena.so.$(VERSION) $(BUILD)/$(SONAME)
	ln -sf libcowarena.so.$(VERSION) $@

$(BUILD)/cowarena.pc: cowarena.pc.in Makefile | $(BUILD)/obj
	sed -e 's|@PREFIX@|$(PREFIX)|' -e 's|@LIBDIR@|$(LIBDIR)|' \
		-e 's|@INCDIR@|$(INCDIR)|' -e 's|@VERSION@|$(VERSION)|' $< > $@

$(BUILD)/cowarena: src/cli/cowarena.c $(BUILD)/libcowarena.a $(FLAGS)
	$(CC) $(ALL_CFLAGS) $(LDFLAGS_ALL) -o $@ $< $(BUILD)/libcowarena.a $(LIBS)

$(BUILD)/examples/%: examples/%.c $(BUILD)/libcowarena.a $(FLAGS) | $(BUILD)/examples
	$(CC) $(ALL_CFLAGS) $(LDFLAGS_ALL) -o $@ $< $(BUILD)/libcowarena.a $(LIBS)

$(BUILD)/tests/%: tests/%.c $(TEST_HELPERS) tests/helpers.h $(TEST_LIB) $(FLAGS) | $(BUILD)/tests
	$(CC) $(ALL_CFLAGS) -DCOW_FAULT_INJECT -Wno-missing-prototypes \
		$(LDFLAGS_ALL) -o $@ $< $(TEST_HELPERS) $(TEST_LIB) \
		$$(pkg-config --libs cmocka) $(LIBS)

# The tests of the CLI (and of recover in test_wal) run the tool built
# beside them.
$(BUILD)/tests/test_cli $(BUILD)/tests/test_wal: $(BUILD)/cowarena

$(BUILD)/tests/test_cpp%: tests/test_cpp.cpp include/cowarena.hpp include/cowarena.h $(BUILD)/libcowarena.a $(FLAGS) | $(BUILD)/tests
	$(CXX) -std=c++$* $(CPPFLAGS) $(CFLAGS) $(CXX_WARN) -Iinclude $(EXTRA_CFLAGS) \
		$(LDFLAGS_ALL) -o $@ $< $(BUILD)/libcowarena.a $(LIBS)

BENCH_LIBS = $(shell pkg-config --libs lmdb sqlite3 2>/dev/null || \
	echo -llmdb -lsqlite3) -lm
$(BUILD)/bench/%: bench/%.c $(BENCH_HELPERS) $(wildcard bench/*.h) $(BUILD)/libcowarena.a $(FLAGS) | $(BUILD)/bench
	$(CC) $(ALL_CFLAGS) -Wno-missing-prototypes $(LDFLAGS_ALL) -o $@ $< \
		$(BENCH_HELPERS) $(BUILD)/libcowarena.a $(LIBS) $(BENCH_LIBS)

check: test

test: deps
	@$(MAKE) --no-print-directory all $(TESTS) $(CXX_TESTS)
	@BUILD=$(BUILD) COWARENA_LIB=$(BUILD)/$(SONAME) tests/run.sh $(TESTS) \
		$(CXX_TESTS) $(PY_TESTS) tests/check-man.sh tests/check-readme.sh

# Calls between the modules go down the layers of tools/layers.txt (see
# docs/DESIGN.md): the checker tests itself on small fixtures, then reads
# the library's objects. make test runs it first.
.PHONY: check-layers
test: check-layers
check-layers: $(LIB_OBJ)
	@tools/test-check-layers.sh "$(CC)" >$(BUILD)/check-layers-test.log 2>&1 || \
		{ cat $(BUILD)/check-layers-test.log; exit 1; }
	@tools/check-layers.sh $(LIB_OBJ)

demo: deps
	@$(MAKE) --no-print-directory all
	@examples/run.sh $(BUILD)

bench: deps bench-deps
	@$(MAKE) --no-print-directory all $(BENCHES)
	@bench/run.sh $(BUILD) $(BENCH_ARGS)

SAN_FLAGS = -O1 -g -fno-omit-frame-pointer
asan ubsan: deps
	@$(MAKE) --no-print-directory BUILD=build/asan CFLAGS="$(SAN_FLAGS)" \
		EXTRA_CFLAGS="-fsanitize=address,undefined -fno-sanitize-recover=undefined" \
		EXTRA_LDFLAGS="-fsanitize=address,undefined" test

tsan: deps
	@$(MAKE) --no-print-directory BUILD=build/tsan CFLAGS="$(SAN_FLAGS)" \
		EXTRA_CFLAGS="-fsanitize=thread" EXTRA_LDFLAGS="-fsanitize=thread" test

# The COW_DEBUG build (build/debug): after every public call that can
# change an arena, src/debug.c checks the invariants the layers share (the
# guard's size is the arena's; the tracker's armed set equals the armed
# private pages a full PAGEMAP_SCAN finds, up to pages written since; cur
# covers the armed set) and aborts with the reason when one fails; each
# program is linked with --wrap for those calls, named in debug.c's list.
DEBUG_SED := 's/^[[:space:]]*[XS](\(int\|ssize_t\|void\), \(cow_[a-z_]*\),.*/\2/p'
DEBUG_WRAP := $(shell sed -n $(DEBUG_SED) src/debug.c)
.PHONY: debug
debug: deps
	@$(MAKE) --no-print-directory BUILD=build/debug EXTRA_CFLAGS="-DCOW_DEBUG" \
		EXTRA_LDFLAGS="$(DEBUG_WRAP:%=-Wl,--wrap=%)" test

# libFuzzer on the log parser for FUZZ_TIME seconds, from the seed corpus
# in tests/fuzz/wal-corpus (clang, Debian package clang). A crash fails.
FUZZ_CC ?= clang
FUZZ_FLAGS = -std=gnu11 -O1 -g -fno-omit-frame-pointer \
	-fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
	-Iinclude -Isrc $(PKG_CFLAGS)
fuzz: deps
	@mkdir -p $(BUILD)/fuzz/corpus
	$(FUZZ_CC) $(FUZZ_FLAGS) -o $(BUILD)/fuzz/fuzz_wal \
		tests/fuzz/fuzz_wal.c src/wal.c src/hash.c src/sys.c $(LIBS)
	cp tests/fuzz/wal-corpus/* $(BUILD)/fuzz/corpus/
	$(BUILD)/fuzz/fuzz_wal -max_total_time=$(FUZZ_TIME) -max_len=73728 \
		$(BUILD)/fuzz/corpus

# Everything CI runs: the tests plain, under ASan+UBSan and under TSan, then
# a bounded fuzz run (FUZZ_TIME seconds) when the Makefile has a fuzz target.
FUZZ_TIME ?= 60
check-all:
	@$(MAKE) --no-print-directory test
	@$(MAKE) --no-print-directory asan
	@$(MAKE) --no-print-directory tsan
	@$(MAKE) --no-print-directory debug
	@if $(MAKE) -n fuzz >/dev/null 2>&1; then \
		$(MAKE) --no-print-directory fuzz FUZZ_TIME=$(FUZZ_TIME); \
	else \
		echo "check-all: no fuzz target in this tree, fuzzing skipped"; \
	fi

# Line coverage of src/ by the test suite (gcovr, Debian package gcovr).
coverage: deps
	@command -v gcovr >/dev/null || { \
		if [ "$$(id -u)" = 0 ]; then \
			apt-get install -y -qq gcovr >/dev/null || exit 1; \
		else \
			echo "missing gcovr; run: sudo apt-get install -y gcovr"; \
			exit 1; \
		fi; }
	@mkdir -p build/cov/obj-test && rm -f build/cov/obj-test/*.gcda
	@$(MAKE) --no-print-directory BUILD=build/cov CFLAGS="-O0 -g" \
		EXTRA_CFLAGS="--coverage -fprofile-update=atomic -DCOW_COVERAGE" EXTRA_LDFLAGS="--coverage" test \
		>build/coverage-test.log 2>&1 || { tail -n 30 build/coverage-test.log; exit 1; }
	@tail -n 1 build/coverage-test.log
	@gcovr -r . --filter 'src/' --exclude 'src/cli/' build/cov/obj-test

install: all
	install -d $(DESTDIR)$(LIBDIR)/pkgconfig $(DESTDIR)$(INCDIR) $(DESTDIR)$(BINDIR)
	install -m 644 include/cowarena.h include/cowarena.hpp \
		$(DESTDIR)$(INCDIR)/
	install -m 644 $(BUILD)/libcowarena.a $(DESTDIR)$(LIBDIR)/
	install -m 755 $(BUILD)/libcowarena.so.$(VERSION) $(DESTDIR)$(LIBDIR)/
	ln -sf libcowarena.so.$(VERSION) $(DESTDIR)$(LIBDIR)/$(SONAME)
	ln -sf libcowarena.so.$(VERSION) $(DESTDIR)$(LIBDIR)/libcowarena.so
	sed -e 's|@PREFIX@|$(PREFIX)|' -e 's|@LIBDIR@|$(LIBDIR)|' \
		-e 's|@INCDIR@|$(INCDIR)|' -e 's|@VERSION@|$(VERSION)|' \
		cowarena.pc.in > $(DESTDIR)$(LIBDIR)/pkgconfig/cowarena.pc
	install -m 755 $(BUILD)/cowarena $(DESTDIR)$(BINDIR)/
	install -d $(DESTDIR)$(MANDIR)/man1 $(DESTDIR)$(MANDIR)/man3 \
		$(DESTDIR)$(MANDIR)/man7
	install -m 644 docs/man/*.1 $(DESTDIR)$(MANDIR)/man1/
	install -m 644 docs/man/*.3 $(DESTDIR)$(MANDIR)/man3/
	install -m 644 docs/man/*.7 $(DESTDIR)$(MANDIR)/man7/

# Links tests/link/prog.c the ways a user does and runs each result: the
# README's line (the static library with -luring -lpthread, nothing else),
# then against a copy installed under a scratch PREFIX through pkg-config,
# shared and fully static (`pkg-config --static` must list everything).
# Also checks that the release libraries carry no test hooks.
LINK_DIR = $(abspath $(BUILD))/check-link
check-link: lib
	@rm -rf $(LINK_DIR) && mkdir -p $(LINK_DIR)
	$(CC) tests/link/prog.c -Iinclude $(BUILD)/libcowarena.a -luring \
		-lpthread -o $(LINK_DIR)/readme
	$(LINK_DIR)/readme
	@$(MAKE) --no-print-directory install PREFIX=$(LINK_DIR)/prefix \
		DESTDIR= >/dev/null
	PKG_CONFIG_PATH=$(LINK_DIR)/prefix/lib/pkgconfig; \
		export PKG_CONFIG_PATH; \
		$(CC) tests/link/prog.c -o $(LINK_DIR)/shared \
			$$(pkg-config --cflags --libs cowarena) && \
		LD_LIBRARY_PATH=$(LINK_DIR)/prefix/lib $(LINK_DIR)/shared && \
		$(CC) -static tests/link/prog.c -o $(LINK_DIR)/static \
			$$(pkg-config --static --cflags --libs cowarena) && \
		$(LINK_DIR)/static
	@LD_LIBRARY_PATH=$(LINK_DIR)/prefix/lib ldd $(LINK_DIR)/shared | grep -q 'libcowarena.so.0 => $(LINK_DIR)/prefix' || \
		{ echo "check-link: the shared link did not use the installed library"; exit 1; }
	@if nm $(BUILD)/libcowarena.a $(BUILD)/libcowarena.so 2>/dev/null | \
		grep -E 'cow__fault_|cow__sys_set_trace|cow__sys_trace'; then \
		echo "check-link: test hooks in the release library"; exit 1; fi
	@rm -rf $(LINK_DIR)
	@echo "check-link: README line, pkg-config shared and static: OK"

# The release tarball: the files git tracks (as they are in the work tree),
# under cowarena-VERSION/.
DIST := cowarena-$(VERSION)
dist:
	@git rev-parse --is-inside-work-tree >/dev/null 2>&1 || { \
		echo "make dist: needs a git checkout (it packs git ls-files)"; \
		exit 1; }
	@rm -f $(DIST).tar.gz
	git ls-files | tar -czf $(DIST).tar.gz --owner=0 --group=0 \
		--numeric-owner --sort=name --transform 's,^,$(DIST)/,S' -T -
	@echo "make dist: $(DIST).tar.gz"

# Unpacks the tarball in a scratch directory, builds and tests there, then
# installs into a DESTDIR and uninstalls: nothing may be left behind, and
# nothing in the tarball may point outside it.
DC = $(abspath $(BUILD))/distcheck
distcheck: dist
	@rm -rf $(DC) && mkdir -p $(DC)
	tar -C $(DC) -xzf $(DIST).tar.gz
	@if grep -rIl '\.\./shared' $(DC)/$(DIST); then \
		echo "distcheck: files above point outside the tarball"; exit 1; fi
	$(MAKE) --no-print-directory -C $(DC)/$(DIST) BUILD=build check
	$(MAKE) --no-print-directory -C $(DC)/$(DIST) BUILD=build \
		DESTDIR=$(DC)/inst install >/dev/null
	@test -e $(DC)/inst$(LIBDIR)/$(SONAME) && \
		test -e $(DC)/inst$(INCDIR)/cowarena.h
	$(MAKE) --no-print-directory -C $(DC)/$(DIST) BUILD=build \
		DESTDIR=$(DC)/inst uninstall >/dev/null
	@left=$$(find $(DC)/inst ! -type d); if [ -n "$$left" ]; then \
		echo "distcheck: uninstall left behind:"; echo "$$left"; \
		exit 1; fi
	@rm -rf $(DC)
	@echo "distcheck: $(DIST).tar.gz builds, passes its tests, installs and uninstalls cleanly"

# Checks of the build itself (CI runs them): CPPFLAGS reach the compiler
# and the distribution's hardening flags build clean under -Werror; a
# change of CFLAGS or CC rebuilds and an unchanged one does not; NO_DEPS
# fails with the apt-get line instead of installing; the version is read
# from the header everywhere.
CB = $(abspath $(BUILD))/check-build
CB_MAKE = $(MAKE) --no-print-directory BUILD=$(CB)
check-build: $(BUILD)/cowarena.pc
	@rm -rf $(CB)
	@echo "check-build: CPPFLAGS=-D_FORTIFY_SOURCE=2 reaches the compiler"
	@$(CB_MAKE) CPPFLAGS=-D_FORTIFY_SOURCE=2 CFLAGS="-O2 -g" \
		$(CB)/obj/sys.o >/dev/null
	@nm $(CB)/obj/sys.o | grep -q '_chk$$' || { \
		echo "check-build: CPPFLAGS ignored (no fortified calls)"; exit 1; }
	@if command -v dpkg-buildflags >/dev/null; then \
		echo "check-build: dpkg-buildflags, -Werror: all and the tests"; \
		$(CB_MAKE) -j2 CI=true CPPFLAGS="$$(dpkg-buildflags --get CPPFLAGS)" \
			CFLAGS="$$(dpkg-buildflags --get CFLAGS)" \
			LDFLAGS="$$(dpkg-buildflags --get LDFLAGS)" \
			all $(TESTS:$(BUILD)/%=$(CB)/%) $(CXX_TESTS:$(BUILD)/%=$(CB)/%) >/dev/null || exit 1; \
	else echo "check-build: no dpkg-buildflags (dpkg-dev), skipped"; fi
	@rm -rf $(CB)
	@echo "check-build: a flags or compiler change rebuilds, no change does not"
	@$(CB_MAKE) CFLAGS="-O2 -g" $(CB)/obj/reserve.o >/dev/null
	@$(CB_MAKE) CFLAGS="-O2 -g" $(CB)/obj/reserve.o | \
		{ ! grep -q -- '-c -o'; } || { echo "check-build: rebuilt without a change"; exit 1; }
	@$(CB_MAKE) CFLAGS="-O1 -g" $(CB)/obj/reserve.o | grep -q -- '-c -o' || \
		{ echo "check-build: CFLAGS change did not rebuild"; exit 1; }
	@if command -v clang >/dev/null; then \
		$(CB_MAKE) CFLAGS="-O1 -g" CC=clang $(CB)/obj/reserve.o | \
		grep -q -- '-c -o' || \
		{ echo "check-build: CC change did not rebuild"; exit 1; }; fi
	@echo "check-build: NO_DEPS=1 fails with the apt-get line"
	@out=$$($(MAKE) --no-print-directory deps NO_DEPS=1 \
		DEPS_PC=cowarena-no-such-package 2>&1); rc=$$?; \
		echo "$$out" | grep -q '^\(sudo \)\{0,1\}apt-get install -y $(DEPS_APT)$$' && \
		[ $$rc -ne 0 ] && ! echo "$$out" | grep -q "^installing" || \
		{ echo "check-build: NO_DEPS=1 gave (exit $$rc):"; echo "$$out"; exit 1; }
	@echo "check-build: version $(VERSION) from the header everywhere"
	@[ "$(VERSION)" != ".." ] || { echo "check-build: no version in the header"; exit 1; }
	@grep -q '^## $(subst .,\.,$(VERSION))\b' CHANGELOG.md || \
		{ echo "check-build: CHANGELOG.md has no entry for $(VERSION)"; exit 1; }
	@grep -q '^Version: $(VERSION)$$' $(BUILD)/cowarena.pc || \
		{ echo "check-build: cowarena.pc has another version"; exit 1; }
	@mkdir -p $(CB)/bump && sed 's/^\(#define COWARENA_VERSION_PATCH\) .*/\1 4242/' \
		include/cowarena.h > $(CB)/bump/cowarena.h
	@$(CC) -I$(CB)/bump -Isrc $(PKG_CFLAGS) -c -o $(CB)/bump/arena.o src/arena.c
	@strings $(CB)/bump/arena.o | grep -qx '$(call version_part,MAJOR)\.$(call version_part,MINOR)\.4242' || \
		{ echo "check-build: cow_version() does not follow the header"; exit 1; }
	@rm -rf $(CB)
	@echo "check-build: OK"

uninstall:
	rm -f $(DESTDIR)$(INCDIR)/cowarena.h $(DESTDIR)$(INCDIR)/cowarena.hpp \
		$(DESTDIR)$(LIBDIR)/libcowarena.a \
		$(DESTDIR)$(LIBDIR)/libcowarena.so* \
		$(DESTDIR)$(LIBDIR)/pkgconfig/cowarena.pc $(DESTDIR)$(BINDIR)/cowarena
	rm -f $(patsubst docs/man/%,$(DESTDIR)$(MANDIR)/man1/%,$(wildcard docs/man/*.1)) \
		$(patsubst docs/man/%,$(DESTDIR)$(MANDIR)/man3/%,$(wildcard docs/man/*.3)) \
		$(patsubst docs/man/%,$(DESTDIR)$(MANDIR)/man7/%,$(wildcard docs/man/*.7))

FORMAT_FILES = $(wildcard include/*.h src/*.c src/*.h src/cli/*.c)
format:
	clang-format -i $(FORMAT_FILES)

format-check:
	clang-format --dry-run --Werror $(FORMAT_FILES)

clean:
	rm -rf build
