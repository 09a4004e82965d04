#!/usr/bin/env bash
# Builds GNU grep and SQLite's sqlite3 shell as static, stripped x86-64 programs from Debian's
# source packages: ordinary third-party programs for zerofarm's sandbox, which runs only
# static programs that pass its validator and gives them nothing but their open descriptors
# (stdin, stdout, stderr): no file system, no /dev, no /proc.
#
#   grep     configured with LDFLAGS=-static, without NLS (no message catalogs to open) and
#            without -P (Perl regular expressions would need a static PCRE2, which Debian
#            does not ship as a build dependency here).
#   sqlite3  the amalgamation (sqlite3.c, shell.c) generated from the Debian source tree,
#            compiled with gcc -O2 -static: no readline, zlib, Tcl, threads or extension
#            loading, temporary tables in memory. Two small patches to shell.c.in, below.
#
# The result is cached outside the source tree:
#   ${ZEROFARM_CACHE:-$HOME/.cache/zerofarm}/static-tools/<key>/bin/{grep,sqlite3}
# where <key> hashes the two source package versions, the configure and compile flags and
# this script's own text. A complete bin directory is reused as is (only its path is printed);
# anything else is rebuilt. The bin directory's path is the only output on stdout; progress
# and timings go to stderr, and the timings are also kept in <key>/build-times.txt.
#
# Needs deb-src entries for the Debian release in the apt sources, and the packages
# build-essential, dpkg-dev and tcl (tclsh generates the amalgamation) (scripts/setup.sh).
#
# Environment: ZEROFARM_CACHE (cache root), ZEROFARM_BUILD_JOBS (parallel jobs, default 2),
# ZEROFARM_BUILD_NICE (nice level of the compiles, default 10).
set -euo pipefail

jobs=${ZEROFARM_BUILD_JOBS:-2}
nice_level=${ZEROFARM_BUILD_NICE:-10}
cache_root=${ZEROFARM_CACHE:-$HOME/.cache/zerofarm}/static-tools
script_path=$(readlink -f "${BASH_SOURCE[0]}")

log() { echo "build-static-tools: $*" >&2; }
die() { log "error: $*"; exit 1; }

for tool in apt-get dpkg-source make cc strip readelf patch tclsh sha256sum flock; do
  command -v "$tool" >/dev/null || die "'$tool' is missing (run scripts/setup.sh)"
done

# The .dsc apt-get would fetch for a source package; its name carries the version.
source_dsc() {
  local dsc
  dsc=$(apt-get source --print-uris -qq "$1" 2>/dev/null |
        awk '{ gsub(/'\''/, "", $1) } $2 ~ /\.dsc$/ { print $2 }' | tail -n 1)
  [ -n "$dsc" ] || die "apt has no source package '$1': add a deb-src entry for the Debian
release to the apt sources (same mirror as the deb entries) and run apt-get update"
  echo "$dsc"
}
dsc_version() { local v=${1%.dsc}; echo "${v#*_}"; }

grep_dsc=$(source_dsc grep)
sqlite_dsc=$(source_dsc sqlite3)

grep_flags=(
  --disable-nls --disable-perl-regexp
  CFLAGS=-O2 LDFLAGS=-static
)

# Only to generate the amalgamation (sqlite3.c, shell.c); nothing of this build is linked.
sqlite_configure_flags=(
  --disable-tcl --disable-readline --disable-editline --disable-load-extension
  --disable-threadsafe
)

sqlite_cflags=(
  -O2 -static
  -DSQLITE_THREADSAFE=0 -DSQLITE_OMIT_LOAD_EXTENSION -DSQLITE_OMIT_POPEN
  # Temporary tables and sort spills stay in memory: there is no directory to put files in.
  -DSQLITE_TEMP_STORE=3
  -DSQLITE_DEFAULT_MEMSTATUS=0 -DSQLITE_ENABLE_MATH_FUNCTIONS
  # See the patch below.
  -DSQLITE_SHELL_HOME_FROM_ENV
)

# The patches to sqlite3's shell (src/shell.c.in of SQLite 3.40.1), applied after Debian's:
#
# 1. `.import stdin TABLE` reads the already open standard input. Upstream's .import only
#    opens a path (fopen) or runs a command ("|cmd", popen); in the sandbox neither exists,
#    so CSV on stdin could not be imported at all. The SQL itself then comes from the
#    command line (-cmd and the trailing SQL argument), never from stdin.
# 2. With -DSQLITE_SHELL_HOME_FROM_ENV the home directory is $HOME only, never getpwuid(),
#    and without one ~/.sqliterc is skipped silently. In a static program getpwuid() links
#    glibc's NSS, which loads shared modules with dlopen() at run time: useless without a
#    passwd file, and its code ends the text segment in a way the validator cannot follow
#    when the program is stripped (a call to a function that does not return, then the next
#    section's padding). A sandboxed program has no home, so upstream's warning that it
#    cannot read ~/.sqliterc would open every job's stderr.
read -r -d '' sqlite_patch <<'EOF' || true
--- a/src/shell.c.in
+++ b/src/shell.c.in
@@ -11198,7 +11198,8 @@
   if( home_dir ) return home_dir;
 
 #if !defined(_WIN32) && !defined(WIN32) && !defined(_WIN32_WCE) \
