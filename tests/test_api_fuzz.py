"""schemathesis 4 against the live API: real uvicorn, real local Ray, the token, a root
with a manifest and a real job record. Zero 5xx, every status documented, every body as
its schema says. Bounded for the default suite: a fixed seed and a capped example count.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import httpx

from storyline.store import FeatureStore
from storyline.store.jobs import COMPLETE, FAILED, JobRecord, JobSpec

from .conftest import API_TOKEN

SEED = 20261130
EXAMPLES = 25  # per operation and phase; ~500 requests in all


def _record(root: Path, job_id: str) -> None:
    """A finished job's record in a store under the root, found by GET /jobs/{id}."""
    store = FeatureStore(str(root / "fuzz.zarr"))
    ids = ["a", "b", "c"]
    spec = JobSpec(job_id, str(root / "m.csv"), {"name": "random", "id": "0" * 16}, {}, {})
    record = JobRecord.open(store, spec, ids, [str(root / f"{v}.mp4") for v in ids], interval=0)
    record.mark("a", COMPLETE)
    record.mark("b", FAILED, error="not a readable video")
    record.flush(state="succeeded")


def _schemathesis(
    api: httpx.Client, cwd: Path, *, config: Path | None = None, only: str | None = None
) -> str:
    """`schemathesis run` on the live schema with every check; its summary line."""
    exe = Path(sys.executable).with_name("schemathesis")
    done = subprocess.run(
        [
            str(exe),
            *(["--config-file", str(config)] if config else []),
            "run",
            f"{api.base_url}/openapi.json",
            "--header",
            f"Authorization: Bearer {API_TOKEN}",
            "--checks",
            "all",
            "--phases",
            "examples,coverage,fuzzing",
            "--max-examples",
            str(EXAMPLES),
            "--seed",
            str(SEED),
            "--generation-database",
            "none",
            "--request-timeout",
            "30",
            "--no-color",
            *(["--include-path-regex", only] if only else []),
        ],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=540,  # bounded by the example count; this only guards a hung server
    )
    summary = re.search(r"\d+ generated.*", done.stdout)
    print(summary.group(0) if summary else done.stdout[-2000:])
    assert done.returncode == 0, done.stdout[-6000:] + done.stderr[-2000:]
    return summary.group(0) if summary else ""


def test_fuzzing_finds_no_server_error_or_undocumented_answer(
    api: httpx.Client, tmp_path: Path
) -> None:
    summary = _schemathesis(api, tmp_path)
    assert " passed" in summary and "failure" not in summary


def test_fuzzing_a_known_job(api: httpx.Client, api_root: Path, tmp_path: Path) -> None:
    """The same on the job routes with the id of a real record, so handlers reach the store."""
    _record(api_root, "fuzz-job")
    assert api.get("/jobs/fuzz-job").json()["counts"]["failed"] == 1
    config = tmp_path / "schemathesis.toml"
    config.write_text('[parameters]\njob_id = "fuzz-job"\n')
    _schemathesis(api, tmp_path, config=config, only="^/jobs/")
