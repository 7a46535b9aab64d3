"""python -m client: call a torchgate gateway from the shell; one JSON object on stdout.

Settings come from flags, then TORCHGATE_* environment variables (secrets also as
TORCHGATE_<NAME>_FILE), then a credentials file such as the demo's instance/demo.json.
Secrets are never taken as flags, where `ps` would show them.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from client.errors import TorchgateError
from client.session import TorchgateClient
from security.receipt_files import check_saved, parse_saved, read_jwks_file
from security.receipts import ReceiptError

ENV = "TORCHGATE_"
SECRETS = ("PASSWORD", "CLIENT_SECRET", "KEY")


class UsageError(Exception):
    """Settings or input the CLI cannot use: exit 2 with the message."""


def main(argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None) -> int:
    """Run one command; 0 on success, 1 when the gateway (or a receipt) refused, 2 on a usage
    error."""
    args = _parser().parse_args(argv)
    try:
        if args.command in OFFLINE:
            result = OFFLINE[args.command](args)
        else:
            client = _client(resolve_settings(args, os.environ if environ is None else environ))
            with client:
                result = COMMANDS[args.command](client, args)
    except UsageError as exc:
        print(f"torchgate: {exc}", file=sys.stderr)
        return 2
    except TorchgateError as exc:
        print(f"torchgate: {_describe(exc)}", file=sys.stderr)
        return 1
    except ReceiptError as exc:
        print(f"torchgate: invalid-receipt: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(result))
    return 0


def resolve_settings(args: argparse.Namespace, environ: Mapping[str, str]) -> dict[str, Any]:
    """TorchgateClient keyword arguments: flag, else environment, else the credentials file."""
    stored = _credentials(args.credentials, args.as_client)

    def pick(name: str, flag: str | None = None) -> str | None:
        return flag or _environment(environ, name) or stored.get(name.lower())

    url = pick("URL", args.url) or "http://127.0.0.1:8000"
    kid, key = pick("KID", args.kid), pick("KEY")
    identity: dict[str, Any]
    username, password = pick("USERNAME", args.username), pick("PASSWORD")
    client_id, secret = pick("CLIENT_ID", args.client_id), pick("CLIENT_SECRET")
    if username and password and not args.as_client:
        identity = {"username": username, "password": password}
    elif client_id and secret:
        identity = {"client_id": client_id, "client_secret": secret}
    else:
        raise UsageError("no credentials: set TORCHGATE_USERNAME and TORCHGATE_PASSWORD, "
                         "or TORCHGATE_CLIENT_ID and TORCHGATE_CLIENT_SECRET, or --credentials")
    if bool(kid) != bool(key):
        raise UsageError("a payload key needs both TORCHGATE_KID and TORCHGATE_KEY")
    envelope = pick("ENVELOPE", args.envelope) or "auto"
    return {"base_url": url, **identity, "kid": kid or None, "key": key or None,
            "timeout": args.timeout, "retries": args.retries, "envelope": envelope,
            "pin_file": pick("PIN_FILE", args.pin_file),
            "gateway_keys": pick("GATEWAY_KEYS", args.gateway_keys)}


def _client(settings: dict[str, Any]) -> TorchgateClient:
    try:
        return TorchgateClient(**settings)
    except ValueError as exc:  # a malformed URL or payload key
        raise UsageError(str(exc)) from exc


def read_inputs(path: str) -> dict[str, Any]:
    """{"inputs": ..., "parameters"?: ...} from a JSON file ("-" for stdin) or a bare list."""
    try:
        text = sys.stdin.read() if path == "-" else Path(path).read_text()
        data = json.loads(text)
    except (OSError, ValueError) as exc:
        raise UsageError(f"cannot read inputs from {path}: {exc}") from exc
    if isinstance(data, list):
        return {"inputs": data}
    if isinstance(data, dict) and "inputs" in data:
        return data
    raise UsageError(f'{path} must hold {{"inputs": ...}} or a bare nested list')


def _predict(client: TorchgateClient, args: argparse.Namespace) -> dict[str, Any]:
    request = read_inputs(args.input)
    reply = client.predict_plaintext(args.model, request["inputs"], version=args.version,
                                     parameters=request.get("parameters"))
    if args.save_reply is not None:
        try:
            args.save_reply.write_bytes(reply)
        except OSError as exc:
            raise UsageError(f"cannot write {args.save_reply}: {exc.strerror}") from exc
    return json.loads(reply)


def _verify_receipt(args: argparse.Namespace) -> dict[str, Any]:
    """Offline: the saved receipt's claims once its signature and digests check out."""
    saved = parse_saved(_read_bytes(args.file))
    request = None if args.request is None else _read_bytes(args.request)
    return check_saved(saved, read_jwks_file(args.jwks), request).to_json()


