"""Bad input at every boundary, one table: the onyx command (a subprocess: exit code 2 for a
refusal, the message on stderr), the drop-folder sensor, and archives. Every row lands in
the data root and Dagster instance of a completed batch (the witness, see conftest), and
after every row the witness's files (sha256) and materialisation counts are unchanged.

Single-boundary versions of several rows live elsewhere (tests/pipeline/test_batch_boundary.py,
tests/cli/, tests/automation/test_drop_folder.py, tests/ingest/); here each goes through the
outermost boundary a person meets, next to finished work.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import signal
import stat
import subprocess
import time
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from unittest import mock

import pytest

from .helpers import (
    RUN_ARGS,
    STONE_SIGN,
    checksums,
    counts,
    onyx,
    open_home,
    spawn,
    tree,
)

pytestmark = pytest.mark.slow


def ffmpeg(*args) -> None:
    subprocess.run(["ffmpeg", "-y", "-nostdin", "-v", "error", *map(str, args)], check=True, timeout=120)


# -- the bad (and awkward) inputs, made once ------------------------------------------
@pytest.fixture(scope="module")
def inputs(tmp_path_factory, witness) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("bad-inputs")
    made = {}
    made["text"] = folder / "holiday notes.mp4"
    made["text"].write_text("these are my holiday notes, not a video\n" * 30)
    made["empty"] = folder / "empty.mp4"
    made["empty"].touch()
    data = STONE_SIGN.read_bytes()
    made["truncated"] = folder / "truncated.mp4"         # stone_sign keeps its index at the end
    made["truncated"].write_bytes(data[: len(data) // 2])
    made["two_frames"] = folder / "two-frames.mp4"
    ffmpeg("-f", "lavfi", "-i", "testsrc2=size=160x120:rate=10", "-frames:v", "2", "-c:v", "libx264",
           "-pix_fmt", "yuv420p", made["two_frames"])
    # A codec ffmpeg can mux but not decode: MPEG-4 in AVI with its FourCC (FMP4, in the
    # stream header and the BITMAPINFOHEADER) replaced by one no decoder claims.
    mpeg4 = folder / "mpeg4.avi"
    ffmpeg("-f", "lavfi", "-i", "testsrc2=size=160x120:rate=10", "-t", "1", "-c:v", "mpeg4", "-tag:v", "FMP4", mpeg4)
    raw = mpeg4.read_bytes()
    assert raw.count(b"FMP4") == 2
    made["unknown_codec"] = folder / "unknown-codec.avi"
    made["unknown_codec"].write_bytes(raw.replace(b"FMP4", b"QQQQ"))
    # Absurd resolutions: a YUV4MPEG2 header claiming them, three tiny "frames" after it.
    for name, side in (("huge", 16000), ("absurd", 100000)):
        made[name] = folder / f"{name}.y4m"
        made[name].write_bytes(f"YUV4MPEG2 W{side} H{side} F25:1 Ip A1:1 C420jpeg\n".encode()
                               + (b"FRAME\n" + b"\x80" * 4096) * 3)
    made["audio_only"] = folder / "voice memo.mp4"
    ffmpeg("-f", "lavfi", "-i", "sine=frequency=440:duration=2", "-c:a", "aac", made["audio_only"])
    # Flat grey with a barely moving smooth gradient: nothing for SIFT to hold on to.
    made["textureless"] = folder / "grey wall.mp4"
    ffmpeg("-f", "lavfi", "-i", "gradients=s=320x240:r=10:speed=0.01:c0=0x606060:c1=0x909090", "-t", "3",
           "-pix_fmt", "yuv420p", "-c:v", "libx264", made["textureless"])
    # A real clip under a path with spaces and non-ASCII characters (NFC, as people type it).
    odd = folder / "mes vidéos d'été" / "Wälk thröugh — 東京 1.mp4"
    odd.parent.mkdir()
    ffmpeg("-i", STONE_SIGN, "-t", "2", "-vf", "scale=226:400", "-c:v", "libx264", "-preset", "ultrafast",
           "-an", odd)
    made["odd_path"] = odd
    made["archive"] = folder / "witness.zip"
    exported = onyx("export", witness.key, "-d", witness.root, "-o", made["archive"], environ=witness.env)
    assert exported.returncode == 0, exported.stderr
    return made


# -- the table ------------------------------------------------------------------------
@dataclass
class Ctx:
    witness: object
    inputs: dict
    tmp: Path
    capfd: object

    @property
    def root(self) -> Path:
        return self.witness.root

    def run(self, video, *extra) -> subprocess.CompletedProcess:
        return onyx("run", "-i", video, "-o", self.root, *RUN_ARGS, "-q", *extra, environ=self.witness.env)

    def cli(self, *args) -> subprocess.CompletedProcess:
        return onyx(*args, environ=self.witness.env)


@dataclass
class Outcome:
    code: int | None     # the onyx exit code (None: no command, e.g. a sensor tick)
    text: str            # what a person reads: stderr (+ stdout), or the sensor's log


@dataclass
class Case:
    id: str
    act: Callable[[Ctx], Outcome]
    code: int | None
    says: tuple[str, ...]          # every fragment must be in the message
    writes_nothing: bool = True    # a refusal: the data root's file tree is unchanged


def cli_outcome(done: subprocess.CompletedProcess) -> Outcome:
    return Outcome(done.returncode, done.stderr + "\n--- stdout ---\n" + done.stdout)


def refused_run(name: str, *extra) -> Callable[[Ctx], Outcome]:
    return lambda ctx: cli_outcome(ctx.run(ctx.inputs[name], *extra))


def odd_path_works(ctx: Ctx) -> Outcome:
    """Spaces, accents, an em dash and CJK in the folder and file name: the batch runs through frames."""
    video = ctx.inputs["odd_path"]
    done = ctx.run(video, "--until", "INGEST")
    outcome = cli_outcome(done)
    if done.returncode == 0:
        key = done.stdout.split("batch ", 1)[1].split(":", 1)[0]
        batch = ctx.root / key
        assert key.startswith("walk-through-1-"), key  # NFKD: ä -> a, CJK dropped
        assert counts(ctx.root, key)["frames"] == 1
        assert len(list((batch / "images").glob("*.jpg"))) >= 3
        settings = json.loads((batch / "batch.json").read_text(encoding="utf-8"))
        assert settings["input"] == str(video)  # the exact path, not a mangled one
        assert str(video) in json.dumps(open_latest_video_metadata(ctx.root, key), ensure_ascii=False)
    return outcome


def open_latest_video_metadata(root: Path, key: str) -> dict:
    from dagster import AssetKey, AssetRecordsFilter

    instance = open_home(root)
    try:
        record = instance.fetch_materializations(
            AssetRecordsFilter(asset_key=AssetKey("video"), asset_partitions=[key]), limit=1).records[0]
        metadata = record.event_log_entry.asset_materialization.metadata
        return {k: str(getattr(v, "value", v)) for k, v in metadata.items()}
    finally:
        instance.dispose()


def textureless(ctx: Ctx) -> Outcome:
    """SfM cannot register a flat grey wall: sparse_model fails with the reason, frames stays done."""
    done = ctx.run(ctx.inputs["textureless"], "--until", "SFM", "--batch", "grey-wall")
    batch = ctx.root / "grey-wall"
    assert counts(ctx.root, "grey-wall")["frames"] == 1 and counts(ctx.root, "grey-wall")["sparse_model"] == 0
    assert len(list((batch / "images").glob("*.jpg"))) >= 3, "frames must stay materialised"
    assert not (batch / "sparse").exists()
    tried = done.stderr.split("(tried ")[1].split(")")[0]
    # auto tried sequential and retrieval matching; only the matcher it did not try is advised
    assert "retrieval" in tried and "exhaustive" not in tried, done.stderr
    assert "matching=retrieval" not in done.stderr and "sparse_model.matching=exhaustive" in done.stderr, done.stderr
    return cli_outcome(done)


# Sensor rows: the drop_folder sensor ticked for real against the witness's instance and data root.
class Ticker:
    def __init__(self, ctx: Ctx, name: str):
        self.ctx, self.drop, self.cursor = ctx, ctx.tmp / f"drop-{name}", None
        self.drop.mkdir()
        self.requests, self.log = [], ""

    def tick(self):
        from dagster import build_sensor_context

        from onyx_dagster.defs.drop_folder import DropFolder, drop_folder_sensor
        from onyx_dagster.resources import BatchStorage

        instance = open_home(self.ctx.root)
        # the sensor's preflight reads this process's settings: the witness's weights
        weights = {"ONYX_WEIGHTS": self.ctx.witness.env["ONYX_WEIGHTS"]}
        try:
            with mock.patch.dict(os.environ, weights):
                context = build_sensor_context(
                    instance=instance, cursor=self.cursor,
                    resources={"drop": DropFolder(folder=str(self.drop)),
                               "storage": BatchStorage(data_root=str(self.ctx.root))})
                self.ctx.capfd.readouterr()
                result = drop_folder_sensor(context)
                self.log += self.ctx.capfd.readouterr().err
        finally:
            instance.dispose()
        self.cursor = result.cursor
        self.requests += result.run_requests or []
        return result.run_requests or []


def registered(root: Path) -> set[str]:
    from onyx_dagster.partitions import batches

    instance = open_home(root)
    try:
        return set(instance.get_dynamic_partitions(batches.name))
    finally:
        instance.dispose()


def duplicate_drop(ctx: Ctx) -> Outcome:
    """The witness's video dropped again under two other names: recognised by content, not redone."""
    ticker = Ticker(ctx, "duplicate")
    before = registered(ctx.root)
    shutil.copy(STONE_SIGN, ticker.drop / "stone sign again.mp4")
    (ticker.drop / "outdoor").mkdir()
    shutil.copy(STONE_SIGN, ticker.drop / "outdoor" / "copy of the sign.MOV")
    for _ in range(3):
        ticker.tick()
    assert ticker.requests == [] and registered(ctx.root) == before
    return Outcome(None, ticker.log)


