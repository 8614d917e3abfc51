#!/usr/bin/env bash
# pgbackup benchmark: dump one database with pgbackup and with the guide's
# `pg_dump | gzip > file` pipeline, at the same compression level, in the same run.
#
# Usage: benches/pgbackup/run.sh [--size-mb N] [--data pgbench|mixed] [--level N] [--drop-db]
#                                [--bin PATH]
#   --size-mb N   approximate database size (default 1000; env PGBACKUP_BENCH_SIZE_MB)
#   --data D      pgbench: `pgbench -i` tables (blank-padded, compress about 50:1; default);
#                 mixed: one table of md5 text, numbers and timestamps (compresses about 2:1,
#                 closer to application data; env PGBACKUP_BENCH_DATA)
#   --level N     gzip level for both sides (default 6, gzip's default)
#   --drop-db     drop the generated database (pgb_bench_<size>mb) at the end; by default it
#                 is kept and reused by the next run (building 1 GB takes a minute or more)
#   --bin PATH    a pgbackup binary (default: build with cargo --profile bench-fast)
# Connection: PGHOST (127.0.0.1), PGPORT (5432), PGUSER (postgres); needs pgbench, pg_dump,
# gzip, GNU time (/usr/bin/time).
#
# stdout: RESULT lines (see BRIEF/benches/run.py) for subject "pgbackup" and reference
# "pg_dump | gzip": wall seconds, CPU seconds (the whole side: pgbackup + its pg_dump child,
# pg_dump + gzip), CPU seconds of the compressing process alone (pgbackup, gzip) and its peak
# RSS. pgbackup's targets: wall and CPU no more than the pipeline's in the same run, own peak
# RSS under 20 MB. Everything else goes to stderr.
set -euo pipefail

SIZE_MB="${PGBACKUP_BENCH_SIZE_MB:-1000}"
DATA="${PGBACKUP_BENCH_DATA:-pgbench}"
LEVEL=6
DROP=0
BIN=""
while [ $# -gt 0 ]; do
  case "$1" in
    --size-mb) SIZE_MB="$2"; shift 2 ;;
    --level) LEVEL="$2"; shift 2 ;;
    --data) DATA="$2"; shift 2 ;;
    --drop-db) DROP=1; shift ;;
    --keep-db) shift ;; # the default now; accepted for old command lines
    --bin) BIN="$2"; shift 2 ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
done
export PGHOST="${PGHOST:-127.0.0.1}" PGPORT="${PGPORT:-5432}" PGUSER="${PGUSER:-postgres}"
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"

for tool in pgbench pg_dump gzip psql; do
  command -v "$tool" >/dev/null || { echo "missing $tool (apt-get install postgresql-client gzip)" >&2; exit 1; }
done
[ -x /usr/bin/time ] || { echo "missing GNU time (apt-get install time)" >&2; exit 1; }
PG_DUMP=$(command -v pg_dump)
# Debian's pg_dump is a wrapper script (pg_wrapper): time the real binary.
REAL_PG_DUMP=$(readlink -f "$PG_DUMP")
if head -c 2 "$REAL_PG_DUMP" | grep -q '#!'; then
  v=$(pg_dump --version | awk '{print $3}'); v=${v%%.*}
  [ -x "/usr/lib/postgresql/$v/bin/pg_dump" ] && REAL_PG_DUMP="/usr/lib/postgresql/$v/bin/pg_dump"
fi
PG_BIN=$(dirname "$REAL_PG_DUMP")

if [ -z "$BIN" ]; then
  (cd "$ROOT" && cargo build -q --profile bench-fast -p pgbackup >&2)
  BIN="${CARGO_TARGET_DIR:-$ROOT/target}/bench-fast/pgbackup"
fi

