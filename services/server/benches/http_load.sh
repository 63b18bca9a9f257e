#!/usr/bin/env bash
# HTTP load benchmark of the iotcane gateway (and, optionally, of a peer TD Directory).
#
# usage: services/server/benches/http_load.sh [options]
#
# What it does, for our service:
#   1. cargo build --release --locked -p iotcane-server (honours CARGO_TARGET_DIR),
#   2. makes a temporary data dir, writes N Thing Descriptions (urn:dev:seed-0 ..
#      urn:dev:seed-<N-1>, titles "Seed <i>") as NDJSON and loads them with `iotcane import`,
#   3. starts `iotcane serve` on a free loopback port and takes the first admin key it
#      prints (sent as `Authorization: Bearer <key>`; --no-auth switches keys off instead),
#   4. checks every scenario once with curl, then runs each one RUNS times with wrk
#      (--latency) and prints every run, then the median req/s and median p99 per scenario,
#      the server's CPU use while loaded and its resident memory (RSS).
# Scenarios (--scenarios, comma separated; run in this order, put last because it grows
# the store):
#   get      GET /things/{id}, ids drawn at random from the seeded ones
#   sparql   POST /search/sparql (application/sparql-query): a lookup by type and name
#            with FILTER(?n = "Seed 4242"), matching exactly one device (checked first)
#   sparql-bound  the same lookup with the name bound in the pattern instead of a FILTER
#   native   GET /api/v1/devices/{id}, ids drawn at random
#   healthz  GET /healthz: the ceiling of the HTTP stack (plus wrk) on this machine
#   put      PUT /things/{id} of new Things (journaled), one new id per request
# With --peer BASE_URL --peer-ids FILE the get, sparql and put scenarios also run against
# another WoT TD Directory (no auth header) and a ratio column is printed. The peer's
# SPARQL query uses the TD ontology (td:Thing, td:title in named graphs) since it cannot
# see our model; override it with --peer-sparql.
#
# options:
#   -n, --things N         TDs to seed (default 100000)
#   -d, --duration D       wrk duration per run (default 20s)
#   -c, --connections C    wrk connections (default 32)
#   -t, --threads T        wrk threads (default 2)
#   -r, --runs R           runs per scenario (default 3)
#   -s, --scenarios LIST   default get,sparql,sparql-bound,native,put (healthz on request)
#   --sparql QUERY         our SPARQL query for the sparql scenario
#   --no-auth              start the server with --no-auth and send no key
#   --bin PATH             use this iotcane binary, skip the build
#   --data-dir DIR         use (and keep) DIR; if it already holds a journal, skip the
#                          seeding and make a fresh admin key with `iotcane keys create`
#   --keep                 keep the temporary data dir
#   --peer BASE_URL        also load this TD Directory, e.g. http://127.0.0.1:5000
#   --peer-ids FILE        ids (one per line) stored in the peer, for its get scenario
#   --peer-connections C   wrk connections against the peer (default: --connections)
#   --peer-sparql QUERY    the peer's SPARQL query for the sparql scenario
#   --peer-only            skip our service (no build, no server)
# env: WRK_TIMEOUT (wrk --timeout, default 30s), IOTCANE_LOG_LEVEL (default warn); other
# IOTCANE_* settings (e.g. IOTCANE_SQLITE_DURABILITY=normal) reach the server as usual.
# Before each of our runs the script waits (up to 60 s) for the server to go idle, so work
# left over from the previous run (e.g. SPARQL queries still evaluating after wrk stopped)
# does not count against the next one.
#
# Needs wrk (apt-get install wrk), curl and awk. Example:
#   CARGO_TARGET_DIR=/tmp/bench-target services/server/benches/http_load.sh -n 100000 \
#     --peer http://127.0.0.1:5000 --peer-ids peer-ids.txt --peer-connections 4
# Both wrk and the server run on this machine and share its cores: on a small box wrk's
# own CPU is part of what is measured (the healthz scenario shows how much).
set -euo pipefail

