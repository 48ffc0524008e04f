"""Typed exceptions and configuration: what a caller decides on is on the exception."""

from __future__ import annotations

from pathlib import Path

import pytest

import datapilot
from conftest import ADMIN, Server, make_run


def test_server_refusals_carry_status_code_and_request_id(admin: datapilot.Client) -> None:
    with pytest.raises(datapilot.ApiError) as e:
        admin.get_run("run_01M8XTVDZ4A9MKJYT4166XZBP0")
    err = e.value
    assert err.status == 404 and err.code == "not_found"
    assert err.request_id and err.request_id.startswith("req_")
    assert err.sent == "yes" and err.retryable is False
    assert isinstance(err, datapilot.DataPilotError)


def test_bad_token_is_401(server: Server) -> None:
    c = datapilot.Client(server.url, "dpt_notavalidtoken0000000000")
    with pytest.raises(datapilot.ApiError) as e:
        list(c.list_runs())
    assert e.value.status == 401 and e.value.code == "unauthenticated"


def test_refused_connection_is_a_transport_error_not_sent() -> None:
    c = datapilot.Client("http://127.0.0.1:9", ADMIN, deadline=3.0)
    with pytest.raises(datapilot.TransportError) as e:
        c.get_run("run_01M8XTVDZ4A9MKJYT4166XZBP0")
    assert e.value.sent == "no" and e.value.retryable and e.value.status is None
    assert isinstance(e.value, ConnectionError)


def test_bad_arguments_fail_before_sending(admin: datapilot.Client, tmp_path: Path) -> None:
    with pytest.raises(datapilot.InvalidArgumentError) as e:
        datapilot.Client("not a url", ADMIN)
    assert e.value.sent == "no" and isinstance(e.value, ValueError)
    with pytest.raises(datapilot.InvalidArgumentError):
        datapilot.Client("http://127.0.0.1:9", ADMIN, timeout=0)
    with make_run(admin, tmp_path, "badargs") as run:
        with pytest.raises(datapilot.InvalidArgumentError) as e:
            run.log_metrics({"train loss": 1.0}, step=0)
        assert "train loss" in str(e.value)
        with pytest.raises(datapilot.InvalidArgumentError):
            run.log_metrics({"loss": float("nan")}, step=0)
        with pytest.raises(datapilot.InvalidArgumentError):
            run.log_metrics({"loss": "high"}, step=0)  # type: ignore[dict-item]
        with pytest.raises(datapilot.InvalidArgumentError):
            run.log_metrics({"loss": 1.0}, step=-1)
        with pytest.raises(datapilot.InvalidArgumentError):
            run.log_metrics({"loss": 1.0}, step=2**53)
        run.log_metrics({"loss": 1.0, "acc": 0.5}, step=0)
        assert run.metrics_stats["logged"] == 2, "refused calls queued nothing"
        with pytest.raises(datapilot.InvalidArgumentError):
            admin.record_gate(("ds_x", "sha256:" + "0" * 64), gate="g", status="maybe")  # type: ignore[arg-type]


def test_a_sealed_run_stops_the_logger_with_the_servers_error(admin: datapilot.Client, tmp_path: Path) -> None:
    run = make_run(admin, tmp_path, "sealed")
    run.finish()
    with pytest.raises(datapilot.MetricsDeliveryError) as e:
        run.log_metrics({"loss": 1.0}, step=1)
    assert e.value.code == "logger_closed"
    # Another handle on the finished run (as a second process would have).
    late = admin.resume_run(run.id, run.token)
    late.log_metrics({"loss": 1.0}, step=1)
    with pytest.raises(datapilot.MetricsDeliveryError) as e:
        late.flush(timeout=30)
    assert e.value.code == "run_sealed" and e.value.status == 409 and e.value.request_id
    assert e.value.stats is not None and e.value.stats["abandoned"] == 1
    with pytest.raises(datapilot.MetricsDeliveryError):
        late.log_metrics({"loss": 1.0}, step=2)
    late.close()


def test_configuration_from_the_environment(
    server: Server, admin: datapilot.Client, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("DATAPILOT_URL", raising=False)
    with pytest.raises(datapilot.InvalidArgumentError) as e:
        datapilot.Client()
    assert "DATAPILOT_URL" in str(e.value)
    monkeypatch.setenv("DATAPILOT_URL", server.url)
    monkeypatch.setenv("DATAPILOT_TOKEN", ADMIN)
    assert datapilot.Client().url == server.url
    # A container started by the CLI's run-start has only the run's id and token.
    run = make_run(admin, tmp_path, "env")
    run.close()
    monkeypatch.delenv("DATAPILOT_TOKEN")
    monkeypatch.setenv("DATAPILOT_RUN_ID", run.id)
    monkeypatch.setenv("DATAPILOT_RUN_TOKEN", run.token)
    resumed = datapilot.Client().resume_run()
    assert resumed.id == run.id
    for step in range(10):
        resumed.log_metrics({"loss": float(step)})
    assert resumed.flush(timeout=30)["delivered"] == 10
    assert [p["step"] for p in resumed.list_metrics()] == list(range(10)), "steps default to last + 1"
    resumed.finish()
    monkeypatch.delenv("DATAPILOT_RUN_ID")
    with pytest.raises(datapilot.InvalidArgumentError):
        datapilot.Client().resume_run()