case "$DATA" in
  pgbench)
    DB="pgb_bench_${SIZE_MB}mb"
    # pgbench scale 1 is about 15 MB on disk (100,000 accounts with their index).
    SCALE=$(( (SIZE_MB + 14) / 15 ))
    if ! psql -XAtqc "SELECT 1 FROM pg_database WHERE datname = '$DB'" postgres | grep -q 1; then
      echo "building $DB with pgbench -i -s $SCALE ..." >&2
      createdb "$DB"
      pgbench -i -q -s "$SCALE" "$DB" >/dev/null 2>&1 || { dropdb --if-exists "$DB"; echo "pgbench -i failed" >&2; exit 1; }
    fi ;;
  mixed)
    DB="pgb_bench_mixed_${SIZE_MB}mb"
    # About 150 bytes per row on disk.
    ROWS=$(( SIZE_MB * 7000 ))
    if ! psql -XAtqc "SELECT 1 FROM pg_database WHERE datname = '$DB'" postgres | grep -q 1; then
      echo "building $DB ($ROWS rows) ..." >&2
      createdb "$DB"
      psql -Xq -v ON_ERROR_STOP=1 -d "$DB" >/dev/null <<SQL || { dropdb --if-exists "$DB"; echo "building $DB failed" >&2; exit 1; }
CREATE TABLE events (id bigint PRIMARY KEY, account int, kind text, payload text,
                     amount numeric(12,2), at timestamptz);
INSERT INTO events
SELECT g, (random() * 100000)::int, (ARRAY['login','order','refund','view'])[1 + g % 4],
       md5(random()::text) || ' ' || md5(g::text), round((random() * 10000)::numeric, 2),
       timestamptz '2024-01-01' + g * interval '1 second'
FROM generate_series(1, $ROWS) g;
SQL
    fi ;;
  *) echo "unknown --data $DATA (pgbench or mixed)" >&2; exit 2 ;;
esac
DBSIZE=$(psql -XAtqc "SELECT pg_size_pretty(pg_database_size('$DB'))" postgres)
WORK=$(mktemp -d)
cleanup() {
  rm -rf "$WORK"
  if [ "$DROP" = 1 ]; then dropdb --if-exists "$DB"; fi
}
trap cleanup EXIT

# pgbackup's tools: the real ones, pg_dump timed by GNU time (the last invocation, the dump,
# writes pgdump.t; the version check at start writes it first and is overwritten).
mkdir "$WORK/bin"
for t in pg_dumpall pg_restore psql; do ln -s "$PG_BIN/$t" "$WORK/bin/$t"; done
cat > "$WORK/bin/pg_dump" <<WRAP
#!/bin/sh
exec /usr/bin/time -f "%U %S %M" -o "$WORK/pgdump.t" "$REAL_PG_DUMP" "\$@"
WRAP
chmod +x "$WORK/bin/pg_dump"

now() { date +%s.%N; }
LOAD=$(cut -d' ' -f1-3 /proc/loadavg)

# 1. The guide's pipeline: pg_dump | gzip -N > file (both timed).
t0=$(now)
/usr/bin/time -f "%U %S %M" -o "$WORK/pd.t" "$REAL_PG_DUMP" --no-password "$DB" \
  | /usr/bin/time -f "%U %S %M" -o "$WORK/gz.t" gzip -"$LEVEL" > "$WORK/pipe.sql.gz"
sync -f "$WORK/pipe.sql.gz" 2>/dev/null || sync
t1=$(now)
read -r pd_u pd_s pd_m < "$WORK/pd.t"
read -r gz_u gz_s gz_m < "$WORK/gz.t"
pipe_size=$(stat -c %s "$WORK/pipe.sql.gz")
rm -f "$WORK/pipe.sql.gz"

# 2. pgbackup --once (dump, gzip, sha256, on-the-fly gzip check, fsync, read-back, manifest).
# Its own peak RSS is VmHWM of its process (a high-water mark), sampled until it exits.
mkdir "$WORK/pgb"
t2=$(now)
/usr/bin/time -f "%U %S %M" -o "$WORK/pb.t" "$BIN" --once --databases "$DB" --backup-dir "$WORK/pgb" \
  --compression-level "$LEVEL" --pg-bin-dir "$WORK/bin" --admin-addr none --log-format json 2> "$WORK/pgb.log" &
