"""``hailuo doctor --record`` then ``hailuo emulator --replay``: the same result, no secret.

The acceptance test of a transcript: recorded against the emulator, replayed offline, the
doctor's steps end the same way; and the file holds none of the account's secrets in any
of the forms they travel in (raw, URL-encoded, JSON-escaped, the JWT's base64 segments).
"""

from __future__ import annotations

import json
from pathlib import Path
from urllib.parse import quote, quote_plus

import pytest

from langchain_hailuo.auth import AuthStore
from langchain_hailuo.doctor import DoctorOptions, run_doctor
from langchain_hailuo.emulator import Emulator
from langchain_hailuo.emulator.pytest_plugin import serving
from langchain_hailuo.emulator.replay import Replay
from langchain_hailuo.transcript import load_transcript
from langchain_hailuo.types import AuthResult
from tests.integration_tests._subprocess import (
    env,
    hailuo,
    signed_in_env,
)

__all__ = ["env"]  # fixtures (from _subprocess)

pytestmark = pytest.mark.timeout(60)

COOKIE = "cf-clearance-RECORD-SECRET-77a1"


def _forms(value: str) -> list[str]:
    return [value, quote(value, safe=""), quote_plus(value), json.dumps(value)[1:-1]]


async def test_record_then_replay_gives_the_same_result_and_the_file_holds_no_secret(
    hailuo_emulator: Emulator, tmp_path: Path
) -> None:
    account = hailuo_emulator.default_account
    auth_file = tmp_path / "auth.json"
    AuthStore(auth_file).save(
        AuthResult(
            token=account.token,
            protocol="agent",
            api_origin=hailuo_emulator.agent_url,
            stream_origin=hailuo_emulator.agent_stream_url,
            uuid=account.uuid,
            device_id=account.tab_device_id,
            cookies={"cf_clearance": COOKIE},
        )
    )
    env = {"HAILUO_AUTH_FILE": str(auth_file)}
    record = tmp_path / "run.json"
    recorded = await run_doctor(
        DoctorOptions(
            base_url=hailuo_emulator.agent_url,
            stream_url=hailuo_emulator.agent_stream_url,
            env=env,
            record=record,
        )
    )
    assert {s.status for s in recorded} == {"OK"}, recorded
    assert record.stat().st_mode & 0o777 == 0o600

    text = record.read_text(encoding="utf-8")
    secrets = [*_forms(account.token), *account.token.split("."), *_forms(COOKIE)]
    secrets += [account.tab_device_id, account.device_id, account.uuid]
    secrets += [account.real_user_id, account.user_id]
    for secret in secrets:
        assert secret not in text, secret
    transcript = load_transcript(record)
    paths = [(x["method"], x["origin"], x["path"]) for x in transcript["exchanges"]]
    assert ("POST", "stream", f"/minimax-cloud/api/v1/session/{_session(paths)}/message") in paths
    message = next(x for x in transcript["exchanges"] if x["path"].endswith("/message"))
    assert message["headers"]["token"] == "<token>"
    assert message["headers"]["yy"] == "<signature>"
    assert "<token>" in message["query"]
    assert any("agent_message_chunk" in chunk for _, chunk in message["chunks"])
    assert all(at >= 0 for x in transcript["exchanges"] for at, _ in x["chunks"])

    async with Replay(transcript, speed=0) as replay:
        replayed = await run_doctor(
            DoctorOptions(base_url=replay.control_url, stream_url=replay.stream_url, env=env)
        )
        assert replay.unmatched == []
    assert [(s.name, s.status) for s in replayed] == [(s.name, s.status) for s in recorded]


def _session(paths: list[tuple[str, str, str]]) -> str:
    """The session id the recorded run created (from its message path)."""
    message = next(p for _, _, p in paths if p.endswith("/message"))
    return message.split("/")[-2]


def test_a_file_that_is_not_a_transcript_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "x.json"
    path.write_text('{"exchanges": 1}', encoding="utf-8")
    with pytest.raises(ValueError, match="not a langchain-hailuo transcript"):
        load_transcript(path)


def test_the_command_line_records_and_refuses_a_bad_replay_file(
    tmp_path: Path, env: dict[str, str]
) -> None:
    with serving() as emulator:
        values = signed_in_env(emulator, env)
        record = tmp_path / "cli.json"
        result = hailuo("doctor", "--no-chat", "--record", str(record), env=values, timeout=120)
        assert result.returncode == 0, result.stdout + result.stderr
        assert len(load_transcript(record)["exchanges"]) >= 4
        assert emulator.default_account.token not in record.read_text(encoding="utf-8")
    bad = tmp_path / "bad.json"
    bad.write_text("[]", encoding="utf-8")
    refused = hailuo("emulator", "--replay", str(bad), env=env, timeout=60)
    assert refused.returncode != 0
    assert "hailuo doctor --record" in refused.stdout + refused.stderr
    assert "Traceback" not in refused.stdout + refused.stderr
