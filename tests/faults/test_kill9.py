"""kill -9 of ``onyx`` (its whole process group, as a crash would) during each step in turn,
then ``onyx resume``: nothing upstream recomputed, nothing partial marked done, and the
resume completes. One batch goes through all of it (see conftest.kill_chain)."""

from __future__ import annotations

import pytest

from .conftest import KILL_ORDER, output_folder
from .helpers import ASSETS, planned, staging

pytestmark = pytest.mark.slow


def _upstream(step: str) -> list[str]:
    return list(ASSETS[: ASSETS.index(step)])


@pytest.mark.parametrize("step", KILL_ORDER)
def test_kill9_during_step(kill_chain, step):
    record = kill_chain.kills[step]
    kill = record.kill
    assert kill.tool_running and kill.alive_at_kill, f"not killed during {step}: {kill}"
    assert kill.group_gone, f"a process of the killed onyx run survived the kill ({step})"
    # The killed run had started the step and recorded no materialisation of it.
    started = set().union(*(r.started for r in record.runs))
    materialized = set().union(*(r.materialized for r in record.runs))
    assert step in started, f"{step}: no STEP_START in the killed run(s) {record.runs}"
    assert step not in materialized and not set(ASSETS[ASSETS.index(step):]) & materialized, \
        f"the killed run marked {materialized} done"
    assert all(r.status in ("STARTED", "STARTING") for r in record.runs if step in r.started)
    assert record.counts_after[step] == record.counts_before[step] == 0
    # Nothing upstream recomputed: what was done before this process stayed done, once.
    for name in _upstream(step):
        if record.counts_before[name]:
            assert record.counts_after[name] == record.counts_before[name] == 1, (name, record.counts_after)
    # Nothing partial visible: the step's output folder is absent (its first attempt);
    # at most a hidden staging folder is left.
    assert not record.folder_existed_before and not record.folder_exists_after, \
        f"{output_folder(kill_chain.batch, step)} appeared after the kill: {sorted(record.folder_after)[:5]}"
    if step in ("frames", "masks"):
        assert any(f".tmp-{'images' if step == 'frames' else 'masks'}-" in s for s in kill.staged), \
            f"{step} was not killed mid-write (staged: {kill.staged})"


@pytest.mark.parametrize("step", KILL_ORDER)
def test_resume_after_kill_reports_it_failed_and_redoes_only_it(kill_chain, step):
    """The process after the kill (the next resume) planned the killed step as failed and
    nothing upstream of it; the last resume finished the batch."""
    index = KILL_ORDER.index(step)
    output = kill_chain.resumes[index + 1] if index + 1 < len(KILL_ORDER) else kill_chain.final.stdout
    plan = planned(output)
    assert plan.get(step) == "failed", f"the plan after the kill during {step}: {plan}\n{output[-2000:]}"
    assert not set(plan) & set(_upstream(step)), f"resume after the kill during {step} planned {plan}"


def test_resume_completes_with_every_step_materialised_once(kill_chain):
    final = kill_chain.final
    assert final.returncode == 0, final.stdout[-3000:] + final.stderr[-3000:]
    assert kill_chain.final_counts == dict.fromkeys(ASSETS, 1), kill_chain.final_counts
    batch = kill_chain.batch
    assert {p.name for p in (batch / "sparse" / "0").iterdir()} >= {"cameras.bin", "images.bin", "points3D.bin"}
    assert (batch / "images" / "index.json").is_file()
    assert any((batch / "output" / "photogrammetry-proto").glob("mesh.*"))
    assert len(list((batch / "masks").glob("*.png"))) == len(list((batch / "images").glob("*.jpg")))
    # Every killed attempt's staging folder was swept when the step published again.
    assert staging(batch) == [] and not list(batch.rglob(".old-*"))


def test_kill9_while_republishing_keeps_the_previous_whole_output(kill_chain):
    """--from-step SEGFORMER, killed while the new masks are being written: masks/ is still the
    previous whole set, the previous materialisation still counts, and resume redoes masks and the
    viewer (the step after it in the killed run, which never ran)."""
    record = kill_chain.redo
    assert record is not None, "the chain did not finish, so the re-materialisation was not tried"
    assert record.kill.alive_at_kill and record.kill.group_gone
    assert any(".tmp-masks-" in s for s in record.kill.staged), f"not mid-write: {record.kill.staged}"
    assert record.folder_existed_before and record.folder_after == record.folder_before
    assert record.counts_after == record.counts_before == dict.fromkeys(ASSETS, 1)
    assert "masks" not in set().union(*(r.materialized for r in record.runs))
    resumed = kill_chain.redo_resume
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert planned(resumed.stdout) == {"masks": "failed", "viewer": "failed"}, resumed.stdout
    assert kill_chain.redo_counts == {**dict.fromkeys(ASSETS, 1), "masks": 2}
