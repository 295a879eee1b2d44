"""What the models sink needs to join a send with its email's category for ``email-send-urls``.

``send_links[send entity]`` holds the send's latest snapshot; ``send_links[email entity]`` holds the
email's category entity and the sends waiting on it. One partition (``entity-changes`` has one).
"""

from __future__ import annotations

from streams.tables.keyed import keyed_table

send_links = keyed_table("send-links", default=dict, partitions=1, help="send/email join state")
