from __future__ import annotations

import json
import logging

from opentelemetry.sdk.trace import TracerProvider

from retail_kit.telemetry import JsonLogFormatter


def record(message: str) -> logging.LogRecord:
    return logging.LogRecord("retail.test", logging.INFO, __file__, 1, message, None, None)


def test_json_logs_carry_the_current_trace_and_span_ids() -> None:
    tracer = TracerProvider().get_tracer("test")
    formatter = JsonLogFormatter("catalog-svc")
    with tracer.start_as_current_span("work") as span:
        entry = json.loads(formatter.format(record("拿铁 reserved")))
    context = span.get_span_context()
    assert entry["trace_id"] == format(context.trace_id, "032x")
    assert entry["span_id"] == format(context.span_id, "016x")
    assert (entry["service"], entry["message"], entry["level"]) == (
        "catalog-svc",
        "拿铁 reserved",
        "INFO",
    )


def test_json_logs_outside_a_span_have_no_trace_ids() -> None:
    entry = json.loads(JsonLogFormatter("gateway").format(record("started")))
    assert "trace_id" not in entry and entry["service"] == "gateway"