usage() { awk 'NR>1 && /^#/ {sub(/^# ?/, ""); print; next} NR>1 {exit}' "$0" >&2; exit 2; }

HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../../.." && pwd)
LUA_DIR=$HERE/http_load

N=100000 DURATION=20s CONNS=32 THREADS=2 RUNS=3 SCENARIOS=get,sparql,sparql-bound,native,put
SPARQL='' NO_AUTH=0 BIN='' DATA_DIR='' KEEP=0
PEER='' PEER_IDS='' PEER_CONNS='' PEER_SPARQL='' PEER_ONLY=0
while [ $# -gt 0 ]; do
  case $1 in
    -n|--things) N=$2; shift 2 ;;
    -d|--duration) DURATION=$2; shift 2 ;;
    -c|--connections) CONNS=$2; shift 2 ;;
    -t|--threads) THREADS=$2; shift 2 ;;
    -r|--runs) RUNS=$2; shift 2 ;;
    -s|--scenarios) SCENARIOS=$2; shift 2 ;;
    --sparql) SPARQL=$2; shift 2 ;;
    --no-auth) NO_AUTH=1; shift ;;
    --bin) BIN=$2; shift 2 ;;
    --data-dir) DATA_DIR=$2; shift 2 ;;
    --keep) KEEP=1; shift ;;
    --peer) PEER=${2%/}; shift 2 ;;
    --peer-ids) PEER_IDS=$2; shift 2 ;;
    --peer-connections) PEER_CONNS=$2; shift 2 ;;
    --peer-sparql) PEER_SPARQL=$2; shift 2 ;;
    --peer-only) PEER_ONLY=1; shift ;;
    -h|--help) usage ;;
    *) echo "unknown option: $1" >&2; usage ;;
  esac
done
PEER_CONNS=${PEER_CONNS:-$CONNS}
WRK_TIMEOUT=${WRK_TIMEOUT:-30s}
export IOTCANE_LOG_LEVEL=${IOTCANE_LOG_LEVEL:-warn}
export HTTP_LOAD_LUA_DIR=$LUA_DIR

for tool in wrk curl awk; do
  command -v "$tool" >/dev/null || { echo "$tool is required (apt-get install $tool)" >&2; exit 1; }
done
[ -z "$PEER" ] || [ -n "$PEER_IDS" ] || { echo "--peer needs --peer-ids FILE" >&2; exit 2; }
[ "$PEER_ONLY" = 0 ] || [ -n "$PEER" ] || { echo "--peer-only needs --peer" >&2; exit 2; }
[ -z "$PEER_IDS" ] || PEER_IDS=$(readlink -f "$PEER_IDS")
IFS=, read -r -a SCEN_LIST <<< "$SCENARIOS"
for s in "${SCEN_LIST[@]}"; do
  case $s in get|sparql|sparql-bound|native|healthz|put) ;; *) echo "unknown scenario: $s" >&2; exit 2 ;; esac
done

