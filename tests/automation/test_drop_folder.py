"""The drop-folder sensor, ticked for real against a real instance and real videos."""

from __future__ import annotations

import json
import shutil

import pytest
from dagster import build_sensor_context

from onyx_dagster.defs.drop_folder import DropFolder, drop_folder_sensor
from onyx_dagster.partitions import batches
from onyx_dagster.resources import BatchStorage


class Ticker:
    def __init__(self, instance, drop, data_root):
        self.instance, self.drop, self.data_root = instance, drop, data_root
        self.cursor = None

    def tick(self):
        context = build_sensor_context(
            instance=self.instance, cursor=self.cursor,
            resources={"drop": DropFolder(folder=str(self.drop)),
                       "storage": BatchStorage(data_root=str(self.data_root))})
        result = drop_folder_sensor(context)
        self.cursor = result.cursor
        self.logs = context.log.get_logs() if hasattr(context.log, "get_logs") else []
        return result

    def batches(self):
        return sorted(self.instance.get_dynamic_partitions(batches.name))


@pytest.fixture
def ticker(dagster_instance, tmp_path, data_root, installed_weights, monkeypatch):
    monkeypatch.setenv("ONYX_WEIGHTS", str(installed_weights))  # outdoor batches' masks can run
    monkeypatch.delenv("ONYX_SEGFORMER_WEIGHTS", raising=False)
    drop = tmp_path / "drop"
    drop.mkdir()
    return Ticker(dagster_instance, drop, data_root)


@pytest.fixture
def stone_sign(datasets):
    return datasets / "real_videos" / "stone_sign.mp4"


def test_partial_copy_is_not_taken_until_it_is_stable(ticker, stone_sign):
    data = stone_sign.read_bytes()
    target = ticker.drop / "stone sign.mp4"
    target.write_bytes(data[:200_000])
    assert ticker.tick().run_requests == []          # first sight
    with open(target, "ab") as handle:                # the copy goes on
        handle.write(data[200_000:600_000])
    assert ticker.tick().run_requests == []          # changed since last tick: still pending
    with open(target, "ab") as handle:
        handle.write(data[600_000:])
    assert ticker.tick().run_requests == []          # changed again
    result = ticker.tick()                           # unchanged over two ticks: taken
    keys = ticker.batches()
    assert len(keys) == 1 and keys[0].startswith("stone-sign-")
    assert [r.partition_key for r in result.run_requests][0] == keys[0]
    assert all(r.tags["onyx/batch"] == keys[0] for r in result.run_requests)
    settings = json.loads((ticker.data_root / keys[0] / "batch.json").read_text())
    assert settings["scene"] == "outdoor" and settings["mode"] == "gaussian"


def test_duplicate_content_is_one_batch(ticker, stone_sign):
    shutil.copy(stone_sign, ticker.drop / "a.mp4")
    ticker.tick()
    ticker.tick()
    assert len(ticker.batches()) == 1
    shutil.copy(stone_sign, ticker.drop / "copy-of-a.mp4")
    ticker.tick()
    assert ticker.tick().run_requests == []
    assert len(ticker.batches()) == 1
    assert ticker.tick().run_requests == []          # and never again


def test_non_video_is_reported_and_the_next_file_still_taken(ticker, stone_sign, capfd):
    (ticker.drop / "notes.mp4").write_text("not a video\n" * 100)
    shutil.copy(stone_sign, ticker.drop / "walk.mp4")
    ticker.tick()
    capfd.readouterr()
    result = ticker.tick()
    log = capfd.readouterr().err
    assert "ERROR - notes.mp4 rejected" in log and "not a readable video" in log
    assert len(result.run_requests) == 2 and ticker.batches()[0].startswith("walk-")
    ticker.tick()
    assert "notes.mp4" not in capfd.readouterr().err   # reported once, not every tick


def test_sidecar_and_folder_settings_override_defaults(ticker, stone_sign):
    (ticker.drop / "indoor" / "photogrammetry-production").mkdir(parents=True)
    shutil.copy(stone_sign, ticker.drop / "indoor" / "photogrammetry-production" / "room.mp4")
    shutil.copy(stone_sign, ticker.drop / "side.mp4")
    with open(ticker.drop / "side.mp4", "ab") as handle:
        handle.write(b"\0" * 16)                     # other content, so another batch
    # (gaussian-production is MILo, which the preflight refuses where no GPU is visible)
    (ticker.drop / "side.onyx.yaml").write_text("scene: indoor\nquality: proto\ninterval: 0.5\n")
    ticker.tick()
    ticker.tick()
    by_name = {key.rsplit("-", 1)[0]: json.loads((ticker.data_root / key / "batch.json").read_text())
               for key in ticker.batches()}
    assert by_name["room"]["scene"] == "indoor" and by_name["room"]["mode"] == "photogrammetry"
    assert by_name["room"]["quality"] == "production"
    assert by_name["side"]["scene"] == "indoor" and by_name["side"]["interval"] == 0.5
    assert by_name["side"]["mode"] == "gaussian"     # the default where nothing overrides it


def test_invalid_sidecar_is_rejected_clearly(ticker, stone_sign, capfd):
    shutil.copy(stone_sign, ticker.drop / "bad.mp4")
    (ticker.drop / "bad.onyx.yaml").write_text("scene: beach\nquality: [1, 2\n")
    ticker.tick()
    capfd.readouterr()
    assert ticker.tick().run_requests == []
    log = capfd.readouterr().err
    assert "ERROR - bad.mp4 rejected" in log and "is not valid YAML" in log
    (ticker.drop / "bad.onyx.yaml").write_text("scene: beach\n")   # editing the sidecar re-arms the file
    ticker.tick()
    ticker.tick()
    assert "scene: got 'beach', expected 'indoor' or 'outdoor'" in capfd.readouterr().err
    assert ticker.batches() == []


def test_a_video_whose_run_cannot_start_waits_and_says_why_once(ticker, stone_sign, capfd, monkeypatch, tmp_path,
                                                                 installed_weights):
    """Preflight in the sensor: no batch and no run while the masks' weights are missing, the reason
    logged once with its fix; taken on the tick after they are installed. ONYX_MASKS=off: no masks."""
    from onyx_dagster.defs.masks import masks

    monkeypatch.setenv("ONYX_WEIGHTS", str(tmp_path / "no-weights-here"))
    shutil.copy(stone_sign, ticker.drop / "walk.mp4")
    ticker.tick()
    capfd.readouterr()
    assert ticker.tick().run_requests == [] and ticker.batches() == []
    log = capfd.readouterr().err
    assert "walk.mp4 (batch walk-" in log and "cannot start, nothing was written" in log
    assert "SegFormer weights are not installed" in log and "onyx install --weights" in log
    assert ticker.tick().run_requests == [] and "SegFormer" not in capfd.readouterr().err  # said once
    monkeypatch.setenv("ONYX_WEIGHTS", str(installed_weights))
    result = ticker.tick()
    assert len(result.run_requests) == 2 and masks.key in result.run_requests[1].asset_selection
    monkeypatch.setenv("ONYX_WEIGHTS", str(tmp_path / "no-weights-here"))
    monkeypatch.setenv("ONYX_MASKS", "off")
    shutil.copy(stone_sign, ticker.drop / "other.mp4")
    with open(ticker.drop / "other.mp4", "ab") as handle:
        handle.write(b"\0" * 16)                     # other content, so another batch
    ticker.tick()
    result = ticker.tick()
    assert len(result.run_requests) == 2 and masks.key not in result.run_requests[1].asset_selection
    assert "masks off (ONYX_MASKS=off)" in capfd.readouterr().err
