from bench.stages import FAUST, OTHER, stage_of, stage_samples

V = "/work/.venv/lib/python3.11/site-packages"


def frames(*pairs: tuple[str, str]) -> list[str]:
    return [f"{function} ({path}:1)" for function, path in pairs]


def test_a_stage_is_its_outermost_frame_of_ours() -> None:
    stack = frames(("run", f"{V}/mode/services.py"), ("ingest", "/w/streams/topology.py"),
                   ("handle", "/w/streams/ingest.py"), ("parse_row", "/w/streams/clicks.py"),
                   ("unquote", "/usr/lib/python3.11/urllib/parse.py"))
    assert stage_of(stack) == "ingest"


def test_calls_into_faust_from_our_code_are_faust_overhead() -> None:
    stack = frames(("handle", "/w/streams/ingest.py"), ("send", f"{V}/faust/topics.py"),
                   ("dumps", f"{V}/faust/serializers/codecs.py"))
    assert stage_of(stack) == FAUST
    assert stage_of(frames(("_fetch", f"{V}/aiokafka/consumer/fetcher.py"))) == FAUST


def test_library_cpu_under_a_stage_counts_for_it_and_unknown_modules_are_other() -> None:
    sink = frames(("clicks_sink", "/w/streams/topology.py"), ("write", "/w/streams/clicks_sink.py"),
                  ("bulk_upsert", "/w/streams/mongo.py"),
                  ("bulk_write", f"{V}/pymongo/asynchronous/collection.py"))
    assert stage_of(sink) == "clicks sink"
    assert stage_of(frames(("expire", "/w/streams/tables/seen_rows.py"))) == OTHER


def test_samples_are_counted_per_stage() -> None:
    raw = "\n".join([
        "run (asyncio/events.py:80);ingest (streams/topology.py:2);handle (streams/ingest.py:10) 7",
        "run (asyncio/events.py:80);poll (streams/poller.py:3);parse (streams/marketing_cloud/soap.py:9) 3",
        "getmany (aiokafka/consumer/consumer.py:1) 5",
        "sink (streams/clicks_sink.py:1);<genexpr> (streams/clicks_sink.py:2);expr (<string>:4) 2",
    ])
    assert stage_samples(raw) == {"ingest": 7, "poll + SOAP parse": 3, FAUST: 7}