WORK=$(mktemp -d "${TMPDIR:-/tmp}/iotcane-http-load.XXXXXX")
SERVER_PID=''
cleanup() {
  if [ -n "$SERVER_PID" ] && kill -0 "$SERVER_PID" 2>/dev/null; then
    kill -TERM "$SERVER_PID" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$SERVER_PID" 2>/dev/null || break; sleep 0.2; done
    kill -KILL "$SERVER_PID" 2>/dev/null || true
  fi
  if [ "$KEEP" = 1 ]; then echo "kept $WORK" >&2; else rm -rf "$WORK"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

log() { printf '%s\n' "$*" >&2; }

# --- helpers ---------------------------------------------------------------------------

free_port() {
  if command -v python3 >/dev/null; then
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
    return
  fi
  local p
  while :; do
    p=$(( 20000 + RANDOM % 40000 ))
    (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null || { echo "$p"; return; }
  done
}

# Converts a wrk duration (123.45us, 1.2ms, 3.4s, 1.5m) to milliseconds.
to_ms() {
  awk -v v="$1" 'BEGIN {
    n = v + 0; u = v; sub(/^[0-9.]+/, "", u)
    if (u == "us") n /= 1000; else if (u == "s") n *= 1000; else if (u == "m") n *= 60000
    printf "%.2f", n }'
}

median() { # values...
  printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END { if (NR) print v[int((NR + 1) / 2)] }'
}

rss_mb() { # pid field (VmRSS | VmHWM)
  awk -v f="$2:" '$1 == f { printf "%.0f", $2 / 1024 }' "/proc/$1/status" 2>/dev/null || echo '?'
}

cpu_ticks() { # pid -> utime + stime
  awk '{ print $14 + $15 }' "/proc/$1/stat" 2>/dev/null || echo 0
}

# Waits until the server uses < 10% of a core over half a second (at most 60 s).
settle() {
  local hz a b i
  hz=$(getconf CLK_TCK)
  for i in $(seq 120); do
    a=$(cpu_ticks "$SERVER_PID"); sleep 0.5; b=$(cpu_ticks "$SERVER_PID")
    [ $(( (b - a) * 20 )) -lt "$hz" ] && return
  done
  log "  (server still busy after 60 s)"
}

box_ticks() { # -> "busy total" over all cores
  awk '/^cpu / { t = 0; for (i = 2; i <= NF; i++) t += $i; print t - $5 - $6, t }' /proc/stat
}

count_rows() { # SPARQL JSON results on stdin -> number of rows (without jq: bound terms)
  if command -v jq >/dev/null; then jq '.results.bindings | length'
  else grep -o '"type" *:' | wc -l; fi
}

# --- one wrk run -------------------------------------------------------------------------

declare -A RPS P99 ERRS CPU
# run_wrk KEY ORIGIN CONNS HEADER SCRIPT ARGS...: appends the run's figures to RPS[KEY] etc.
run_wrk() {
  local key=$1 origin=$2 conns=$3 header=$4 script=$5; shift 5
  local out hdr=() t0 t1 b0 b1
  [ -n "$header" ] && hdr=(-H "$header")
  [ -n "$SERVER_PID" ] && [[ $key == ours:* ]] && t0=$(cpu_ticks "$SERVER_PID")
  read -r b0 bt0 < <(box_ticks)
  out=$(wrk -t"$(( THREADS < conns ? THREADS : conns ))" -c"$conns" -d"$DURATION" --timeout "$WRK_TIMEOUT" --latency \
        "${hdr[@]}" -s "$LUA_DIR/$script" "$origin/" -- "$@" 2>&1) || {
    printf '%s\n' "$out" >&2; echo "wrk failed" >&2; exit 1; }
  read -r b1 bt1 < <(box_ticks)
  local rps p99 non2xx sockerr reqs secs cpu=''
  rps=$(printf '%s\n' "$out" | awk '/^Requests\/sec:/ { print $2 }')
  p99=$(to_ms "$(printf '%s\n' "$out" | awk '$1 == "99%" { print $2 }')")
  non2xx=$(printf '%s\n' "$out" | awk '/Non-2xx or 3xx responses:/ { print $NF }')
  sockerr=$(printf '%s\n' "$out" | awk '/Socket errors:/ {
              for (i = 1; i <= NF; i++) if ($i ~ /^[0-9]+,?$/) n += $i; print n + 0 }')
  reqs=$(printf '%s\n' "$out" | awk '/requests in/ { print $1 }')
  secs=$(printf '%s\n' "$out" | awk '/requests in/ { sub(/s,$/, "", $4); print $4 }')
  if [ -n "${t0:-}" ]; then
    t1=$(cpu_ticks "$SERVER_PID")
    cpu=$(awk -v d=$(( t1 - t0 )) -v hz="$(getconf CLK_TCK)" -v s="$secs" \
          'BEGIN { if (s > 0) printf "%.0f", 100 * d / hz / s }')
  fi
  local box
  box=$(awk -v b=$(( b1 - b0 )) -v t=$(( bt1 - bt0 )) -v n="$(nproc)" \
        'BEGIN { if (t > 0) printf "%.0f", 100 * n * b / t }')
  local errs=$(( ${non2xx:-0} + ${sockerr:-0} ))
  [ "${reqs:-0}" = 0 ] && p99=inf   # no response at all within the run
  # wrk's req/s counts every response; the figures below count the 2xx/3xx ones only
  local ok
  ok=$(awk -v r="${reqs:-0}" -v e="${non2xx:-0}" -v s="$secs" 'BEGIN { printf "%.1f", (s > 0 ? (r - e) / s : 0) }')
  printf '  %-17s c=%-3s %9s ok req/s (all %s)  p99 %8s ms  %7s reqs  errors %s  server cpu %s%%  box cpu %s%%\n' \
    "$key" "$conns" "$ok" "$rps" "$p99" "$reqs" "$errs" "${cpu:--}" "$box"
  if [ "$errs" != 0 ]; then printf '%s\n' "$out" | sed 's/^/      | /' | tail -6; fi
  RPS[$key]+="$ok " P99[$key]+="$p99 " ERRS[$key]=$(( ${ERRS[$key]:-0} + errs ))
  CPU[$key]+="${cpu:-} "
}

# run_scenario TARGET(ours|peer) SCENARIO
run_scenario() {
  local target=$1 scen=$2 origin prefix header conns ids query bound i
  if [ "$target" = ours ]; then
    origin=$OURS prefix='' header=$AUTH_HEADER conns=$CONNS ids=$IDS query=$SPARQL bound=$SPARQL_BOUND
  else
    origin=$PEER_ORIGIN prefix=$PEER_PREFIX header='' conns=$PEER_CONNS ids=$PEER_IDS
    query=$PEER_SPARQL bound=$PEER_SPARQL_BOUND
  fi
  for i in $(seq "$RUNS"); do
    if [ "$target" = ours ]; then settle; else sleep 1; fi
    case $scen in
      get) run_wrk "$target:get" "$origin" "$conns" "$header" get_ids.lua \
             "$ids" "$prefix/things/" application/td+json ;;
      native) run_wrk "$target:native" "$origin" "$conns" "$header" get_ids.lua \
             "$ids" "$prefix/api/v1/devices/" application/json ;;
      sparql) run_wrk "$target:sparql" "$origin" "$conns" "$header" sparql.lua "$query" "$prefix" ;;
      sparql-bound) run_wrk "$target:sparql-bound" "$origin" "$conns" "$header" sparql.lua \
             "$bound" "$prefix" ;;
      healthz) run_wrk "$target:healthz" "$origin" "$conns" "$header" fixed_get.lua "$prefix/healthz" ;;
      put) run_wrk "$target:put" "$origin" "$conns" "$header" put_things.lua \
             "$(date +%s)r$i" "$prefix" ;;
    esac
  done
  if [ "$target" = ours ] && [ -n "$SERVER_PID" ]; then
    RSS_AFTER[$scen]=$(rss_mb "$SERVER_PID" VmRSS)
  fi
}