TPID=$!
PB_HWM=0
while kill -0 "$TPID" 2>/dev/null; do
  PID=$(pgrep -P "$TPID" | head -n1 || true)
  if [ -n "$PID" ] && [ -r "/proc/$PID/status" ]; then
    h=$(awk '/VmHWM/ {print $2}' "/proc/$PID/status" 2>/dev/null || true)
    [ -n "$h" ] && [ "$h" -gt "$PB_HWM" ] && PB_HWM=$h
  fi
  sleep 0.05
done
wait "$TPID" || { echo "pgbackup failed:" >&2; cat "$WORK/pgb.log" >&2; exit 1; }
t3=$(now)
read -r pb_u pb_s pb_m < "$WORK/pb.t"
read -r pbd_u pbd_s pbd_m < "$WORK/pgdump.t"
pb_file=$(ls "$WORK/pgb"/*.sql.gz)
pb_size=$(stat -c %s "$pb_file")

awk -v db="$DB" -v dbsize="$DBSIZE" -v level="$LEVEL" -v loadavg="$LOAD" \
    -v pw="$(echo "$t1 - $t0" | bc)" -v pdu="$pd_u" -v pds="$pd_s" -v pdm="$pd_m" \
    -v gzu="$gz_u" -v gzs="$gz_s" -v gzm="$gz_m" -v psz="$pipe_size" \
    -v bw="$(echo "$t3 - $t2" | bc)" -v pbu="$pb_u" -v pbs="$pb_s" \
    -v pbdu="$pbd_u" -v pbds="$pbd_s" -v hwm="$PB_HWM" -v bsz="$pb_size" 'BEGIN {
  pcpu = pdu + pds + gzu + gzs; bcpu = pbu + pbs; own = bcpu - pbdu - pbds
  sc = sprintf("dump %s (%s), gzip -%s", db, dbsize, level)
  printf "%s; load average before the run: %s\n", sc, loadavg > "/dev/stderr"
  printf "%-24s %8s %10s %14s %12s %10s\n", "", "wall s", "CPU s all", "CPU s compr.", "peak RSS MB", "output MB" > "/dev/stderr"
  printf "%-24s %8.2f %10.2f %14.2f %12.1f %10.1f\n", "pg_dump | gzip > file", pw, pcpu, gzu+gzs, gzm/1024, psz/1048576 > "/dev/stderr"
  printf "%-24s %8.2f %10.2f %14.2f %12.1f %10.1f\n", "pgbackup --once", bw, bcpu, own, hwm/1024, bsz/1048576 > "/dev/stderr"
  printf "(pg_dump alone: %.2f CPU s in the pipeline, %.2f under pgbackup)\n", pdu+pds, pbdu+pbds > "/dev/stderr"
  r = "RESULT {\"subject\": \"%s\", \"scenario\": \"%s\", \"metric\": \"%s\", \"value\": %.3f, \"unit\": \"%s\", \"better\": \"lower\"%s}\n"
  printf r, "pg_dump | gzip", sc, "wall_seconds", pw, "s", ""
  printf r, "pg_dump | gzip", sc, "cpu_seconds", pcpu, "CPU-s", ""
  printf r, "pg_dump | gzip", sc, "compressor_cpu_seconds", gzu+gzs, "CPU-s", ""
  printf r, "pg_dump | gzip", sc, "compressor_peak_rss_mb", gzm/1024, "MB", ""
  printf r, "pg_dump | gzip", sc, "output_mb", psz/1048576, "MB", ""
  printf r, "pgbackup", sc, "wall_seconds", bw, "s", sprintf(", \"target\": %.3f", pw)
  printf r, "pgbackup", sc, "cpu_seconds", bcpu, "CPU-s", sprintf(", \"target\": %.3f", pcpu)
  printf r, "pgbackup", sc, "compressor_cpu_seconds", own, "CPU-s", sprintf(", \"target\": %.3f", gzu+gzs)
  printf r, "pgbackup", sc, "compressor_peak_rss_mb", hwm/1024, "MB", ", \"target\": 20"
  printf r, "pgbackup", sc, "output_mb", bsz/1048576, "MB", ""
}'
