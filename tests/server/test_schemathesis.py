"""Schemathesis over the OpenAPI schema: whatever a client sends, no operation fails with a 5xx.

Every operation of the schema, the ones added later included (the walk is the schema's, not a
list kept by hand), with the coach token on a database holding the known team, runs a bounded,
derandomized set of generated requests (valid and invalid ones), on SQLite and on PostgreSQL.
Each response must not be a server error, and its body, content type and headers must match
what the operation documents. Status codes are not held to the schema: the 401 of a request
schemathesis sends without the token is not documented per operation.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from pydantic import SecretStr
from schemathesis import Case
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
)

from server.app import create_app
from server.settings import ServerSettings
from tests.server.conftest import fresh_postgres
from tests.server.conftest_app import TOKEN, anna_messages, auth, ben_messages, seed, serving

EXAMPLES_PER_OPERATION = 30
CHECKS = [
    not_a_server_error,
    response_schema_conformance,
    content_type_conformance,
    response_headers_conformance,
]

# The schema is the app's own (building the app touches no database, and these settings read
# neither the environment nor a config file at collection time); the requests go to the same app
# served on a seeded database.
_UNSERVED = ServerSettings.model_construct(coach_token=SecretStr(TOKEN))
schema = schemathesis.openapi.from_dict(create_app(_UNSERVED).openapi())


@pytest.fixture(
    scope="module", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
)
def base_url(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """The app served on a database holding the known team: SQLite, then PostgreSQL."""
    folder = tmp_path_factory.mktemp("schemathesis")
    with contextlib.ExitStack() as stack:
        url = f"sqlite:///{folder / 'companion.sqlite'}"
        if request.param == "postgres":
            url = stack.enter_context(fresh_postgres())
        yield from _served(url, folder)


def _served(url: str, folder: Path) -> Iterator[str]:
    # Module-scoped: set up before the per-test isolation of the environment, so say it all.
    config = ServerSettings(
        coach_token=TOKEN,
        database_url=url,
        data_dir=folder / "data",
        mqtt_url=None,
        mqtt_client_id=None,
        mqtt_share_group=None,
    )
    seed(config.database, [*anna_messages(), *ben_messages()])
    with serving(create_app(config)) as address:
        yield f"http://{address}"


@schema.parametrize()
@settings(
    max_examples=EXAMPLES_PER_OPERATION,
    derandomize=True,
    deadline=None,
    database=None,
    suppress_health_check=list(HealthCheck),
)
def test_no_operation_answers_a_server_error(case: Case, base_url: str) -> None:
    case.call_and_validate(base_url=base_url, headers=auth(), checks=CHECKS)


def test_a_nul_in_a_session_id_is_not_found(base_url: str) -> None:
    # PostgreSQL text cannot hold a NUL: asking for such a session failed with a 500 there.
    paths = [p for p in schema.raw_schema["paths"] if p.startswith("/api/sessions/{session_id}")]
    assert len(paths) >= 5
    with httpx.Client(base_url=base_url, headers=auth()) as client:
        for path in paths:
            response = client.get(path.replace("{session_id}", "a%00b"))
            assert response.status_code == 404, path
            assert response.json() == {"detail": "no session 'a\\x00b'"}, path
