# Sourced by scripts/test: decide whether the tests run on PostgreSQL too, starting the
# local server if it is installed but not answering. Defines one function.
#
#   BOTKIT_TEST_POSTGRES=on (the default)  PostgreSQL is required: use
#       $BOTKIT_TEST_POSTGRES_URL, else the local server on 127.0.0.1:5432 (started with
#       pg_ctlcluster if need be); if none answers, fail: a run that cannot test
#       PostgreSQL must not pass as if it had.
#   BOTKIT_TEST_POSTGRES=off  SQLite only, said out loud: the PostgreSQL variants of the
#       tests are reported as skipped, with the reason.

BOTKIT_DEFAULT_POSTGRES_URL="postgresql://postgres@127.0.0.1:5432/test"

# Sets (or unsets) BOTKIT_TEST_POSTGRES_URL; returns 1 when PostgreSQL is required and
# cannot be reached, 2 on a bad BOTKIT_TEST_POSTGRES value.
botkit_test_postgres() {
  case "${BOTKIT_TEST_POSTGRES:-on}" in
    off)
      unset BOTKIT_TEST_POSTGRES_URL
      echo "PostgreSQL tests: off (BOTKIT_TEST_POSTGRES=off): their variants are reported as skipped"
      return 0
      ;;
    on) ;;
    *)
      echo "scripts/test: BOTKIT_TEST_POSTGRES must be 'on' or 'off', not '${BOTKIT_TEST_POSTGRES}'" >&2
      return 2
      ;;
  esac
  local url="${BOTKIT_TEST_POSTGRES_URL:-$BOTKIT_DEFAULT_POSTGRES_URL}"
  if ! command -v pg_isready >/dev/null; then
    if [ -n "${BOTKIT_TEST_POSTGRES_URL:-}" ]; then  # given: the tests will say if it is down
      echo "PostgreSQL tests: on (${url##*@}; not checked: no pg_isready)"
      return 0
    fi
    echo "scripts/test: PostgreSQL is required and pg_isready is not installed (the" \
      "postgresql-client package); install PostgreSQL, or set BOTKIT_TEST_POSTGRES=off" \
      "to run without its tests" >&2
    return 1
  fi
  if ! pg_isready -q -d "$url" && [ -z "${BOTKIT_TEST_POSTGRES_URL:-}" ] \
    && [ -d /etc/postgresql ] && command -v pg_ctlcluster >/dev/null; then
    echo "starting PostgreSQL"
    pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n1)" main start || true
    for _ in $(seq 30); do pg_isready -q -d "$url" && break; sleep 1; done
  fi
  if ! pg_isready -q -d "$url"; then
    echo "scripts/test: PostgreSQL is required and does not answer at ${url##*@}" \
      "(and could not be started); start it, point BOTKIT_TEST_POSTGRES_URL at one, or set" \
      "BOTKIT_TEST_POSTGRES=off to run without its tests" >&2
    return 1
  fi
  export BOTKIT_TEST_POSTGRES_URL="$url"
  echo "PostgreSQL tests: on (${url##*@})"  # no user or password in the log
}
