#!/usr/bin/env bash
# Fuzzes the admin API with Schemathesis (PyPI) against its own OpenAPI document: a real
# server on a temporary SQLite database, an admin key, and the checks `not_a_server_error`
# (no 5xx, whatever the input) and `response_schema_conformance` (every response matches the
# schema documented for its status). Bounded by examples per operation and a time budget.
#
# Before the run it seeds a school, a teacher, classrooms and two lessons and hands their ids
# to schemathesis as dictionaries: random ids only ever reach 404, and a lesson needs real
# teacher and classroom ids to get past validation into the scheduling logic.
#
# Env: KETANG_BIN (default target/debug/ketang, built if missing), ST_MAX_EXAMPLES (30),
# ST_MAX_TIME (seconds, 150), ST_KEEP=1 keeps the temp dir (config, data, server.log).
set -euo pipefail
cd "$(dirname "$0")/.."

ST_VERSION=4.32.5
VENV="${XDG_CACHE_HOME:-$HOME/.cache}/ketang/schemathesis-$ST_VERSION"
BIN="${KETANG_BIN:-$PWD/target/debug/ketang}"

say() { printf '== %s\n' "$*" >&2; }

if [ ! -x "$VENV/bin/st" ]; then
  say "installing schemathesis $ST_VERSION into $VENV"
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install --quiet --disable-pip-version-check "schemathesis==$ST_VERSION"
fi
if [ ! -x "$BIN" ]; then
  say "building the server"
  cargo build -p ketang --locked
fi

dir=$(mktemp -d "${TMPDIR:-/tmp}/ketang-st-XXXXXX")
server_pid=
cleanup() {
  if [ -n "$server_pid" ]; then kill "$server_pid" 2>/dev/null || true; wait "$server_pid" 2>/dev/null || true; fi
  if [ -z "${ST_KEEP:-}" ]; then rm -rf "$dir"; else say "kept $dir"; fi
}
trap cleanup EXIT

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
cat >"$dir/ketang.toml" <<EOF
[http]
listen = "127.0.0.1:$port"
[media]
listen = "127.0.0.1:0"
shards = 1
[auth]
secret = "$(python3 -c 'import secrets; print(secrets.token_hex(32))')"
[storage]
data_dir = "$dir/data"
EOF

# The server reads KETANG_* variables as config keys: run it without them. (`env` execs the
# server, so `$!` below is the server's own pid and the cleanup stops it.)
clean_env=(env)
for var in $(env | grep -o '^KETANG_[A-Z0-9_]*' || true); do clean_env+=(-u "$var"); done

key=$("${clean_env[@]}" "$BIN" admin create-key schemathesis --config "$dir/ketang.toml" 2>/dev/null)
"${clean_env[@]}" "$BIN" serve --config "$dir/ketang.toml" >"$dir/server.log" 2>&1 &
server_pid=$!
for _ in $(seq 1 100); do
  curl -fsS "http://127.0.0.1:$port/healthz" >/dev/null 2>&1 && break
  kill -0 "$server_pid" 2>/dev/null || { cat "$dir/server.log" >&2; exit 1; }
  sleep 0.2
done

BASE="http://127.0.0.1:$port/api/v1" KEY="$key" python3 - >"$dir/schemathesis.toml" <<'PY'
import datetime, json, os, urllib.request

base, key = os.environ["BASE"], os.environ["KEY"]

def post(path, body):
    req = urllib.request.Request(base + path, data=json.dumps(body).encode(), method="POST",
        headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"})
    with urllib.request.urlopen(req) as r:
        return json.load(r)

school = post("/schools", {"name": "东山小学", "district": "城关区", "kind": "rural"})["id"]
teacher = post("/teachers", {"schoolId": school, "name": "李老师"})["id"]
rooms = [post("/classrooms", {"schoolId": school, "name": f"三({n})班"})["id"] for n in (1, 2, 3)]
now = datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0)
live = post("/lessons", {"title": "数学", "subject": "数学", "grade": "三年级", "mode": "dedicated",
    "teacherId": teacher, "masterClassroomId": rooms[0], "remoteClassroomIds": [rooms[1]],
    "start": (now - datetime.timedelta(minutes=5)).isoformat(),
    "end": (now + datetime.timedelta(hours=2)).isoformat()})
weekly = post("/lessons", {"title": "英语", "subject": "英语", "grade": "五年级", "mode": "master",
    "teacherId": teacher, "masterClassroomId": rooms[2], "start": "2030-03-04T08:00",
    "end": "2030-03-04T08:45", "recurrence": {"weekdays": ["mon", "thu"], "until": "2030-04-30"}})
lessons = [live["lesson"]["id"], weekly["lesson"]["id"]]
occurrences = [live["occurrences"][0]["id"], weekly["occurrences"][3]["id"]]

q = json.dumps
print(f"""[dictionaries.schools]
values = {q([school])}
[dictionaries.teachers]
values = {q([teacher])}
[dictionaries.classrooms]
values = {q(rooms)}
[dictionaries.lessons]
values = {q(lessons)}
[dictionaries.occurrences]
values = {q(occurrences)}

[parameters]
"body.schoolId" = {{ dictionary = "schools", probability = 0.7 }}
"body.teacherId" = {{ dictionary = "teachers", probability = 0.7 }}
"body.masterClassroomId" = {{ dictionary = "classrooms", probability = 0.7 }}
"body.remoteClassroomIds[*]" = {{ dictionary = "classrooms", probability = 0.7 }}
"query.occurrence" = {{ dictionary = "occurrences", probability = 0.5 }}
""")
for prefix, name, p in [("schools", "schools", 0.5), ("teachers", "teachers", 0.5),
                        ("classrooms", "classrooms", 0.5), ("lessons", "lessons", 0.7),
                        ("occurrences", "occurrences", 0.7)]:
    print(f"""[[operations]]
include-path-regex = "^/api/v1/{prefix}/"
parameters = {{ "path.id" = {{ dictionary = "{name}", probability = {p} }} }}
""")
PY

say "schemathesis $ST_VERSION against http://127.0.0.1:$port/api/v1/openapi.json"
status=0
# Revoking keys is left out: the run would revoke its own key and test nothing but 401s after.
# Run in the temp dir: schemathesis keeps its example database in ./.schemathesis.
(cd "$dir" && "$VENV/bin/st" --config-file "$dir/schemathesis.toml" run "http://127.0.0.1:$port/api/v1/openapi.json" \
  --checks not_a_server_error,response_schema_conformance \
  --header "Authorization: Bearer $key" \
  --exclude-path '/api/v1/keys/{id}' \
  --max-examples "${ST_MAX_EXAMPLES:-30}" \
  --max-time "${ST_MAX_TIME:-150}" \
  --workers 2 \
  --seed 20261129 \
  --no-color \
  --report-dir "$dir/report") || status=$?
if [ "$status" != 0 ]; then
  say "schemathesis found problems; server log:"
  tail -n 200 "$dir/server.log" >&2
fi
exit "$status"
