"""The local broker's KRaft cluster id: what Kafka's storage tool takes as an id, whatever the random bytes."""

import base64
import uuid

import pytest

from stack import services
from stack.services import kraft_cluster_id


def test_cluster_ids_are_22_base64url_characters_never_starting_with_a_dash() -> None:
    for _ in range(2000):  # about 31 of these would start with "-" if nothing kept them out
        cluster_id = kraft_cluster_id()
        assert len(cluster_id) == 22 and not cluster_id.startswith("-")
        assert len(base64.urlsafe_b64decode(cluster_id + "==")) == 16


def test_an_id_starting_with_a_dash_is_drawn_again(monkeypatch: pytest.MonkeyPatch) -> None:
    leading_dash = uuid.UUID(bytes=base64.urlsafe_b64decode("-RhJuRC9TCOnRdEZIleKsg=="))  # CI's failed format
    drawn = iter([leading_dash, uuid.UUID(int=1)])
    monkeypatch.setattr(services.uuid, "uuid4", lambda: next(drawn))
    assert kraft_cluster_id() == base64.urlsafe_b64encode(uuid.UUID(int=1).bytes).rstrip(b"=").decode()
