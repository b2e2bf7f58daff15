"""The Dagster UI, in headless Chromium, against the real webserver and daemon (tests/ui/conftest.py).

What a person sees: the global asset lineage shows the five assets; a batch's latest
``sparse_model`` and ``frames`` materialisations show their figures and their pictures
(inline markdown images with data: URIs, behind Dagster's "[Show Markdown]" link because
they are longer than 1,000 characters). Screenshots are saved to the test's temporary
folder and, when ONYX_SCREENSHOTS names a folder, copied there.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import pytest

from components import needs

ASSETS = ("video", "frames", "sparse_model", "reconstruction", "masks")


def open_page(page, site, path: str) -> None:
    page.goto(f"{site.url}{path}")
    # First visit only: Dagster's "Join the community" dialog covers the page.
    skip = page.get_by_role("button", name="Skip", exact=True)
    try:
        skip.wait_for(state="visible", timeout=5_000)
        skip.click()
    except Exception:  # noqa: BLE001 - the dialog is optional: shown once per browser profile
        pass


def picture_in_metadata(page, site, asset: str, row: str, name: str) -> dict:
    """Open the asset's events for the site's batch, open ``row``'s markdown, measure its picture."""
    open_page(page, site, f"/assets/{asset}?view=events&partition={site.batch}")
    page.get_by_text(f"Partition {site.batch} materialized in run").first.wait_for()
    metadata_row = page.locator("tr", has=page.get_by_text(row, exact=True)).first
    metadata_row.get_by_text("[Show Markdown]").click()
    dialog = page.get_by_role("dialog")
    picture = dialog.locator("img").first
    picture.wait_for()
    page.wait_for_function("img => img.complete && img.naturalWidth > 0", arg=picture.element_handle())
    facts = picture.evaluate("img => ({src: img.getAttribute('src').slice(0, 40), width: img.naturalWidth,"
                             " height: img.naturalHeight, shown: img.getBoundingClientRect().width})")
    site.screenshot(page, name)
    dialog.get_by_role("button", name="Close").click()
    return facts


def test_asset_graph_shows_the_five_assets(onyx_site, page):
    start = time.monotonic()
    open_page(page, onyx_site, "/asset-groups")
    page.get_by_text("Global asset lineage").first.wait_for()
    page.get_by_text("ingest", exact=True).first.wait_for()
    # Groups start collapsed: "Expand all groups" (Alt+E, also in the graph's settings menu).
    page.keyboard.press("Alt+e")
    try:
        page.get_by_text("sparse_model", exact=True).first.wait_for(timeout=10_000)
    except Exception:  # noqa: BLE001 - the shortcut changed: the same command is in the settings menu
        page.locator("button:has(.bp5-icon, [aria-label='settings'])").last.click()
        page.get_by_text("Expand all groups").click()
    for asset in ASSETS:
        page.get_by_text(asset, exact=True).first.wait_for()
        assert page.get_by_text(asset, exact=True).first.is_visible(), f"{asset} is not shown in the asset graph"
    page.wait_for_timeout(500)  # let the graph settle before the picture
    shot = onyx_site.screenshot(page, "asset-graph")
    assert shot.stat().st_size > 10_000
    assert time.monotonic() - start < 90


def test_sparse_model_materialisation_shows_figures_and_camera_path(onyx_site, page):
    open_page(page, onyx_site, f"/assets/sparse_model?view=events&partition={onyx_site.batch}")
    page.get_by_text(f"Partition {onyx_site.batch} materialized in run").first.wait_for()
    for key in ("registered_ratio", "registered", "points3d", "mean_reprojection_error", "camera_path"):
        assert page.get_by_text(key, exact=True).first.is_visible(), f"metadata {key} not shown"
    ratio_row = page.locator("tr", has=page.get_by_text("registered_ratio", exact=True)).first
    ratio = float(ratio_row.locator("td").nth(1).inner_text().strip())
    assert 0 < ratio <= 1, ratio
    onyx_site.screenshot(page, "sparse-model-materialisation")

    picture = picture_in_metadata(page, onyx_site, "sparse_model", "camera_path", "sparse-model-camera-path")
    assert picture["src"].startswith("data:image"), picture
    assert picture["width"] > 100 and picture["height"] > 100 and picture["shown"] > 100, picture


def test_frames_materialisation_shows_contact_sheet(onyx_site, page):
    picture = picture_in_metadata(page, onyx_site, "frames", "contact_sheet", "frames-contact-sheet")
    assert picture["src"].startswith("data:image"), picture
    assert picture["width"] > 100 and picture["height"] > 100 and picture["shown"] > 100, picture
    rows = page.locator("tr", has=page.get_by_text("frames", exact=True)).first
    assert int(rows.locator("td").nth(1).inner_text().strip()) >= 3


