"""psycopg 3 through the pooler with every query prepared server-side (prepare_threshold=0).

Usage: python3 psycopg_prepared.py CONNINFO [TASKS] [QUERIES]

TASKS concurrent connections (default 100) each run QUERIES statements (default 20), one
transaction each, cycling through a few distinct parameterised queries, and check every answer.
In transaction pooling they land on whichever server is free, so the pooler must make the named
statements psycopg prepared exist there. Prints one summary line; exits 1 on the first failure.
The run is bounded: it gives up after 120 seconds.
"""

import asyncio
import sys

import psycopg

QUERIES = [
    ("SELECT %s::int * 2", lambda n: (n,), lambda n: n * 2),
    ("SELECT count(*) FROM generate_series(1, %s::int)", lambda n: (n % 50 + 1,), lambda n: n % 50 + 1),
    ("SELECT length(%s::text || %s::text)", lambda n: (str(n), "xy"), lambda n: len(str(n)) + 2),
]


async def worker(conninfo: str, task: int, queries: int) -> int:
    async with await psycopg.AsyncConnection.connect(
        conninfo, prepare_threshold=0, autocommit=True
    ) as conn:
        for i in range(queries):
            sql, params, expected = QUERIES[(task + i) % len(QUERIES)]
            n = task * 1000 + i
            cur = await conn.execute(sql, params(n))
            (got,) = await cur.fetchone()
            if got != expected(n):
                raise AssertionError(f"task {task} query {i}: {sql} gave {got!r}, wanted {expected(n)!r}")
        # One explicit transaction with two prepared statements in it, then the pool moves on.
        async with conn.transaction():
            cur = await conn.execute(QUERIES[0][0], (task,))
            (a,) = await cur.fetchone()
            cur = await conn.execute(QUERIES[1][0], (task % 50 + 1,))
            (b,) = await cur.fetchone()
        if (a, b) != (task * 2, task % 50 + 1):
            raise AssertionError(f"task {task}: transaction gave {(a, b)!r}")
    return queries + 2


async def main() -> int:
    conninfo = sys.argv[1]
    tasks = int(sys.argv[2]) if len(sys.argv) > 2 else 100
    queries = int(sys.argv[3]) if len(sys.argv) > 3 else 20
    done = await asyncio.wait_for(
        asyncio.gather(*(worker(conninfo, t, queries) for t in range(tasks))),
        timeout=120,
    )
    print(f"psycopg {psycopg.__version__}: {tasks} tasks, {sum(done)} prepared queries, no error")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(asyncio.run(main()))
    except Exception as e:  # one line on stderr for the Rust test's message
        print(f"FAILED: {type(e).__name__}: {e}", file=sys.stderr)
        sys.exit(1)
