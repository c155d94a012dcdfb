"""Whether a signed file carries a signature by the task's key (SIGNING.md §5.12).

Pulp reads the signatures of an RPM when it makes the package from the uploaded artifact and
keeps their issuers in `signing_keys`: `v4:<fingerprint>`, `v6:<fingerprint>`, or
`keyid:<16 hex>` when a signature names only its issuer's key id.
"""

from collections.abc import Mapping, Sequence


def signed_by(identifiers: Sequence[str] | None, keyid: str, fingerprint: str) -> bool:
    keyid, fingerprint = keyid.upper(), fingerprint.upper()
    for identifier in identifiers or ():
        kind, separator, value = identifier.partition(":")
        kind, value = (kind.lower(), value.upper()) if separator else ("v4", kind.upper())
        if kind in ("v4", "v6") and value == fingerprint:
            return True
        if kind == "keyid" and value == keyid:
            return True
    return False


def unsigned_files(
    found: Mapping[str, Sequence[str] | None],
    names: Mapping[str, str],
    keyid: str,
    fingerprint: str,
) -> list[str]:
    """The file names (by content href in `names`) without a signature by the key."""
    return sorted(
        names[href] for href in names if not signed_by(found.get(href), keyid, fingerprint)
    )
