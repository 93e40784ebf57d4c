"""OAuth mode against access-key mode: get_status calls per second over streamable HTTP on loopback, same load.

Run from the repository root: `uv run --frozen python -m benchmarks.oauth_throughput [--seconds 5] [--clients 50]`.
Each mode gets its own server process (one worker) and demo API; the OAuth token is obtained once, through the
consent page as a browser would submit it. Verification is a cached hash lookup, so the two should be within noise.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import subprocess
import sys
import tempfile

import httpx2

from benchmarks.http_throughput import Round, call_round, measure, wait_healthy
from benchmarks.oauth_client import register, sign_in
from benchmarks.rpc import base_env, free_port
from benchmarks.upstream import Upstream


async def access_token(url: str) -> str:
    """An OAuth access token for DEMO_TOKEN, signed in through the consent page."""
    async with httpx2.AsyncClient(follow_redirects=False) as http:
        return (await sign_in(http, url, await register(http, url)))[0]


async def measure_oauth(seconds: float, levels: list[int]) -> list[Round]:
    """Start the demo API and an OAuth-mode server, sign in once, then one timed round per level."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with Upstream() as api, tempfile.TemporaryDirectory() as data_dir:
        env = base_env(
            EXPERITURE_MCP_AUTH="oauth",
            EXPERITURE_MCP_PUBLIC_URL=url,
            EXPERITURE_MCP_SECRET_KEY=secrets.token_urlsafe(48),
            EXPERITURE_DATA_DIR=data_dir,
        )
        argv = [sys.executable, "-m", "experiture_mcp", "--transport", "http", "--port", str(port)]
        argv += ["--base-url", api.base_url]
        process = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            await wait_healthy(url, process)
            token = await access_token(url)
            return [await call_round(url + "/mcp", token, clients, seconds, process.pid) for clients in levels]
        finally:
            process.terminate()
            process.wait(timeout=15)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--seconds", type=float, default=5.0, help="length of each timed round (default 5)")
    parser.add_argument("--clients", default="1,50", help="comma-separated concurrency levels (default 1,50)")
    args = parser.parse_args()
    levels = [int(n) for n in args.clients.split(",")]
    with tempfile.TemporaryDirectory() as data_dir:
        keys = asyncio.run(measure(1, args.seconds, levels, EXPERITURE_DATA_DIR=data_dir))
    oauth = asyncio.run(measure_oauth(args.seconds, levels))
    print("get_status against the demo API on loopback, one worker: access keys vs OAuth")  # stdout-ok
    print(f"(load average before: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores)")  # stdout-ok
    print(
        "| clients | keys calls/s | OAuth calls/s | OAuth / keys | keys p50 ms | OAuth p50 ms | errors |"
    )  # stdout-ok
    print("|---:|---:|---:|---:|---:|---:|---:|")  # stdout-ok
    for k, o in zip(keys, oauth, strict=True):
        ratio = o.rate / k.rate if k.rate else 0.0
        print(  # stdout-ok
            f"| {k.clients} | {k.rate:.0f} | {o.rate:.0f} | {ratio:.2f} | {k.percentile(50):.1f} | "
            f"{o.percentile(50):.1f} | {k.errors + o.errors} |"
        )


if __name__ == "__main__":
    main()
