#!/usr/bin/env bash
# pgbackup benchmark: dump one database with pgbackup and with the guide's
# `pg_dump | gzip > file` pipeline, at the same compression level, in the same run.
#
# Usage: benches/pgbackup/run.sh [--size-mb N] [--level N] [--keep-db] [--bin PATH]
#   --size-mb N   approximate database size to build with pgbench -i (default 1024)
#   --level N     gzip level for both sides (default 6)
#   --keep-db     keep the generated database (named pgb_bench_<size>mb) for another run
#   --bin PATH    a pgbackup binary (default: build with cargo --profile bench-fast)
# Connection: PGHOST (127.0.0.1), PGPORT (5432), PGUSER (postgres); needs pgbench, pg_dump,
# gzip, GNU time (/usr/bin/time). Prints wall time, CPU and peak RSS of each side.
set -euo pipefail

SIZE_MB=1024
LEVEL=6
KEEP=0
BIN=""
while [ $# -gt 0 ]; do
  case "$1" in
    --size-mb) SIZE_MB="$2"; shift 2 ;;
    --level) LEVEL="$2"; shift 2 ;;
    --keep-db) KEEP=1; shift ;;
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

if [ -z "$BIN" ]; then
  (cd "$ROOT" && cargo build -q --profile bench-fast -p pgbackup)
  BIN="${CARGO_TARGET_DIR:-$ROOT/target}/bench-fast/pgbackup"
fi

DB="pgb_bench_${SIZE_MB}mb"
# pgbench scale 1 is about 15 MB on disk (100,000 accounts with their index).
SCALE=$(( (SIZE_MB + 14) / 15 ))
if ! psql -XAtqc "SELECT 1 FROM pg_database WHERE datname = '$DB'" postgres | grep -q 1; then
  echo "building $DB with pgbench -i -s $SCALE ..."
  createdb "$DB"
  pgbench -i -q -s "$SCALE" "$DB" >/dev/null 2>&1
fi
DBSIZE=$(psql -XAtqc "SELECT pg_size_pretty(pg_database_size('$DB'))" postgres)
WORK=$(mktemp -d)
cleanup() {
  rm -rf "$WORK"
  if [ "$KEEP" = 0 ]; then dropdb --if-exists "$DB"; fi
}
trap cleanup EXIT

now() { date +%s.%N; }

# 1. The guide's pipeline: pg_dump | gzip -N > file (both timed).
t0=$(now)
/usr/bin/time -f "%U %S %M" -o "$WORK/pd.t" pg_dump --no-password "$DB" \
  | /usr/bin/time -f "%U %S %M" -o "$WORK/gz.t" gzip -"$LEVEL" > "$WORK/pipe.sql.gz"
t1=$(now)
read -r pd_u pd_s pd_m < "$WORK/pd.t"
read -r gz_u gz_s gz_m < "$WORK/gz.t"
pipe_size=$(stat -c %s "$WORK/pipe.sql.gz")

# 2. pgbackup --once (dump, gzip, sha256, fsync, gzip verification read, manifest).
# Its own peak RSS is VmHWM of its process, sampled until it exits (pg_dump is a child).
mkdir "$WORK/pgb"
t2=$(now)
/usr/bin/time -f "%U %S %M" -o "$WORK/pb.t" "$BIN" --once --databases "$DB" --backup-dir "$WORK/pgb" \
  --compression-level "$LEVEL" --admin-addr none --log-format json 2> "$WORK/pgb.log" &
TPID=$!
PB_HWM=0; PB_CPU=0
while kill -0 "$TPID" 2>/dev/null; do
  PID=$(pgrep -P "$TPID" -x pgbackup || true)
  if [ -n "$PID" ] && [ -r "/proc/$PID/status" ]; then
    h=$(awk '/VmHWM/ {print $2}' "/proc/$PID/status" 2>/dev/null || echo 0)
    c=$(awk '{print $14 + $15}' "/proc/$PID/stat" 2>/dev/null || echo 0)
    [ -n "$h" ] && [ "$h" -gt "$PB_HWM" ] && PB_HWM=$h
    [ -n "$c" ] && [ "$c" -gt "$PB_CPU" ] && PB_CPU=$c
  fi
  sleep 0.05
done
wait "$TPID" || { echo "pgbackup failed:"; cat "$WORK/pgb.log"; exit 1; }
t3=$(now)
read -r pb_u pb_s pb_m < "$WORK/pb.t"
pb_file=$(ls "$WORK/pgb"/*.sql.gz)
pb_size=$(stat -c %s "$pb_file")
TICK=$(getconf CLK_TCK)

awk -v db="$DB" -v dbsize="$DBSIZE" -v level="$LEVEL" \
    -v pw="$(echo "$t1 - $t0" | bc)" -v pdu="$pd_u" -v pds="$pd_s" -v pdm="$pd_m" \
    -v gzu="$gz_u" -v gzs="$gz_s" -v gzm="$gz_m" -v psz="$pipe_size" \
    -v bw="$(echo "$t3 - $t2" | bc)" -v pbu="$pb_u" -v pbs="$pb_s" -v pbm="$pb_m" \
    -v hwm="$PB_HWM" -v pcpu="$PB_CPU" -v tick="$TICK" -v bsz="$pb_size" 'BEGIN {
  printf "database %s (%s), gzip level %s\n\n", db, dbsize, level
  printf "%-34s %9s %12s %14s %12s\n", "", "wall s", "CPU s (all)", "CPU s (compr.)", "peak RSS MB"
  printf "%-34s %9.2f %12.2f %14.2f %12.1f\n", "pg_dump | gzip > file", pw, pdu+pds+gzu+gzs, gzu+gzs, gzm/1024
  printf "%-34s %9.2f %12.2f %14.2f %12.1f\n", "pgbackup --once", bw, pbu+pbs, pcpu/tick, hwm/1024
  printf "\npeak RSS: gzip process vs pgbackup process (VmHWM); pg_dump itself peaked at %.1f MB\n", pdm/1024
  printf "CPU (compr.): gzip alone vs pgbackup alone (gzip + sha256 + verification read of the file)\n"
  printf "output: pipeline %.1f MB, pgbackup %.1f MB\n", psz/1048576, bsz/1048576
}'