def partial_copy(ctx: Ctx) -> Outcome:
    """A copy in progress is not taken while it grows; once whole and still it is, with the whole file's hash."""
    ticker = Ticker(ctx, "partial")
    source = ctx.inputs["textureless"].read_bytes()  # content no batch has yet
    target = ticker.drop / "walk.mp4"
    before = registered(ctx.root)
    for end in (len(source) // 3, 2 * len(source) // 3, len(source)):
        with open(target, "ab") as handle:
            handle.write(source[len(target.read_bytes()) if target.exists() else 0: end])
        assert ticker.tick() == [], "a file still being copied was taken"
        assert registered(ctx.root) == before
    taken = ticker.tick()
    new = registered(ctx.root) - before
    assert len(new) == 1 and len(taken) == 2, (new, taken)
    key = new.pop()
    assert key == f"walk-{hashlib.sha256(source).hexdigest()[:8]}", key   # the whole file's content
    assert {str(r.partition_key).split("|")[0] for r in taken} == {key}   # batch, then batch|recipe
    return Outcome(None, ticker.log)


def non_video_drop(ctx: Ctx) -> Outcome:
    ticker = Ticker(ctx, "notvideo")
    shutil.copy(ctx.inputs["text"], ticker.drop / "notes.mp4")
    (ticker.drop / "empty.mov").touch()
    before = registered(ctx.root)
    for _ in range(3):
        ticker.tick()
    assert ticker.requests == [] and registered(ctx.root) == before
    assert ticker.log.count("notes.mp4 rejected") == 1, "reported once, not every tick"
    return Outcome(None, ticker.log)


# Archive rows: hostile variants of the witness's own export, imported into its data root.
def hostile(ctx: Ctx, name: str, mutate) -> Path:
    out = ctx.tmp / f"{name}.zip"
    with zipfile.ZipFile(ctx.inputs["archive"]) as src, zipfile.ZipFile(out, "w") as dst:
        manifest = json.loads(src.read("onyx-manifest.json"))
        for info in src.infolist():
            if info.filename != "onyx-manifest.json":
                dst.writestr(info, src.read(info))
        mutate(dst, manifest)
        dst.writestr("onyx-manifest.json", json.dumps(manifest))
    return out


def zip_slip(ctx: Ctx) -> Outcome:
    def mutate(dst, manifest):
        payload = b"owned\n"
        dst.writestr("images/../../../escaped.txt", payload)
        manifest["files"]["images/../../../escaped.txt"] = hashlib.sha256(payload).hexdigest()

    done = ctx.cli("import-batch", hostile(ctx, "slip", mutate), "-o", ctx.root, "--as", "slipped")
    assert not list(ctx.root.parent.rglob("escaped.txt")) and not (ctx.root / "slipped").exists()
    return cli_outcome(done)


def symlink_in_archive(ctx: Ctx) -> Outcome:
    def mutate(dst, manifest):
        info = zipfile.ZipInfo("images/frame_99999.jpg")
        info.create_system = 3
        info.external_attr = (stat.S_IFLNK | 0o777) << 16
        dst.writestr(info, b"../../../../etc/passwd")

    done = ctx.cli("import-batch", hostile(ctx, "link", mutate), "-o", ctx.root, "--as", "linked")
    assert not (ctx.root / "linked").exists()
    return cli_outcome(done)


def import_key_collision(ctx: Ctx) -> Outcome:
    """The witness's own export imported into its own data root: the key is taken."""
    return cli_outcome(ctx.cli("import-batch", ctx.inputs["archive"], "-o", ctx.root))


def run_key_collision(ctx: Ctx) -> Outcome:
    """Another (valid) video asked to become the witness's batch key."""
    return cli_outcome(ctx.run(ctx.inputs["odd_path"], "--batch", ctx.witness.key))


def outside(ctx: Ctx, name: str) -> Path:
    folder = ctx.tmp / f"precious-{name}"
    folder.mkdir()
    (folder / "keep.txt").write_text("keep me")
    (folder / "batch.json").write_text("{}")
    return folder


def purge_outside_root(ctx: Ctx) -> Outcome:
    """A 'batch folder' that is a symlink out of the data root: purge refuses, the target survives."""
    precious = outside(ctx, "purge")
    os.symlink(precious, ctx.root / "holiday")
    try:
        done = ctx.cli("purge", "holiday", "-d", ctx.root)
    finally:
        os.unlink(ctx.root / "holiday")
    assert (precious / "keep.txt").read_text() == "keep me"
    return cli_outcome(done)


def purge_all_with_escape(ctx: Ctx) -> Outcome:
    """purge-all --yes with such a link in the root refuses as a whole: the witness is not purged."""
    precious = outside(ctx, "purge-all")
    os.symlink(precious, ctx.root / "holiday")
    try:
        done = ctx.cli("purge-all", ctx.root, "--yes")
    finally:
        os.unlink(ctx.root / "holiday")
    assert (precious / "keep.txt").read_text() == "keep me"
    return cli_outcome(done)


def concurrent_runs(ctx: Ctx) -> Outcome:
    """A second `onyx run` (and a resume) of a batch whose run is in progress: refused, nothing written by it."""
    first = spawn("run", "-i", STONE_SIGN, "-o", ctx.root, *RUN_ARGS, "--batch", "busy", "--until", "SFM", "-q",
                  environ=ctx.witness.env)
    batch = ctx.root / "busy"
    try:
        deadline = time.monotonic() + 300
        log = batch / "logs" / "sfm.log"
        while not log.is_file():   # frames done, sfm under way
            assert first.poll() is None and time.monotonic() < deadline, "the first run did not reach sfm"
            time.sleep(0.1)
        # Held where it is (stopped, not ended: its run is still in progress) so the tries below meet it
        # however fast its sfm step would finish.
        os.killpg(first.pid, signal.SIGSTOP)
        settled = [p for p in tree(batch) if ".tmp-" not in p and not p.startswith((".work", "logs"))]
        second = ctx.run(STONE_SIGN, "--batch", "busy")
        resume = ctx.cli("resume", "busy", "-d", ctx.root, "-q")
        assert first.poll() is None, "the first run ended before the second was tried: not concurrent"
        assert resume.returncode == 2 and "run in progress" in resume.stderr, resume.stderr
        assert [p for p in tree(batch) if ".tmp-" not in p and not p.startswith((".work", "logs"))] == settled
    finally:
        with contextlib.suppress(ProcessLookupError):  # it may have failed on its own
            os.killpg(first.pid, signal.SIGKILL)
        first.communicate()
    return cli_outcome(second)


CASES = [
    Case("not-a-video", refused_run("text"), 2, ("not a readable video", "holds text, not video")),
    Case("zero-bytes", refused_run("empty"), 2, ("is empty (0 bytes)",)),
    Case("truncated", refused_run("truncated"), 2, ("without its index", "the file is truncated")),
    Case("fewer-than-3-frames", refused_run("two_frames"), 2, ("has 2 frame(s); Onyx needs at least 3",)),
    Case("unsupported-codec", refused_run("unknown_codec"), 2,
         ("cannot be decoded", "Decoder (codec none) not found", "re-encode")),
    Case("absurd-resolution", refused_run("huge"), 2, ("claims 16000x16000 pixels",)),
    Case("absurd-resolution-beyond-ffmpeg", refused_run("absurd"), 2, ("100000x100000",)),
    Case("no-video-stream", refused_run("audio_only"), 2, ("has no video stream",)),
    Case("spaces-and-non-ascii-path", odd_path_works, 0, ("done",), writes_nothing=False),
    Case("textureless", textureless, 1,
         ("sparse_model", "SfM registered 0 of", "textureless", "onyx resume grey-wall",
          "sparse_model.mapper=global", "--set STEP.SETTING=VALUE"), writes_nothing=False),
    Case("duplicate-drop", duplicate_drop, None, ("same content as batch {key}, not processed again",),
         writes_nothing=False),
    Case("partial-copy", partial_copy, None, ("walk.mp4: new batch walk-",), writes_nothing=False),
    Case("non-video-drop", non_video_drop, None,
         ("notes.mp4 rejected", "not a readable video", "empty.mov rejected", "is empty (0 bytes)"),
         writes_nothing=False),
    Case("zip-slip", zip_slip, 2, ("not a safe Onyx export, nothing written", "zip-slip")),
    Case("symlink-in-archive", symlink_in_archive, 2, ("not a safe Onyx export", "is a symlink")),
    Case("key-collision-import", import_key_collision, 2, ("{key}", "--as NEWKEY")),
    Case("key-collision-run", run_key_collision, 2, ("batch '{key}' already exists",)),
    Case("purge-outside-root", purge_outside_root, 2, ("refusing", "symlink")),
    Case("purge-all-with-link-outside", purge_all_with_escape, 2, ("nothing removed",)),
    Case("concurrent-runs", concurrent_runs, 2, ("batch 'busy' has a run in progress", "pid"),
         writes_nothing=False),
]


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input(case: Case, witness, inputs, tmp_path, capfd):
    ctx = Ctx(witness=witness, inputs=inputs, tmp=tmp_path, capfd=capfd)
    before = tree(witness.root)
    outcome = case.act(ctx)
    if case.code is not None:
        assert outcome.code == case.code, f"exit {outcome.code}, expected {case.code}:\n{outcome.text[-3000:]}"
    for fragment in case.says:
        assert fragment.format(key=witness.key) in outcome.text, \
            f"{fragment!r} not in the message:\n{outcome.text[-3000:]}"
    if case.code == 2:
        assert "Traceback" not in outcome.text
    for internal in ("dagster._core", "DagsterPipesExecutionError", "DagsterExecutionStepExecutionError"):
        assert internal not in outcome.text, f"Dagster's internals shown to the user: {outcome.text[-3000:]}"
    if case.writes_nothing:
        assert tree(witness.root) == before, "a refusal wrote into the data root"
    witness.assert_untouched(case.id)


def test_witness_still_complete_and_current(witness):
    """After every bad input: the batch still needs nothing, and its files are the same."""
    done = onyx("resume", witness.key, "-d", witness.root, "--dry-run", environ=witness.env)
    assert done.returncode == 0 and "nothing to do" in done.stdout, done.stdout + done.stderr
    assert checksums(witness.batch) == witness.files
    assert counts(witness.root, witness.key) == witness.counts