def _read_bytes(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise UsageError(f"cannot read {path}: {exc.strerror}") from exc


def _revoke(client: TorchgateClient, args: argparse.Namespace) -> dict[str, Any]:
    client.revoke()
    return {"revoked": True}


COMMANDS: dict[str, Callable[[TorchgateClient, argparse.Namespace], dict[str, Any]]] = {
    "predict": _predict,
    "models": lambda client, args: {"models": client.models()},
    "model": lambda client, args: client.model(args.name),
    "whoami": lambda client, args: client.whoami(),
    "token": lambda client, args: client.token().to_json(),
    "revoke": _revoke,
}
OFFLINE: dict[str, Callable[[argparse.Namespace], dict[str, Any]]] = {
    "verify-receipt": _verify_receipt,
}


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m client", description=__doc__.splitlines()[0])
    parser.add_argument("--url", help="gateway URL (TORCHGATE_URL; default http://127.0.0.1:8000)")
    parser.add_argument("--credentials", type=Path, help="JSON file such as instance/demo.json")
    parser.add_argument("--as-client", action="store_true",
                        help="use the client_credentials grant (and client_key) of that file")
    parser.add_argument("--username", help="TORCHGATE_USERNAME; password: TORCHGATE_PASSWORD")
    parser.add_argument("--client-id", help="TORCHGATE_CLIENT_ID; TORCHGATE_CLIENT_SECRET")
    parser.add_argument("--kid", help="payload key id (TORCHGATE_KID); key: TORCHGATE_KEY")
    parser.add_argument("--envelope", choices=("auto", "hpke", "dir", "plain"),
                        help="TORCHGATE_ENVELOPE; auto (default): HPKE to the gateway's "
                             "published key, else the payload key, else plain JSON")
    parser.add_argument("--pin-file", help="TORCHGATE_PIN_FILE: the gateway's keys, pinned "
                                           "here on first use and trusted from then on")
    parser.add_argument("--gateway-keys", help="TORCHGATE_GATEWAY_KEYS: a JWKS file from the "
                                               "operator, trusted instead of fetching")
    parser.add_argument("--timeout", type=float, default=10.0, help="seconds per HTTP request")
    parser.add_argument("--retries", type=int, default=3, help="retries of 429/503 answers")
    commands = parser.add_subparsers(dest="command", required=True)
    predict = commands.add_parser("predict", help="a sealed model call; prints the opened reply")
    predict.add_argument("model")
    predict.add_argument("--input", required=True, help='JSON file ({"inputs": ...}), - for stdin')
    predict.add_argument("--version")
    predict.add_argument("--save-reply", type=Path, help="write the reply plaintext, as "
                         "received, to this file (for verify-receipt)")
    commands.add_parser("models", help="the models this caller may use")
    commands.add_parser("model", help="one model's description").add_argument("name")
    commands.add_parser("whoami", help="the caller's subject, roles and permissions")
    commands.add_parser("token", help="print a fresh token answer (contains secrets)")
    commands.add_parser("revoke", help="revoke the caller's tokens")
    verify = commands.add_parser("verify-receipt", help="offline: check a saved receipt, or a "
                                 "reply saved by predict --save-reply, against a JWKS")
    verify.add_argument("file", type=Path, help="the receipt (compact JWS) or the saved reply")
    verify.add_argument("--jwks", type=Path, required=True,
                        help="the gateway's JWKS (GET /.well-known/jwks.json), saved")
    verify.add_argument("--request", type=Path, help="the request plaintext, to check its digest")
    return parser


def _environment(environ: Mapping[str, str], name: str) -> str | None:
    value = environ.get(ENV + name)
    if value or name not in SECRETS or not environ.get(f"{ENV}{name}_FILE"):
        return value
    path = Path(environ[f"{ENV}{name}_FILE"])
    try:
        return path.read_text().removesuffix("\n")
    except OSError as exc:
        raise UsageError(f"cannot read {ENV}{name}_FILE: {exc.strerror}") from exc


def _credentials(path: Path | None, as_client: bool) -> dict[str, str]:
    """The demo.json layout, flattened: username/password or client_id/client_secret, kid/key."""
    if path is None:
        return {}
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise UsageError(f"cannot read credentials from {path}: {exc}") from exc
    stored = {name: data[name] for name in ("url", "username", "password", "client_id",
                                            "client_secret") if isinstance(data.get(name), str)}
    payload_key = data.get("client_key" if as_client else "user_key") or {}
    stored.update({name: payload_key[name] for name in ("kid", "key")
                   if isinstance(payload_key.get(name), str)})
    return stored


def _describe(error: TorchgateError) -> str:
    where = f" (request_id {error.request_id})" if error.request_id else ""
    status = f"{error.status} " if error.status is not None else ""
    return f"{status}{error.slug}: {error.detail}{where}"


if __name__ == "__main__":
    sys.exit(main())