def test_backfill_across_batches_from_the_ui(onyx_site, page, datasets):
    """Two more batches, then Materialize… > Missing > Launch backfill, as a person would click it;
    the daemon turns the backfill into one run per batch and both succeed."""
    from dagster import AssetKey, AssetRecordsFilter, DagsterInstance

    from onyx_dagster.batches import add_batch, parse_settings

    asset = "video"  # the cheap asset: the mechanism is the same for frames and sparse_model
    new = {"ui-backfill-a": "stone_sign", "ui-backfill-b": "holiday_display_01"}
    instance = DagsterInstance.from_config(str(onyx_site.home))
    try:
        for key, name in new.items():
            add_batch(instance, onyx_site.data, key, parse_settings({
                "input": str(datasets / "real_videos" / f"{name}.mp4"), "scene": "outdoor",
                "mode": "gaussian", "quality": "proto", "interval": 0.15}))

        open_page(page, onyx_site, f"/assets/{asset}")
        page.get_by_role("button", name="Materialize…").first.click()
        dialog = page.get_by_role("dialog")
        dialog.get_by_role("button", name="Missing", exact=True).click()
        dialog.get_by_text("2 partitions").wait_for()
        onyx_site.screenshot(page, "backfill-dialog")
        dialog.get_by_role("button", name="Launch backfill").click()
        page.get_by_text("Created backfill").first.wait_for()

        deadline = time.monotonic() + 150
        backfills = []
        while time.monotonic() < deadline:
            backfills = instance.get_backfills()
            if backfills and backfills[0].status.value.startswith("COMPLETED"):
                break
            time.sleep(2)
        assert backfills and backfills[0].status.value == "COMPLETED_SUCCESS", backfills
        runs = instance.get_runs()
        backfill_runs = [run for run in runs if run.tags.get("dagster/backfill") == backfills[0].backfill_id]
        assert sorted(run.tags.get("dagster/partition") for run in backfill_runs) == sorted(new)
        for key in new:
            records = instance.fetch_materializations(
                AssetRecordsFilter(asset_key=AssetKey(asset), asset_partitions=[key]), limit=1).records
            assert records, f"{asset} [{key}] not materialised by the backfill"
        open_page(page, onyx_site, "/runs?tab=backfills")
        page.get_by_text(backfills[0].backfill_id).first.wait_for()
        onyx_site.screenshot(page, "backfills")
    finally:
        instance.dispose()


def _has_batch_job() -> bool:
    from onyx_dagster import definitions

    return definitions.defs.get_repository_def().has_job("batch_job")


@needs("checkout", _has_batch_job(), "definitions.py has no partitioned batch_job, so `dagster job backfill` has "
       "no job to backfill (see docs/many-videos.md)")
def test_backfill_across_batches_from_the_cli(onyx_site, datasets):
    """``dagster job backfill`` queues one run per batch; the running daemon starts them and they succeed.

    Needs the partitioned ``batch_job`` in definitions.py (docs/many-videos.md): Dagster 1.13's CLI
    backfills jobs, not asset selections.
    """
    import subprocess

    from dagster import DagsterInstance

    from onyx_dagster.batches import add_batch, parse_settings

    keys = ["cli-backfill-a", "cli-backfill-b"]
    instance = DagsterInstance.from_config(str(onyx_site.home))
    try:
        for key in keys:
            add_batch(instance, onyx_site.data, key, parse_settings({
                "input": str(datasets / "real_videos" / "holiday_display_01.mp4"), "scene": "outdoor",
                "mode": "gaussian", "quality": "proto", "interval": 0.3}))
        dagster = str(Path(sys.executable).with_name("dagster"))
        done = subprocess.run([dagster, "job", "backfill", "-w", "workspace.yaml", "-l", "onyx",
                               "-j", "batch_job", "--partitions", ",".join(keys), "--noprompt"],
                              cwd=Path(__file__).resolve().parents[2], env=onyx_site.env, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0 and "Launched backfill" in done.stdout, (done.stdout + done.stderr)[-3000:]
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            runs = [run for run in instance.get_runs() if run.tags.get("dagster/partition") in keys]
            if len(runs) == len(keys) and all(run.is_finished for run in runs):
                break
            time.sleep(2)
        assert sorted(run.tags["dagster/partition"] for run in runs) == keys
        assert all(run.status.value == "SUCCESS" for run in runs), [(r.run_id, r.status) for r in runs]
        assert all(run.tags.get("dagster/backfill") for run in runs)
    finally:
        instance.dispose()
