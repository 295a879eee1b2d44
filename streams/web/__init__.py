"""The worker's web view, on faust's web server (``LEADS_WEB_HOST``/``LEADS_WEB_PORT``, 127.0.0.1 by default).

``GET /`` a small status page; ``/entities/{kind}/{entity}`` one snapshot, answered by the worker that owns
the key; ``/tables/{kind}`` this worker's keys; ``/status`` offsets, lag, polls and dead letters;
``/metrics`` Prometheus text; ``/health`` for orchestration. Read-only. When ``LEADS_WEB_TOKEN`` is set,
every endpoint except ``/health`` and the static page wants ``Authorization: Bearer <token>``.
"""
