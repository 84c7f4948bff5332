"""A minimal OpenAI-style server for serving tests: /health and /v1/models only.

Usage: python fake_openai.py PORT MODEL [--health-after S]
"""

from __future__ import annotations

import sys
import time

from aiohttp import web


def main() -> None:
    port, model = int(sys.argv[1]), sys.argv[2]
    start = time.monotonic()
    delay = float(sys.argv[4]) if len(sys.argv) > 4 and sys.argv[3] == "--health-after" else 0.0

    async def health(_: web.Request) -> web.Response:
        ok = time.monotonic() - start >= delay
        return web.Response(status=200 if ok else 503, text="ok" if ok else "starting")

    async def models(_: web.Request) -> web.Response:
        return web.json_response({"object": "list", "data": [{"id": model, "object": "model"}]})

    app = web.Application()
    app.router.add_get("/health", health)
    app.router.add_get("/v1/models", models)
    print(f"fake server on {port}", flush=True)
    web.run_app(app, host="127.0.0.1", port=port, print=None)


if __name__ == "__main__":
    main()
