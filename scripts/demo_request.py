"""Call the demo gateway end to end: token, sealed request, sealed reply, opened and printed.

    .venv/bin/python scripts/demo_request.py --url http://127.0.0.1:8000

Reads the demo credentials that `flask --app wsgi demo init` wrote to instance/demo.json.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from security.encoding import b64url_decode
from security.envelope import open_envelope, request_digest, seal_envelope


def post(url: str, body: bytes, content_type: str, token: str | None = None) -> bytes:
    headers = {"Content-Type": content_type}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")  # noqa: S310
    try:
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310 (http(s) only)
            return response.read()
    except urllib.error.HTTPError as exc:
        sys.exit(f"{exc.code} from {url}: {exc.read().decode()}")


def sample_digits(count: int) -> tuple[list[list[float]], list[int]]:
    from sklearn.datasets import load_digits
    digits = load_digits()
    return (digits.data[-count:] / 16.0).tolist(), digits.target[-count:].tolist()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default="http://127.0.0.1:8000")
    parser.add_argument("--credentials", type=Path, default=Path("instance/demo.json"))
    parser.add_argument("--rows", type=int, default=5)
    args = parser.parse_args()
    if not args.url.startswith(("http://", "https://")):
        sys.exit("--url must be http:// or https://")
    creds = json.loads(args.credentials.read_text())

    form = urllib.parse.urlencode({"grant_type": "password", "username": creds["username"],
                                   "password": creds["password"]}).encode()
    token = json.loads(post(f"{args.url}/auth/token", form,
                            "application/x-www-form-urlencoded"))["access_token"]

    kid, key = creds["user_key"]["kid"], b64url_decode(creds["user_key"]["key"])
    pixels, truth = sample_digits(args.rows)
    sealed = seal_envelope(json.dumps({"inputs": pixels}).encode(), key=key, kid=kid)
    reply = post(f"{args.url}/predict/digits", sealed, "application/jose+json", token)

    opened = open_envelope(reply, key_for=lambda _kid: key, now=time.time(), max_age=300,
                           reply_to=request_digest(sealed))
    result = json.loads(opened.plaintext)
    print(json.dumps({"model": result["model"], "version": result["version"],
                      "labels": result["labels"], "truth": [str(t) for t in truth],
                      "request_id": result["request_id"]}))


if __name__ == "__main__":
    main()
