#!/usr/bin/env python3
"""Soak test for `bouncectl serve`: mixed load for a long time, RSS and open fds sampled.

Runs against a throwaway PostgreSQL cluster of its own (initdb in a temp dir, as the
`postgres` OS user when started as root) and the bouncectl binary given with --binary:

  * pgbench TPC-B (-c 20), select-only (-S -c 30) and connect-per-transaction (-S -C -c 10),
    all in transaction mode over a pool of 20;
  * `SHOW POOLS`, `SHOW STATS` and `SHOW CLIENTS` on the admin console every second.

Every --interval seconds it records the pooler's RSS (VmRSS) and open file descriptors in
samples.csv, and at the end writes soak.png (when matplotlib is importable) and prints a verdict:
after the warm-up, RSS and fds must stay flat. Not a CI test: a run takes --minutes.

    bench/soak.py --binary target/release/bouncectl --minutes 30 --out /tmp/soak
"""

import argparse
import csv
import os
import pwd
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PASSWORD = "soakpw"


def bindir() -> Path:
    for cand in [os.environ.get("PG_BINDIR")] + sorted(
        (str(p) for p in Path("/usr/lib/postgresql").glob("*/bin")), reverse=True
    ):
        if cand and (Path(cand) / "initdb").exists():
            return Path(cand)
    try:
        out = subprocess.run(["pg_config", "--bindir"], capture_output=True, text=True)
        if out.returncode == 0 and (Path(out.stdout.strip()) / "initdb").exists():
            return Path(out.stdout.strip())
    except FileNotFoundError:
        pass
    sys.exit("soak: PostgreSQL server binaries (initdb) not found; apt-get install postgresql")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def as_pg_user(cmd: list[str]) -> list[str]:
    """initdb and postgres refuse root: run them as the postgres OS user then."""
    return ["runuser", "-u", "postgres", "--"] + cmd if os.geteuid() == 0 else cmd


def wait_ready(bin_dir: Path, port: int, deadline_s: float = 30) -> None:
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        r = subprocess.run(
            [str(bin_dir / "pg_isready"), "-q", "-h", "127.0.0.1", "-p", str(port)],
            capture_output=True,
        )
        if r.returncode == 0:
            return
        time.sleep(0.2)
    sys.exit(f"soak: nothing ready on port {port} after {deadline_s}s")


