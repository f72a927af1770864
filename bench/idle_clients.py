#!/usr/bin/env python3
"""Idle-client memory: opens N clients through a pooler, md5 login, Q simple queries each, then
holds them idle until the file named by --stop-file holds "stop". Read the pooler's VmRSS
before starting this and while it holds the clients; the difference over N is the cost of an
idle client (README: "An idle logged-in client costs about ...").

    python3 bench/idle_clients.py --port 6432 --user bench --password pw --dbname bench \
        --clients 900 --queries 50 --stop-file /tmp/idle.stop
"""
import argparse
import asyncio
import hashlib
import struct


async def read_msg(reader):
    head = await reader.readexactly(5)
    length = struct.unpack("!I", head[1:])[0]
    return head[:1], await reader.readexactly(length - 4)


async def client(args, hold):
    reader, writer = await asyncio.open_connection("127.0.0.1", args.port)
    user, password = args.user.encode(), args.password.encode()
    body = struct.pack("!I", 196608) + b"user\0" + user + b"\0database\0"
    body += args.dbname.encode() + b"\0\0"
    writer.write(struct.pack("!I", len(body) + 4) + body)
    while True:
        tag, msg = await read_msg(reader)
        if tag == b"R" and struct.unpack("!I", msg[:4])[0] == 5:
            inner = hashlib.md5(password + user).hexdigest().encode()
            answer = b"md5" + hashlib.md5(inner + msg[4:8]).hexdigest().encode() + b"\0"
            writer.write(b"p" + struct.pack("!I", len(answer) + 4) + answer)
        elif tag == b"E":
            raise RuntimeError(msg)
        elif tag == b"Z":
            break
    query = b"SELECT 1\0"
    for _ in range(args.queries):
        writer.write(b"Q" + struct.pack("!I", len(query) + 4) + query)
        while (await read_msg(reader))[0] != b"Z":
            pass
    await hold.wait()
    writer.close()


async def main(args):
    hold = asyncio.Event()
    tasks = [asyncio.create_task(client(args, hold)) for _ in range(args.clients)]
    while not any(t.done() for t in tasks):
        await asyncio.sleep(1)
        try:
            with open(args.stop_file) as f:
                if f.read().strip() == "stop":
                    break
        except FileNotFoundError:
            pass
    hold.set()
    for result in await asyncio.gather(*tasks, return_exceptions=True):
        if isinstance(result, Exception):
            raise result


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    for name, default in [("port", 6432), ("clients", 900), ("queries", 50)]:
        p.add_argument(f"--{name}", type=int, default=default)
    for name in ["user", "password", "dbname", "stop-file"]:
        p.add_argument(f"--{name}", required=True)
    asyncio.run(main(p.parse_args()))
