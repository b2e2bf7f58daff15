"""Fixtures of the fault suite.

One real batch carries the whole suite: ``stone_sign.mp4`` at ``--interval 0.3`` (11 frames),
recipe photogrammetry-proto (the CPU path, seconds) and masks for an outdoor scene with a
tiny random-initialised SegFormer, installed by ``onyx install --weights --weights-from``. ``kill_chain`` takes it through ``onyx run`` and
``onyx resume``, killing the whole process group once during each step in turn
(frames, sparse_model, reconstruction, masks), then once more during a forced
re-materialisation of masks; what it saw is checked by test_kill9.py. The finished batch
is then the ``witness`` of test_bad_input.py: every bad input there is thrown at the same
data root and Dagster instance, and the witness's files and materialisation counts must
not change.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from components import require

from .helpers import (
    RECIPE,
    RUN_ARGS,
    STONE_SIGN,
    Kill,
    checksums,
    counts,
    env,
    kill_during,
    onyx,
    run_ids,
    runs_of_pid,
    spawn,
)

KILL_ORDER = ("frames", "sparse_model", "reconstruction", "masks")
# When to pull the plug, once the step's tool has logged its start: mid-write (as soon as its
# hidden staging folder appears) where the step stages early, else a few seconds in.
KILL_AT = {
    "frames": {"stage": "images", "wait": 10},       # ingest: ~1 s, stages frames as it decodes
    "sparse_model": {"wait": 3},                      # sfm: ~25 s, feature extraction
    "reconstruction": {"wait": 2},                    # openmvs CPU path: ~9 s, depth maps
    "masks": {"stage": "masks", "wait": 60},          # segformer: model load, then masks staged
}


def output_folder(batch: Path, step: str) -> Path:
    return {"frames": batch / "images", "sparse_model": batch / "sparse",
            "reconstruction": batch / "output" / RECIPE, "masks": batch / "masks"}[step]


def needs_real_data():
    require("datasets", STONE_SIGN.is_file(),
            f"real test data absent: {STONE_SIGN} (../shared/datasets beside the repository)")
    for module in ("onyx_ingest.__main__", "onyx_sfm.__main__", "onyx_openmvs.__main__", "onyx_segformer.__main__"):
        require("checkout", importlib.util.find_spec(module) is not None,
                f"the tool {module.split('.')[0]} is not in this checkout")


@dataclass
class KillRecord:
    kill: Kill
    counts_before: dict
    counts_after: dict
    runs: list                        # RunEvents of the killed onyx process
    folder_before: dict               # checksums of the step's output folder before
    folder_after: dict                # ... and right after the kill
    folder_existed_before: bool
    folder_exists_after: bool


@dataclass
class Chain:
    root: Path
    key: str
    env: dict
    kills: dict = field(default_factory=dict)      # step -> KillRecord (first time through)
    resumes: list = field(default_factory=list)    # what each next process printed (plan included)
    final: object = None                           # the resume that finished the batch
    final_counts: dict = field(default_factory=dict)
    redo: KillRecord | None = None                 # --from-step SEGFORMER, killed mid-write
    redo_resume: object = None
    redo_counts: dict = field(default_factory=dict)

    @property
    def batch(self) -> Path:
        return self.root / self.key


def _kill_record(chain: Chain, args: list, step: str) -> KillRecord:
    folder = output_folder(chain.batch, step)
    before, existed, content = counts(chain.root, chain.key), folder.exists(), checksums(folder)
    kill = kill_during(spawn(*args, environ=chain.env), chain.batch, step, **KILL_AT[step])
    return KillRecord(kill=kill, counts_before=before, counts_after=counts(chain.root, chain.key),
                      runs=runs_of_pid(chain.root, chain.key, kill.pid), folder_before=content,
                      folder_after=checksums(folder), folder_existed_before=existed,
                      folder_exists_after=folder.exists())


@pytest.fixture(scope="session")
def kill_chain(tmp_path_factory, installed_weights) -> Chain:
    """onyx run, killed during frames; onyx resume, killed during sparse_model; again during
    reconstruction; again during masks; onyx resume to the end. Then --from-step SEGFORMER,
    killed while masks/ is being rewritten, and onyx resume. The masks step loads the SegFormer
    weights where `onyx install --weights` put them (ONYX_WEIGHTS): the local runner finds them."""
    needs_real_data()
    from onyx_dagster.defs.drop_folder import batch_key_for
    from onyx_tools.manifest import file_sha256

    root = tmp_path_factory.mktemp("faults") / "data"
    key = batch_key_for(STONE_SIGN, file_sha256(STONE_SIGN))  # the default key: the drop folder's rule
    environ = env(ONYX_WEIGHTS=installed_weights, PYTHONUNBUFFERED=1)
    environ.pop("ONYX_SEGFORMER_WEIGHTS", None)
    chain = Chain(root=root, key=key, env=environ)
    args = ["run", "-i", STONE_SIGN, "-o", root, *RUN_ARGS, "-q"]
    for step in KILL_ORDER:
        chain.kills[step] = _kill_record(chain, args, step)
        args = ["resume", key, "-d", root, "-q"]
        chain.resumes.append(chain.kills[step].kill.output)
    chain.final = onyx(*args, environ=chain.env)
    chain.final_counts = counts(root, key)
    if chain.final.returncode == 0:
        chain.redo = _kill_record(chain, ["resume", key, "-d", root, "--from-step", "SEGFORMER", "-q"], "masks")
        chain.redo_resume = onyx("resume", key, "-d", root, "-q", environ=chain.env)
        chain.redo_counts = counts(root, key)
    return chain


@dataclass
class Witness:
    """A completed batch in the data root where the bad inputs land."""

    root: Path
    key: str
    env: dict
    files: dict
    counts: dict
    runs: set

    @property
    def batch(self) -> Path:
        return self.root / self.key

    def assert_untouched(self, what: str) -> None:
        assert counts(self.root, self.key) == self.counts, f"{what}: the witness batch was materialised again"
        assert run_ids(self.root, self.key) == self.runs, f"{what}: a run of the witness batch was started"
        now = checksums(self.batch)
        changed = sorted(k for k in set(now) | set(self.files) if now.get(k) != self.files.get(k))
        assert not changed, f"{what}: files of the completed batch changed: {changed[:8]}"


@pytest.fixture(scope="session")
def witness(kill_chain) -> Witness:
    chain = kill_chain
    if chain.redo_resume is None or chain.redo_resume.returncode != 0:
        pytest.fail("the kill chain did not leave a completed batch (see test_kill9.py)")
    assert all(n >= 1 for n in chain.redo_counts.values()), chain.redo_counts
    return Witness(root=chain.root, key=chain.key, env=chain.env, files=checksums(chain.batch),
                   counts=counts(chain.root, chain.key), runs=run_ids(chain.root, chain.key))