# check URL_PATH EXPECTED_CODE [curl args...]: one request, fails loudly on another status
check() {
  local url=$1 want=$2; shift 2
  local code
  code=$(curl -s -o "$WORK/check.out" -w '%{http_code}' -m 60 "$@" "$url") || true
  if [ "$code" != "$want" ]; then
    log "check failed: $url answered $code, expected $want:"; head -c 600 "$WORK/check.out" >&2; log ''
    exit 1
  fi
}

sparql_rows() { # origin prefix header query -> row count
  local hdr=()
  [ -n "$3" ] && hdr=(-H "$3")
  curl -s -m 60 "${hdr[@]}" -H 'Content-Type: application/sparql-query' \
    -H 'Accept: application/sparql-results+json' --data-binary "$4" "$1$2/search/sparql" | count_rows
}

enc() { printf '%s' "$1" | sed 's/:/%3A/g'; }

# --- our service -------------------------------------------------------------------------

declare -A RSS_AFTER
OURS='' AUTH_HEADER='' IDS=$WORK/ids.txt
if [ "$PEER_ONLY" = 0 ]; then
  if [ -z "$BIN" ]; then
    log "building: cargo build --release --locked -p iotcane-server (CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target})"
    (cd "$ROOT" && cargo build --release --locked -p iotcane-server)
    BIN=${CARGO_TARGET_DIR:-$ROOT/target}/release/iotcane
  fi
  [ -x "$BIN" ] || { echo "no binary at $BIN" >&2; exit 1; }

  if [ -n "$DATA_DIR" ]; then mkdir -p "$DATA_DIR"; KEEP_DATA=1; else DATA_DIR=$WORK/data; KEEP_DATA=0; fi
  awk -v n="$N" 'BEGIN { for (i = 0; i < n; i++) printf "urn:dev:seed-%d\n", i }' > "$IDS"
  FRESH=1
  if [ -e "$DATA_DIR/iotcane.db" ]; then
    FRESH=0
    log "reusing $DATA_DIR (not seeding; it should hold urn:dev:seed-0..$((N - 1)))"
  else
    log "generating $N Thing Descriptions"
    awk -v n="$N" 'BEGIN {
      for (i = 0; i < n; i++)
        printf "{\"@context\":\"https://www.w3.org/2022/wot/td/v1.1\",\"id\":\"urn:dev:seed-%d\",\"title\":\"Seed %d\",\"securityDefinitions\":{\"nosec_sc\":{\"scheme\":\"nosec\"}},\"security\":\"nosec_sc\",\"properties\":{\"temp\":{\"type\":\"number\",\"forms\":[{\"href\":\"http://example.com/seed/%d/temp\"}]}}}\n", i, i, i
    }' > "$WORK/things.ndjson"
    log "importing: iotcane --data-dir $DATA_DIR import --tenant default --json things.ndjson"
    t0=$(date +%s.%N)
    "$BIN" --data-dir "$DATA_DIR" import --tenant default --json "$WORK/things.ndjson" > "$WORK/import.log"
    t1=$(date +%s.%N)
    IMPORT_SECS=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", b - a }')
    log "imported $N TDs in ${IMPORT_SECS}s ($(awk -v n="$N" -v s="$IMPORT_SECS" 'BEGIN { printf "%.0f", n / s }')/s)"
    rm -f "$WORK/things.ndjson"
  fi

  PORT=$(free_port)
  OURS=http://127.0.0.1:$PORT
  serve_args=(--data-dir "$DATA_DIR" --http-addr "127.0.0.1:$PORT")
  [ "$NO_AUTH" = 1 ] && serve_args+=(--no-auth)
  if [ "$NO_AUTH" = 0 ] && [ "$FRESH" = 0 ]; then
    KEY=$("$BIN" --data-dir "$DATA_DIR" keys create --tenant default --role admin --name http-load 2>/dev/null)
  fi
  log "starting: iotcane serve ${serve_args[*]}"
  t0=$(date +%s.%N)
  "$BIN" serve "${serve_args[@]}" > "$WORK/serve.out" 2> "$WORK/serve.err" &
  SERVER_PID=$!
  for _ in $(seq 600); do
    curl -s -o /dev/null -m 2 "$OURS/healthz" && break
    kill -0 "$SERVER_PID" 2>/dev/null || { log "iotcane serve exited:"; cat "$WORK/serve.err" >&2; exit 1; }
    sleep 0.2
  done
  # ready = the graph is loaded, not only the socket bound
  for _ in $(seq 600); do
    [ "$(curl -s -o /dev/null -w '%{http_code}' -m 2 "$OURS/readyz")" = 200 ] && break
    sleep 0.2
  done
  t1=$(date +%s.%N)
  log "serving on $OURS (pid $SERVER_PID) after $(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", b - a }')s"
  if [ "$NO_AUTH" = 0 ]; then
    if [ "$FRESH" = 1 ]; then
      for _ in $(seq 50); do
        KEY=$(grep -o 'ick_[A-Za-z0-9_]*' "$WORK/serve.err" | head -1 || true)
        [ -n "$KEY" ] && break; sleep 0.1
      done
    fi
    [ -n "${KEY:-}" ] || { log "no admin key printed by iotcane serve:"; cat "$WORK/serve.err" >&2; exit 1; }
    AUTH_HEADER="Authorization: Bearer $KEY"
  fi
  RSS_IDLE=$(rss_mb "$SERVER_PID" VmRSS)

  NEEDLE=$(( N > 4242 ? 4242 : N / 2 ))
  if [ -z "$SPARQL" ]; then
    SPARQL="SELECT ?s WHERE { ?s a <https://w3id.org/iotcane/ontology#Device> ; <https://schema.org/name> ?n . FILTER(?n = \"Seed $NEEDLE\") }"
  fi
  SPARQL_BOUND="SELECT ?s WHERE { ?s a <https://w3id.org/iotcane/ontology#Device> ; <https://schema.org/name> \"Seed $NEEDLE\" }"
  # one request per scenario: right status, and the SPARQL lookup finds exactly one device
  H=(); [ -n "$AUTH_HEADER" ] && H=(-H "$AUTH_HEADER")
  MID=$(sed -n "$(( (N + 1) / 2 ))p" "$IDS")
  check "$OURS/things/$(enc "$MID")" 200 "${H[@]}"
  check "$OURS/api/v1/devices/$(enc "$MID")" 200 "${H[@]}"
  check "$OURS/healthz" 200
  rows=$(sparql_rows "$OURS" '' "$AUTH_HEADER" "$SPARQL_BOUND")
  [ "$rows" = 1 ] || { log "our SPARQL lookup returned $rows rows, expected 1: $SPARQL_BOUND"; exit 1; }
  if [[ " ${SCEN_LIST[*]} " == *" sparql "* ]]; then
    # the FILTER form may run into the server's query timeout: report, do not stop
    rows=$(sparql_rows "$OURS" '' "$AUTH_HEADER" "$SPARQL")
    [ "$rows" = 1 ] || log "warning: our FILTER lookup returned ${rows:-no} rows (timed out?), not 1: $SPARQL"
  fi
  log "checks passed; idle RSS ${RSS_IDLE} MB"