-     && !defined(__RTP__) && !defined(_WRS_KERNEL)
+     && !defined(__RTP__) && !defined(_WRS_KERNEL) \
+     && !defined(SQLITE_SHELL_HOME_FROM_ENV)
   {
     struct passwd *pwent;
     uid_t uid = getuid();
@@ -11274,5 +11275,7 @@
     if( home_dir==0 ){
+#ifndef SQLITE_SHELL_HOME_FROM_ENV
       raw_printf(stderr, "-- warning: cannot find home directory;"
                       " cannot read ~/.sqliterc\n");
+#endif
       return;
     }
--- a/src/shell.c.in
+++ b/src/shell.c.in
@@ -8497,6 +8497,12 @@
       sCtx.zFile = "<pipe>";
       sCtx.xCloser = pclose;
 #endif
+    }else if( cli_strcmp(sCtx.zFile,"stdin")==0 ){
+      /* zerofarm: import from the already open standard input (a sandboxed
+      ** program has no file system to open a path in). Not closed after. */
+      sCtx.in = stdin;
+      sCtx.zFile = "<stdin>";
+      sCtx.xCloser = 0;
     }else{
       sCtx.in = fopen(sCtx.zFile, "rb");
       sCtx.xCloser = fclose;
EOF

key=$(
  {
    echo "grep $(dsc_version "$grep_dsc")"
    echo "sqlite3 $(dsc_version "$sqlite_dsc")"
    printf '%s\n' "${grep_flags[@]}" "${sqlite_configure_flags[@]}" "${sqlite_cflags[@]}"
    cat "$script_path"
  } | sha256sum | cut -c1-16
)
work=$cache_root/$key
bin=$work/bin

if [ -f "$bin/.complete" ]; then
  echo "$bin"
  exit 0
fi

# One build per key at a time; a second caller waits, then finds the finished programs.
mkdir -p "$work"
exec 9>"$work/.lock"
flock 9
if [ -f "$bin/.complete" ]; then
  echo "$bin"
  exit 0
fi

# Everything below, the compiles above all, runs at a lower priority.
renice -n "$nice_level" -p $$ >/dev/null

log "building into $work (grep $(dsc_version "$grep_dsc"), sqlite3 $(dsc_version "$sqlite_dsc"))"
mkdir -p "$work/src"
rm -rf "$bin"
mkdir -p "$bin"
: >"$work/build-times.txt"

# Downloads (once) and unpacks (fresh, with Debian's patches applied) one source package.
unpack() {
  local pkg=$1 dsc=$2 dir=$work/src/$1
  if [ ! -f "$work/src/$dsc" ]; then
    (cd "$work/src" && apt-get source --download-only -qq "$pkg" >&2)
  fi
  [ -f "$work/src/$dsc" ] || die "apt-get source $pkg did not fetch $dsc"
  rm -rf "$dir"
  (cd "$work/src" && dpkg-source --no-check -x "$dsc" "$pkg" >/dev/null)
  echo "$dir"
}

# Runs a build step, recording its wall time and the CPU time (user + system) of every
# process it ran.
timed() {
  local name=$1; shift
  local t0 t1 c0 c1 line
  t0=$(date +%s.%N)
  c0=$(awk '{ print $16 + $17 }' /proc/$$/stat)
  "$@"
  t1=$(date +%s.%N)
  c1=$(awk '{ print $16 + $17 }' /proc/$$/stat)
  line=$(awk -v n="$name" -v t0="$t0" -v t1="$t1" -v c="$((c1 - c0))" -v hz="$(getconf CLK_TCK)" \
             'BEGIN { printf "%s: wall %.1f s, cpu %.1f s", n, t1 - t0, c / hz }')
  echo "$line" >>"$work/build-times.txt"
  log "$line"
}

build_grep() (
  cd "$1"
  # Debian's patches touch src/Makefile.am and gnulib-tests/gnulib.mk (for the egrep/fgrep
  # wrappers and the tests, neither built here), which would make `make` rerun automake.
  # The generated files shipped in the tarball stay current: newer than their inputs.
  touch aclocal.m4
  touch configure config.hin
  find . -name Makefile.in -exec touch {} +
  ./configure "${grep_flags[@]}" >&2
  make -j"$jobs" -C lib >&2
  make -j"$jobs" -C src grep >&2
  strip -o "$bin/grep" src/grep
)

build_sqlite3() (
  cd "$1"
  printf '%s\n' "$sqlite_patch" | patch -p1 >&2
  mkdir -p bld
  cd bld
  ../configure "${sqlite_configure_flags[@]}" >&2
  make sqlite3.c shell.c >&2
  grep -q 'zerofarm: import from the already open standard input' shell.c ||
    die "shell.c lacks the .import stdin patch"
  # The library and the shell compile in parallel; the amalgamation takes most of the time.
  cc "${sqlite_cflags[@]}" -c sqlite3.c -o sqlite3.o &
  cc "${sqlite_cflags[@]}" -c shell.c -o shell.o
  wait $! || die "compiling sqlite3.c failed"
  cc -static shell.o sqlite3.o -lm -o sqlite3
  strip -o "$bin/sqlite3" sqlite3
)

grep_dir=$(unpack grep "$grep_dsc")
sqlite_dir=$(unpack sqlite3 "$sqlite_dsc")

timed grep build_grep "$grep_dir"
timed sqlite3 build_sqlite3 "$sqlite_dir"

for program in grep sqlite3; do
  [ -x "$bin/$program" ] || die "$program was not built"
  # A static program has no program interpreter.
  headers=$(LC_ALL=C readelf -lW "$bin/$program")
  [[ $headers != *INTERP* ]] || die "$program is not static"
done
{
  echo "grep $(dsc_version "$grep_dsc")"
  echo "sqlite3 $(dsc_version "$sqlite_dsc")"
  cat "$work/build-times.txt"
} >"$bin/.complete"
echo "$bin"
