"""Exception texts never reach a log line: they may quote payload values (semantics 8)."""

from __future__ import annotations

import json
import logging
import sys

import pytest
from sqlalchemy import create_engine
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from core import logs
from handlers.store import make_engine

CANARY = "Canary-Zwanette-Vandersmissen"


def formatted(record: logging.LogRecord) -> dict:
    return json.loads(logs.JsonFormatter("worker").format(record))


def database_error(engine) -> DBAPIError:
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT CAST(:v AS INTEGER) + nosuchcolumn"), {"v": CANARY})
    except DBAPIError as exc:
        return exc
    raise AssertionError("the statement should have failed")


def celery_failure_record(exc: BaseException, with_traceback: bool) -> logging.LogRecord:
    """The record celery.app.trace logs for a failed task (its LOG_FAILURE format)."""
    context = {
        "id": "task-1",
        "name": "workers.process_webhook",
        "exc": repr(exc),
        "traceback": f"Traceback...\n{exc!r}",
        "args": "(event_id='e-1')",
        "kwargs": "{}",
        "description": "raised unexpected",
    }
    exc_info = (type(exc), exc, exc.__traceback__) if with_traceback else None
    record = logging.LogRecord(
        "celery.app.trace",
        logging.ERROR,
        __file__,
        1,
        "Task %(name)s[%(id)s] %(description)s: %(exc)s",
        (context,),
        exc_info,
    )
    record.data = context
    return record


def raised(exc: BaseException) -> BaseException:
    try:
        raise exc
    except BaseException as caught:  # noqa: BLE001
        return caught


class TestEngines:
    def test_the_store_engine_hides_sql_parameters(self, tmp_path):
        exc = database_error(make_engine(f"sqlite:///{tmp_path / 's.sqlite3'}"))
        assert CANARY not in str(exc)

    def test_a_default_engine_would_show_them(self, tmp_path):
        # What the store's engines are protected from: SQLAlchemy quotes parameters by default.
        assert CANARY in str(database_error(create_engine(f"sqlite:///{tmp_path / 'd.db'}")))


class TestCeleryFailureLines:
    @pytest.mark.parametrize("with_traceback", [True, False])
    def test_the_failure_line_keeps_the_class_and_drops_the_text(self, with_traceback):
        exc = raised(ValueError(f"cannot store {CANARY}"))
        out = formatted(celery_failure_record(exc, with_traceback))
        line = json.dumps(out)
        assert CANARY not in line
        assert (
            out["message"] == "Task workers.process_webhook[task-1] raised unexpected: ValueError"
        )
        if with_traceback:
            assert out["exc_type"] == "ValueError"
            assert "Traceback (most recent call last)" in out["exc"]
            assert out["exc"].rstrip().endswith("ValueError")

    def test_the_retry_line_keeps_the_classes(self):
        record = logging.LogRecord(
            "celery.app.trace",
            logging.INFO,
            __file__,
            1,
            "Task %(name)s[%(id)s] retry: %(exc)s",
            ({"id": "t", "name": "n", "exc": f"Retry in 3s: TransientError('{CANARY}')"},),
            None,
        )
        assert formatted(record)["message"] == "Task n[t] retry: Retry in 3s: TransientError"

    def test_a_database_error_traceback_carries_no_parameters_or_statement_text(self):
        try:
            try:
                raise KeyError(CANARY)
            except KeyError as inner:
                raise RuntimeError(f"wrapped {CANARY}") from inner
        except RuntimeError:
            record = logging.LogRecord(
                "x", logging.ERROR, __file__, 1, "failed", (), sys.exc_info()
            )
        out = formatted(record)
        assert CANARY not in json.dumps(out)
        assert "KeyError" in out["exc"] and "RuntimeError" in out["exc"]

    def test_an_exception_passed_as_an_argument_is_logged_as_its_class(self):
        record = logging.LogRecord(
            "celery.worker",
            logging.ERROR,
            __file__,
            1,
            "Unrecoverable error: %r",
            (ValueError(CANARY),),
            None,
        )
        assert formatted(record)["message"] == "Unrecoverable error: ValueError"

    def test_a_preformatted_traceback_is_cut_to_frames_and_classes(self):
        record = logging.LogRecord("x", logging.ERROR, __file__, 1, "failed", (), None)
        record.exc_text = (
            "Traceback (most recent call last):\n"
            '  File "w.py", line 1, in f\n'
            "    g()\n"
            f"sqlalchemy.exc.DataError: (psycopg.DataError) bad\n[SQL: INSERT]\n"
            f"[parameters: ('{CANARY}',)]"
        )
        out = formatted(record)
        assert CANARY not in out["exc"]
        assert out["exc"].endswith("sqlalchemy.exc.DataError")


def test_logs_module_gives_class_names_with_their_module():
    assert logs.scrubbed_traceback(raised(DBAPIError("s", {}, Exception(CANARY)))).endswith(
        "sqlalchemy.exc.DBAPIError"
    )
