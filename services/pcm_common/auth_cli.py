"""`pcm-tokens`: issue, revoke and list credentials (stored only as hashes).

pcm-tokens issue RENIEC --label "sistema de colas"    # an entity's credential
pcm-tokens issue --role national --label "analista SGP"  # the oversight body: reads all
pcm-tokens issue --role operator --label "guardia"       # operations: no entity data
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from pcm_common.auth import ROLE_HOLDERS, Role, TokenStore
from pcm_common.catalogues import load_catalogues
from pcm_common.settings import Settings, load_settings


def is_catalogued(entity_id: str, settings: Settings) -> bool:
    try:
        load_catalogues(settings.catalogue_dir).entity(entity_id)
    except KeyError:
        return False
    return True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="pcm-tokens", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--file", type=Path, help="token store (default: PCM_TOKEN_FILE)")
    commands = parser.add_subparsers(dest="command", required=True)
    issue = commands.add_parser("issue", help="create a token and print it once")
    issue.add_argument("entity_id", nargs="?", help="the entity (only for --role entity)")
    issue.add_argument("--role", choices=[r.value for r in Role], default=Role.ENTITY.value)
    issue.add_argument("--label", default="")
    revoke = commands.add_parser("revoke", help="revoke a token by its id")
    revoke.add_argument("token_id")
    commands.add_parser("list", help="list tokens (ids, entities, state; never secrets)")
    args = parser.parse_args(argv)

    settings = load_settings()
    store = TokenStore(args.file or settings.token_file)
    if args.command == "issue":
        return issue_token(store, settings, Role(args.role), args.entity_id, args.label)
    if args.command == "revoke":
        try:
            record = store.revoke(args.token_id)
        except KeyError as error:
            return _fail(error.args[0])
        print(f"revoked {record.token_id} ({record.entity_id}) at {record.revoked_at}")
        return 0
    for record in store.read():
        state = f"revoked {record.revoked_at}" if record.revoked_at else "active"
        print(f"{record.token_id}  {record.entity_id:20} {record.role:9} {state:30} {record.label}")
    return 0


def issue_token(
    store: TokenStore, settings: Settings, role: Role, entity_id: str | None, label: str
) -> int:
    if role is not Role.ENTITY:
        if entity_id is not None:
            return _fail(
                f"a {role.value} credential belongs to {ROLE_HOLDERS[role]}: name no entity"
            )
        entity_id = ROLE_HOLDERS[role]
    elif entity_id is None:
        return _fail("an entity credential needs the entity id (pcm-tokens issue RENIEC)")
    elif not is_catalogued(entity_id, settings):
        return _fail(f"entity {entity_id!r} is not in the entity catalogue")
    print(store.issue(entity_id, role, label))
    return 0


def _fail(message: str) -> int:
    print(f"error: {message}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    raise SystemExit(main())
