"""`pcm-tokens`: issue, revoke and list entity credentials (stored only as hashes)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from pcm_common.auth import Role, TokenStore
from pcm_common.catalogues import load_catalogues
from pcm_common.settings import Settings, load_settings


def is_catalogued(entity_id: str, settings: Settings) -> bool:
    try:
        load_catalogues(settings.catalogue_dir).entity(entity_id)
    except KeyError:
        return False
    return True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="pcm-tokens", description=__doc__)
    parser.add_argument("--file", type=Path, help="token store (default: PCM_TOKEN_FILE)")
    commands = parser.add_subparsers(dest="command", required=True)
    issue = commands.add_parser("issue", help="create a token and print it once")
    issue.add_argument("entity_id")
    issue.add_argument("--role", choices=[r.value for r in Role], default=Role.ENTITY.value)
    issue.add_argument("--label", default="")
    revoke = commands.add_parser("revoke", help="revoke a token by its id")
    revoke.add_argument("token_id")
    commands.add_parser("list", help="list tokens (ids, entities, state; never secrets)")
    args = parser.parse_args(argv)

    settings = load_settings()
    store = TokenStore(args.file or settings.token_file)
    if args.command == "issue":
        if args.role == Role.ENTITY.value and not is_catalogued(args.entity_id, settings):
            print(
                f"error: entity {args.entity_id!r} is not in the entity catalogue", file=sys.stderr
            )
            return 2
        print(store.issue(args.entity_id, Role(args.role), args.label))
        return 0
    if args.command == "revoke":
        try:
            record = store.revoke(args.token_id)
        except KeyError as error:
            print(f"error: {error.args[0]}", file=sys.stderr)
            return 2
        print(f"revoked {record.token_id} ({record.entity_id}) at {record.revoked_at}")
        return 0
    for record in store.read():
        state = f"revoked {record.revoked_at}" if record.revoked_at else "active"
        print(f"{record.token_id}  {record.entity_id:20} {record.role:9} {state:30} {record.label}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
