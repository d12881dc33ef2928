# shellcheck shell=bash
# A throwaway PostgreSQL server on loopback, for the test suite and the benchmarks.
# Source this file, then:
#
#   postgres_start      install Debian's server if it is missing, initdb a cluster in a
#                       temp dir (owned by a non-root user: postgres refuses root), start
#                       it on 127.0.0.1 on a free port, create the database
#                       agentflow_test, and export its URL as AGENTFLOW_TEST_POSTGRES_URL
#   postgres_stop       stop it and delete the cluster
#
# fsync is off unless AGENTFLOW_PG_FSYNC=on: the suite kills workers, never the server,
# so flushing to disk buys the tests nothing. The benchmarks set it on.

postgres_bin() {
    local dir
    if command -v initdb >/dev/null 2>&1 && command -v pg_ctl >/dev/null 2>&1; then
        dirname "$(readlink -f "$(command -v pg_ctl)")"
        return
    fi
    # Debian keeps the server's programs off PATH, in /usr/lib/postgresql/<major>/bin.
    dir=$(find /usr/lib/postgresql -maxdepth 2 -name bin -type d 2>/dev/null | sort -V | tail -n 1)
    if [ -n "$dir" ] && [ -x "$dir/initdb" ]; then
        echo "$dir"
    fi
}

postgres_start() {
    local bin user port
    bin=$(postgres_bin)
    if [ -z "$bin" ]; then
        echo "# installing PostgreSQL from Debian's packages" >&2
        DEBIAN_FRONTEND=noninteractive apt-get update -q >/dev/null
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
            postgresql </dev/null >/dev/null
        bin=$(postgres_bin)
    fi
    [ -n "$bin" ] || { echo "PostgreSQL's initdb was not found after installing" >&2; return 1; }

    AGENTFLOW_PG_DIR=$(mktemp -d /tmp/agentflow-pg.XXXXXX)
    chmod 755 "$AGENTFLOW_PG_DIR"
    if [ "$(id -u)" = 0 ]; then
        user=postgres
        id -u "$user" >/dev/null 2>&1 || useradd --system --no-create-home "$user"
        chown "$user" "$AGENTFLOW_PG_DIR"
        AGENTFLOW_PG_AS=(runuser -u "$user" --)
    else
        AGENTFLOW_PG_AS=()
    fi
    port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    AGENTFLOW_PG_CTL="$bin/pg_ctl"
    (cd "$AGENTFLOW_PG_DIR" && "${AGENTFLOW_PG_AS[@]}" "$bin/initdb" -D "$AGENTFLOW_PG_DIR/data" \
        -U postgres -A trust -E UTF8 --no-sync >"$AGENTFLOW_PG_DIR/initdb.log" 2>&1) \
        || { cat "$AGENTFLOW_PG_DIR/initdb.log" >&2; return 1; }
    (cd "$AGENTFLOW_PG_DIR" && "${AGENTFLOW_PG_AS[@]}" "$AGENTFLOW_PG_CTL" start -w -t 60 \
        -D "$AGENTFLOW_PG_DIR/data" -l "$AGENTFLOW_PG_DIR/server.log" \
        -o "-c listen_addresses=127.0.0.1 -p $port -c unix_socket_directories=$AGENTFLOW_PG_DIR -c max_connections=300 -c fsync=${AGENTFLOW_PG_FSYNC:-off}" \
        >/dev/null) || { cat "$AGENTFLOW_PG_DIR/server.log" >&2; return 1; }
    "$bin/createdb" -h 127.0.0.1 -p "$port" -U postgres agentflow_test
    export AGENTFLOW_TEST_POSTGRES_URL="postgresql://postgres@127.0.0.1:$port/agentflow_test"
    echo "# PostgreSQL $("$bin/postgres" --version | awk '{print $3}') on 127.0.0.1:$port" >&2
}

postgres_stop() {
    if [ -n "${AGENTFLOW_PG_DIR:-}" ] && [ -d "$AGENTFLOW_PG_DIR/data" ]; then
        (cd "$AGENTFLOW_PG_DIR" && "${AGENTFLOW_PG_AS[@]}" "$AGENTFLOW_PG_CTL" stop -m fast \
            -D "$AGENTFLOW_PG_DIR/data" >/dev/null 2>&1) || true
        rm -rf "$AGENTFLOW_PG_DIR"
    fi
}
