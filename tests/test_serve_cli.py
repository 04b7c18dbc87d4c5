"""`mlkit serve`: what it refuses, in words, before starting anything."""

from __future__ import annotations

import socket

from typer.testing import CliRunner

from mlkit.cli import app


def test_serve_refuses_a_cloud_environment():
    r = CliRunner().invoke(app, ["serve", "--env", "dev"])
    assert r.exit_code == 2
    assert "cloud environment" in r.output and "dev-serving" in r.output and "Traceback" not in r.output


def test_serve_refuses_a_taken_port_and_a_bad_one():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(1)
        port = s.getsockname()[1]
        r = CliRunner().invoke(app, ["serve", "--env", "local", "--port", str(port)])
    assert r.exit_code == 2 and f"port {port} on 127.0.0.1 is in use" in r.output
    r = CliRunner().invoke(app, ["serve", "--env", "local", "--port", "80"])
    assert r.exit_code == 2 and "between 1024 and 65535" in r.output


def test_serve_names_an_unknown_environment():
    r = CliRunner().invoke(app, ["serve", "--env", "nosuch"])
    assert r.exit_code == 2 and "no environment 'nosuch'" in r.output
