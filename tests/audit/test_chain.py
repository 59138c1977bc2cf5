"""The hash chain: a log built by IngestEvents, corrupted with SQL, caught by both verifiers.

One log of a few thousand events is built per backend; each corruption is
made on a copy of it. VerifyChain (a real server on the copy) and
`loansuite audit verify` (a real process) must agree on where it breaks.
"""

from __future__ import annotations

import dataclasses
import json
import subprocess
from collections.abc import Iterator
from typing import Literal

import grpc
import pytest
from loansuite.audit.v1 import audit_service_pb2 as audit_pb
from loansuite.audit.v1 import audit_service_pb2_grpc as audit_grpc
from loansuite.auth.v1 import auth_service_pb2_grpc as auth_grpc
from loansuite.common.v1 import error_pb2

from services.audit.chain import Head
from services.audit.heads import HEADS_FILE_NAME, read_last_head
from services.audit.wiring import start as start_audit
from services.auth.wiring import start as start_auth
from services.shared._types import Metadata
from services.shared.server import Server
from tests.audit.chain_log import BuiltLog, Log, read_log, tamper, verify_command
from tests.audit.corruptions import BATCH, FORGED_LAST_GOOD, SCENARIOS, SIZE, K
from tests.audit.support import audit_settings, make_event, service_metadata
from tests.auth.support import auth_settings
from tests.support import BACKENDS, SERVICE_SECRET, Databases


@dataclasses.dataclass
class Built:
    log: BuiltLog
    auth_port: int
    metadata: Metadata  # a service identity: any authenticated caller may verify
    events: Log

    @property
    def hashes(self) -> dict[int, str]:
        return {sequence: event.hash for sequence, event in self.events.items()}


def _ingest(port: int, metadata: Metadata) -> list[audit_pb.IngestEventsResponse]:
    batches = [
        audit_pb.IngestEventsRequest(
            events=[
                make_event(f"org-{i % 5}", f"org-{i % 7 + 5}", resource_id=f"loan-{i}")
                for i in range(start, start + BATCH)
            ]
        )
        for start in range(0, SIZE, BATCH)
    ]
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        stub = audit_grpc.AuditServiceStub(channel)
        return list(stub.IngestEvents(iter(batches), metadata=metadata, timeout=120))


@pytest.fixture(scope="module", params=BACKENDS)
def built(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Built]:
    """The log, built once per backend through the real IngestEvents path, then left alone."""
    backend = str(request.param)
    directory = tmp_path_factory.mktemp(f"chain-{backend}")
    databases = Databases(backend, directory)
    auth = start_auth(auth_settings(directory, databases.new("auth"), SERVICE_SECRET), port=0)
    url = databases.new("audit")
    log: BuiltLog | None = None
    try:
        with grpc.insecure_channel(f"127.0.0.1:{auth.port}") as channel:
            metadata = service_metadata(auth_grpc.AuthServiceStub(channel))
        audit = start_audit(audit_settings(directory, url, auth.port), port=0)
        try:
            acks = _ingest(audit.port, metadata)
        finally:
            audit.stop(0)  # a PostgreSQL template must have no connections
        assert all(a.HasField("ack") for a in acks), acks
        heads = directory / HEADS_FILE_NAME
        head = read_last_head(heads)
        assert head is not None
        log = BuiltLog(backend, directory, url, heads, head)
        yield Built(log, auth.port, metadata, read_log(url))
    finally:
        auth.stop(0)
        if log is not None:
            log.drop_copies()
        databases.drop_all()


@pytest.fixture(scope="module")
def corrupted(built: Built) -> Iterator[dict[str, tuple[str, subprocess.Popen[str]]]]:
    """Every scenario's copy, with its `loansuite audit verify` already running alongside."""
    copies: dict[str, tuple[str, subprocess.Popen[str]]] = {}
    try:
        for name, (corruption, *_) in SCENARIOS.items():
            url = built.log.copy(name)
            if corruption is not None:
                tamper(url, corruption, built.events)
            copies[name] = (url, verify_command(built.log.directory, url))
        yield copies
    finally:
        for _, command in copies.values():
            if command.poll() is None:  # its test failed before collecting it
                command.kill()
            command.communicate()


def _serve(built: Built, url: str) -> Server:
    settings = audit_settings(built.log.directory, url, built.auth_port)
    return start_audit(settings, port=0, heads_path=built.log.heads)


