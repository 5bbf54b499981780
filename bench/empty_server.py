"""The baseline for bench.pipeline: the least an aiohttp webhook can do. POST /sms/twilio reads
the form, checks X-Twilio-Signature with twilio's RequestValidator exactly as `tala serve` does
(unless --no-signature), and answers one fixed TwiML message. No Redis, no SQL, no thread pool.

    python -m bench.empty_server --port 8081 --token TOKEN --public-url https://...
"""

from __future__ import annotations

import argparse

from aiohttp import web
from twilio.request_validator import RequestValidator
from twilio.twiml.messaging_response import MessagingResponse


def build(token: str, public_url: str, check_signature: bool) -> web.Application:
    validator = RequestValidator(token)
    url = public_url.rstrip("/") + "/sms/twilio"
    reply = MessagingResponse()
    reply.message("Tack! Hur har du det hemma just nu? Svara med en siffra från 0 till 10.")
    twiml = str(reply)

    async def sms(request: web.Request) -> web.Response:
        form = dict(await request.post())
        if check_signature and not validator.validate(
                url, form, request.headers.get("X-Twilio-Signature", "")):
            return web.Response(status=403, text="bad or missing X-Twilio-Signature")
        return web.Response(text=twiml, content_type="application/xml")

    async def healthz(_: web.Request) -> web.Response:
        return web.Response(text="{}", content_type="application/json")

    app = web.Application()
    app.router.add_post("/sms/twilio", sms)
    app.router.add_get("/healthz", healthz)
    return app


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--token", required=True)
    p.add_argument("--public-url", required=True)
    p.add_argument("--no-signature", action="store_true")
    a = p.parse_args()
    # Served like `tala serve` serves: aiohttp's run_app, default event loop, one process.
    web.run_app(build(a.token, a.public_url, not a.no_signature), host="127.0.0.1",
                port=a.port, print=None, shutdown_timeout=5)


if __name__ == "__main__":
    main()