def start_postgres(bin_dir: Path, work: Path) -> tuple[int, Path]:
    data = work / "pgdata"
    pwfile = work / "pw"
    pwfile.write_text(PASSWORD + "\n")
    if os.geteuid() == 0:
        pg = pwd.getpwnam("postgres")
        os.chown(work, pg.pw_uid, pg.pw_gid)
        os.chown(pwfile, pg.pw_uid, pg.pw_gid)
    subprocess.run(
        as_pg_user([str(bin_dir / "initdb"), "-D", str(data), "-U", "bench", "--pwfile", str(pwfile),
                    "--auth-host=md5", "--auth-local=trust", "-E", "UTF8"]),
        check=True, stdout=subprocess.DEVNULL,
    )
    port = free_port()
    with open(data / "postgresql.conf", "a") as f:
        f.write(f"port = {port}\nlisten_addresses = '127.0.0.1'\nunix_socket_directories = '{work}'\n"
                "fsync = off\nmax_connections = 100\npassword_encryption = md5\n")
    subprocess.run(
        as_pg_user([str(bin_dir / "pg_ctl"), "-D", str(data), "-l", str(work / "pg.log"), "-w", "start"]),
        check=True, stdout=subprocess.DEVNULL,
    )
    wait_ready(bin_dir, port)
    return port, data


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--binary", required=True, help="the bouncectl binary to soak")
    ap.add_argument("--minutes", type=float, default=30)
    ap.add_argument("--interval", type=float, default=10, help="seconds between samples")
    ap.add_argument("--warmup", type=float, default=120, help="seconds before the flatness baseline")
    ap.add_argument("--out", default=None, help="directory for samples.csv and soak.png")
    args = ap.parse_args()

    binary = Path(args.binary).resolve()
    bin_dir = bindir()
    work = Path(tempfile.mkdtemp(prefix="bouncectl-soak-"))
    out = Path(args.out or work)
    out.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, PGPASSWORD=PASSWORD)
    procs: list[subprocess.Popen] = []
    pg_data = None
    try:
        pg_port, pg_data = start_postgres(bin_dir, work)
        subprocess.run([str(bin_dir / "pgbench"), "-i", "-q", "-s", "10", "-h", "127.0.0.1",
                        "-p", str(pg_port), "-U", "bench", "postgres"],
                       env=env, check=True, capture_output=True)

        port = free_port()
        (work / "userlist.txt").write_text(f'"bench" "{PASSWORD}"\n')
        (work / "bouncectl.ini").write_text(
            f"[databases]\npostgres = host=127.0.0.1 port={pg_port}\n[pgbouncer]\n"
            f"listen_addr = 127.0.0.1\nlisten_port = {port}\nunix_socket_dir =\n"
            f"auth_type = md5\nauth_file = {work}/userlist.txt\npool_mode = transaction\n"
            "default_pool_size = 20\nmax_client_conn = 1000\nadmin_users = bench\n"
            "log_connections = 0\nlog_disconnections = 0\n")
        pooler = subprocess.Popen([str(binary), "serve", "--quiet", str(work / "bouncectl.ini")],
                                  stdout=open(work / "pooler.log", "w"), stderr=subprocess.STDOUT)
        procs.append(pooler)
        wait_ready(bin_dir, port)

        seconds = int(args.minutes * 60)
        common = ["-h", "127.0.0.1", "-p", str(port), "-U", "bench", "-T", str(seconds), "-n",
                  "--progress", "60", "postgres"]
        loads = {
            "tpcb": ["-c", "20", "-j", "2"],
            "select": ["-S", "-c", "30", "-j", "2"],
            "connect": ["-S", "-C", "-c", "10", "-j", "1"],
        }
        for name, flags in loads.items():
            procs.append(subprocess.Popen([str(bin_dir / "pgbench")] + flags + common, env=env,
                                          stdout=open(out / f"pgbench-{name}.log", "w"),
                                          stderr=subprocess.STDOUT))

        fields = ["elapsed_s", "rss_kib", "fds", "admin_ok", "admin_failed"]
        rows = []
        admin_ok = admin_failed = 0
        started = time.monotonic()
        next_sample = started
        psql = str(bin_dir / "psql")
        admin = ["-h", "127.0.0.1", "-p", str(port), "-U", "bench", "-d", "pgbouncer", "-Atq",
                 "-c", "SHOW POOLS", "-c", "SHOW STATS", "-c", "SHOW CLIENTS"]
        with open(out / "samples.csv", "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(fields)
            while time.monotonic() - started < seconds:
                if pooler.poll() is not None:
                    sys.exit(f"soak: the pooler exited with {pooler.returncode}; see {work}/pooler.log")
                r = subprocess.run([psql] + admin, env=env, capture_output=True, timeout=30)
                admin_ok, admin_failed = admin_ok + (r.returncode == 0), admin_failed + (r.returncode != 0)
                now = time.monotonic()
                if now >= next_sample:
                    rss = next(int(line.split()[1]) for line in open(f"/proc/{pooler.pid}/status")
                               if line.startswith("VmRSS:"))
                    fds = len(os.listdir(f"/proc/{pooler.pid}/fd"))
                    row = [round(now - started), rss, fds, admin_ok, admin_failed]
                    rows.append(row)
                    w.writerow(row)
                    f.flush()
                    print(f"t={row[0]:5d}s rss={rss} KiB fds={fds} admin ok/failed={admin_ok}/{admin_failed}",
                          flush=True)
                    next_sample += args.interval
                time.sleep(max(0.0, 1.0 - (time.monotonic() - now)))
        for p in procs[1:]:
            p.wait(timeout=120)
        verdict(rows, args.warmup, out, admin_failed, procs[1:], loads)
        plot(rows, out)
    finally:
        for p in procs:
            if p.poll() is None:
                p.terminate()
        if pg_data is not None:
            subprocess.run(as_pg_user([str(bin_dir / "pg_ctl"), "-D", str(pg_data), "-m", "fast", "stop"]),
                           capture_output=True)
        if args.out:  # the results live elsewhere: the cluster can go
            shutil.rmtree(work, ignore_errors=True)


def verdict(rows, warmup, out, admin_failed, loads_procs, loads) -> None:
    after = [r for r in rows if r[0] >= warmup] or rows
    rss0, fds0 = after[0][1], after[0][2]
    rss_max, fds_max = max(r[1] for r in after), max(r[2] for r in after)
    rss_end, fds_end = after[-1][1], after[-1][2]
    print(f"\nafter warm-up ({warmup:.0f}s): rss {rss0} KiB -> max {rss_max}, end {rss_end}; "
          f"fds {fds0} -> max {fds_max}, end {fds_end}; admin failures {admin_failed}")
    for (name, _), p in zip(loads.items(), loads_procs):
        tail = (out / f"pgbench-{name}.log").read_text().strip().splitlines()
        summary = [line for line in tail if line.startswith(("tps", "number of failed", "number of transactions actually"))]
        print(f"pgbench {name}: exit {p.returncode}; " + "; ".join(summary))
    # Flat: the end within 10% (+4 MiB for allocator noise) of the post-warm-up start.
    flat = rss_end <= rss0 * 1.10 + 4096 and fds_end <= fds0 + 5
    print("verdict:", "FLAT" if flat else "GROWING")


def plot(rows, out) -> None:
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("soak: matplotlib not importable; samples.csv only")
        return
    t = [r[0] / 60 for r in rows]
    fig, ax1 = plt.subplots(figsize=(9, 4))
    ax1.plot(t, [r[1] / 1024 for r in rows], color="tab:blue", label="RSS (MiB)")
    ax1.set_xlabel("minutes")
    ax1.set_ylabel("RSS (MiB)", color="tab:blue")
    ax1.set_ylim(bottom=0)
    ax2 = ax1.twinx()
    ax2.plot(t, [r[2] for r in rows], color="tab:orange", label="open fds")
    ax2.set_ylabel("open fds", color="tab:orange")
    ax2.set_ylim(bottom=0)
    fig.suptitle("bouncectl serve under mixed load (TPC-B + select-only + connect-per-tx + admin SHOW)")
    fig.tight_layout()
    fig.savefig(out / "soak.png", dpi=100)
    print(f"plot: {out / 'soak.png'}")


if __name__ == "__main__":
    main()