def _verify_chain(
    built: Built, url: str, request: audit_pb.VerifyChainRequest | None = None
) -> audit_pb.VerifyChainResponse:
    server = _serve(built, url)
    try:
        with grpc.insecure_channel(f"127.0.0.1:{server.port}") as channel:
            stub = audit_grpc.AuditServiceStub(channel)
            return stub.VerifyChain(
                request or audit_pb.VerifyChainRequest(), metadata=built.metadata, timeout=60
            )
    finally:
        server.stop(0)


def _as_dict(verification: audit_pb.ChainVerification) -> dict[str, object]:
    """The RPC's answer in the command's JSON shape."""

    def head(field: Literal["head", "expected_head"]) -> dict[str, object] | None:
        if not verification.HasField(field):
            return None
        value = getattr(verification, field)
        return {"sequence": value.sequence, "hash": value.hash}

    return {
        "intact": verification.intact,
        "checked_events": verification.checked_events,
        "first_bad_sequence": verification.first_bad_sequence,
        "problem": verification.problem,
        "head": head("head"),
        "expected_head": head("expected_head"),
    }


@pytest.mark.parametrize("scenario", list(SCENARIOS))
def test_both_verifiers_find_the_first_bad_event(
    built: Built, corrupted: dict[str, tuple[str, subprocess.Popen[str]]], scenario: str
) -> None:
    url, command = corrupted[scenario]
    _, problem, first_bad, checked = SCENARIOS[scenario]

    response = _verify_chain(built, url)
    out, err = command.communicate(timeout=60)

    assert response.HasField("verification"), response.error
    published = {"sequence": SIZE, "hash": built.log.head.hash}
    last_good = {"sequence": checked, "hash": built.hashes[checked]}
    expected = {
        "intact": not problem,
        "checked_events": checked,
        "first_bad_sequence": first_bad,
        "problem": problem,
        "head": last_good,
        "expected_head": published,
    }
    if scenario in FORGED_LAST_GOOD:  # the last link that held is the forger's own
        expected["head"] = {"sequence": checked, "hash": response.verification.head.hash}
        assert response.verification.head.hash != built.hashes[checked]
    assert _as_dict(response.verification) == expected
    assert (command.returncode, err) == (1 if problem else 0, "")
    assert json.loads(out) == expected


def test_each_committed_batch_published_its_head(built: Built) -> None:
    lines = [json.loads(line) for line in built.log.heads.read_text().splitlines()]

    assert [(line["sequence"], line["hash"]) for line in lines] == [
        (s, built.hashes[s]) for s in range(BATCH, SIZE + 1, BATCH)
    ]
    assert all(line["time"].endswith("Z") for line in lines)
    assert built.log.head == Head(SIZE, built.hashes[SIZE])


def _request(sequence: int, hash_: str) -> audit_pb.VerifyChainRequest:
    return audit_pb.VerifyChainRequest(
        expected_head=audit_pb.ChainHead(sequence=sequence, hash=hash_)
    )


def test_a_given_head_replaces_the_published_one(
    built: Built, corrupted: dict[str, tuple[str, subprocess.Popen[str]]]
) -> None:
    untouched, truncated = corrupted["untouched"][0], corrupted["truncated_tail"][0]
    older = _request(K, built.hashes[K])  # events committed after a head are no fault
    wrong = _request(SIZE, "0" * 64)
    beyond = _request(SIZE + 10, built.log.head.hash)
    invalid = _request(0, "ABC")

    results = [_verify_chain(built, untouched, r) for r in (older, wrong, beyond, invalid)]
    from_older = verify_command(
        built.log.directory, truncated, "--expect-head", f"{K}:{built.hashes[K]}"
    )
    malformed = verify_command(built.log.directory, untouched, "--expect-head", "12")
    older_out, _ = from_older.communicate(timeout=60)
    _, malformed_err = malformed.communicate(timeout=60)

    found = [(r.verification.problem, r.verification.first_bad_sequence) for r in results[:3]]
    assert found == [("", 0), ("HEAD_MISMATCH", SIZE), ("TRUNCATED", SIZE + 1)]
    assert results[0].verification.checked_events == SIZE
    error = results[3].error
    assert (error.code, [v.field for v in error.field_violations]) == (
        error_pb2.ERROR_CODE_INVALID_ARGUMENT,
        ["expected_head.sequence", "expected_head.hash"],
    )
    # Against the older head the truncated log is intact: only a later head shows the cut.
    assert (from_older.returncode, json.loads(older_out)["checked_events"]) == (0, SIZE - 5)
    assert malformed.returncode == 2
    assert "SEQ:HASH" in malformed_err