fi

# --- the peer ----------------------------------------------------------------------------

if [ -n "$PEER" ]; then
  PEER_ORIGIN=$(printf '%s' "$PEER" | sed -E 's#^(https?://[^/]+).*#\1#')
  PEER_PREFIX=${PEER#"$PEER_ORIGIN"}
  if [ -z "$PEER_SPARQL" ]; then
    pid_mid=$(grep . "$PEER_IDS" | sed -n "$(( ($(grep -c . "$PEER_IDS") + 1) / 2 ))p")
    pn=$(printf '%s' "$pid_mid" | sed -nE 's/^urn:dev:seed-([0-9]+)$/\1/p')
    PEER_SPARQL="SELECT ?s WHERE { GRAPH ?g { ?s a <https://www.w3.org/2019/wot/td#Thing> ; <https://www.w3.org/2019/wot/td#title> ?n . FILTER(STR(?n) = \"Seed ${pn:-42}\") } }"
  fi
  # TD titles are language-tagged (@en) once expanded as JSON-LD
  PEER_SPARQL_BOUND="SELECT ?s WHERE { GRAPH ?g { ?s a <https://www.w3.org/2019/wot/td#Thing> ; <https://www.w3.org/2019/wot/td#title> \"Seed ${pn:-42}\"@en } }"
  check "$PEER/things/$(enc "$(grep -m1 . "$PEER_IDS")")" 200
  rows=$(sparql_rows "$PEER_ORIGIN" "$PEER_PREFIX" '' "$PEER_SPARQL")
  [ "$rows" = 1 ] || log "warning: the peer's SPARQL lookup returned $rows rows, not 1: $PEER_SPARQL"
  brows=$(sparql_rows "$PEER_ORIGIN" "$PEER_PREFIX" '' "$PEER_SPARQL_BOUND")
  [ "$brows" = 1 ] || log "warning: the peer's bound SPARQL lookup returned $brows rows, not 1: $PEER_SPARQL_BOUND"
  log "peer $PEER: $(grep -c . "$PEER_IDS") ids, SPARQL lookups: $rows / $brows row(s)"
fi

# --- runs --------------------------------------------------------------------------------

echo "# wrk -t$THREADS -d$DURATION --latency, $RUNS runs per scenario; $(nproc) cores; $(wrk -v 2>&1 | head -1 | awk '{print $1, $2}')"
[ "$PEER_ONLY" = 0 ] && echo "# ours: $OURS, $N seeded TDs, auth $([ "$NO_AUTH" = 1 ] && echo off || echo on), $CONNS connections; SPARQL: $SPARQL"
[ "$PEER_ONLY" = 0 ] && echo "# ours sparql-bound: $SPARQL_BOUND"
[ -n "$PEER" ] && echo "# peer: $PEER, $(grep -c . "$PEER_IDS") ids, $PEER_CONNS connections; SPARQL: $PEER_SPARQL"
[ -n "$PEER" ] && echo "# peer sparql-bound: $PEER_SPARQL_BOUND"
for s in "${SCEN_LIST[@]}"; do
  [ "$PEER_ONLY" = 0 ] && run_scenario ours "$s"
  if [ -n "$PEER" ]; then
    case $s in get|sparql|sparql-bound|put) run_scenario peer "$s" ;; esac
  fi
