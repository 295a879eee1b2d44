"""The models sink agent: batches of ``entity-changes`` records through ``streams.models_sink.ModelsSink``, the
send/email join in the ``send_links`` table, its dead letters on this worker's topic."""

from __future__ import annotations

from streams.adoption import check_adopted
from streams.app import app, settings
from streams.batches import each_batch
from streams.models import DeadLetterStage, EntitySnapshot
from streams.models_sink import ModelsSink
from streams.resources import document_ids, mongo
from streams.tables.links import send_links
from streams.topics import Pending, entity_changes, send_dead_letter


class KafkaModelOutputs:
    """``streams.models_sink.Outputs`` on ``dead-letter``: stage ``write-models``, keyed by the entity, source
    ``{"entity": entity}``."""

    async def dead_letter(self, snapshot: EntitySnapshot, reason: str) -> Pending:
        return [await send_dead_letter(snapshot.entity, DeadLetterStage.WRITE_MODELS, reason, snapshot.tenant,
                                       {"entity": snapshot.entity})]


@app.agent(entity_changes)
async def models_sink(stream):
    db = mongo()
    await check_adopted(db, settings.legacy_tenant)
    sink = ModelsSink(db, send_links, document_ids(), KafkaModelOutputs())
    await each_batch(stream, settings.sink_batch, settings.sink_within, sink.write)
