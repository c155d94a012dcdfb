"""Whether a signed file carries the task key's signature, from what Pulp read."""

from artifacts.signatures import signed_by, unsigned_files

KEYID = "0123456789ABCDEF"
FINGERPRINT = "AAAABBBBCCCCDDDDEEEE" + "FFFF" + KEYID


def test_a_fingerprint_or_key_id_of_the_key_is_its_signature() -> None:
    assert signed_by([f"v4:{FINGERPRINT}"], KEYID, FINGERPRINT)
    assert signed_by([f"v4:{FINGERPRINT.lower()}"], KEYID.lower(), FINGERPRINT)
    assert signed_by([f"keyid:{KEYID}"], KEYID, FINGERPRINT)
    assert signed_by([FINGERPRINT], KEYID, FINGERPRINT)  # bare hex is a v4 fingerprint
    assert signed_by(["v4:" + "1" * 40, f"v4:{FINGERPRINT}"], KEYID, FINGERPRINT)


def test_no_signature_or_another_key_is_not() -> None:
    assert not signed_by(None, KEYID, FINGERPRINT)
    assert not signed_by([], KEYID, FINGERPRINT)
    assert not signed_by(["v4:" + "1" * 40], KEYID, FINGERPRINT)
    assert not signed_by(["keyid:FEDCBA9876543210"], KEYID, FINGERPRINT)
    # Another key whose fingerprint ends like ours by chance is still another key.
    assert not signed_by(["v4:" + "2" * 24 + KEYID], KEYID, FINGERPRINT)


def test_unsigned_files_names_each_file_without_the_signature() -> None:
    found = {"/c/1/": [f"v4:{FINGERPRINT}"], "/c/2/": [], "/c/3/": None}
    names = {"/c/1/": "a.rpm", "/c/2/": "b.rpm", "/c/3/": "c.rpm", "/c/4/": "d.rpm"}
    assert unsigned_files(found, names, KEYID, FINGERPRINT) == ["b.rpm", "c.rpm", "d.rpm"]