done

# --- summary -----------------------------------------------------------------------------

echo
echo "# medians of $RUNS runs: req/s of 2xx answers, p99 ms of all answers (inf: none in a run);"
echo "# errors = non-2xx + socket errors (incl. wrk timeouts) over all runs"
printf '%-12s | %10s %9s %6s %7s %8s | %10s %9s %6s | %9s\n' \
  scenario 'ours req/s' 'ours p99' errors 'srv cpu' 'RSS MB' 'peer req/s' 'peer p99' errors 'ours/peer'
for s in "${SCEN_LIST[@]}"; do
  o_rps=- o_p99=- o_err=- o_cpu=- o_rss=- p_rps=- p_p99=- p_err=- ratio=-
  if [ -n "${RPS[ours:$s]:-}" ]; then
    # shellcheck disable=SC2086
    o_rps=$(median ${RPS[ours:$s]}) o_p99=$(median ${P99[ours:$s]}) o_err=${ERRS[ours:$s]}
    # shellcheck disable=SC2086
    o_cpu="$(median ${CPU[ours:$s]})%" o_rss=${RSS_AFTER[$s]:--}
  fi
  if [ -n "${RPS[peer:$s]:-}" ]; then
    # shellcheck disable=SC2086
    p_rps=$(median ${RPS[peer:$s]}) p_p99=$(median ${P99[peer:$s]}) p_err=${ERRS[peer:$s]}
    [ "$o_rps" != - ] && ratio=$(awk -v a="$o_rps" -v b="$p_rps" 'BEGIN { if (b > 0) printf (a / b >= 10 ? "%.0fx" : "%.2fx"), a / b }')
  fi
  printf '%-12s | %10s %9s %6s %7s %8s | %10s %9s %6s | %9s\n' \
    "$s" "$o_rps" "$o_p99" "$o_err" "$o_cpu" "$o_rss" "$p_rps" "$p_p99" "$p_err" "$ratio"
done
if [ "$PEER_ONLY" = 0 ]; then
  echo "# our server: RSS idle after start ${RSS_IDLE} MB, peak (VmHWM) $(rss_mb "$SERVER_PID" VmHWM) MB;" \
       "RSS MB column = after that scenario's runs; srv cpu = server CPU time / wall time (100% = one core)"
  [ -n "${IMPORT_SECS:-}" ] && echo "# import of $N TDs: ${IMPORT_SECS}s"
fi
[ -z "${KEEP_DATA:-}" ] || [ "$KEEP_DATA" = 0 ] || echo "# data dir kept: $DATA_DIR"
exit 0
