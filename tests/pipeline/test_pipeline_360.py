"""A 360 walk through the frames asset (the ingest tool behind Dagster Pipes): what the UI shows."""

from __future__ import annotations

from pathlib import Path

from onyx_dagster.batches import add_batch, parse_settings
from onyx_sample import make_sample_video


def test_frames_of_a_360_walk_show_the_motion_and_the_operator_mask(tmp_path, dagster_instance, data_root,
                                                                    materialize_partition, latest_metadata):
    video = make_sample_video(tmp_path, kind="360", frames=30, width=384, height=192, fps=10, operator=True)
    raw = {"input": str(video.path), "scene": "indoor", "mode": "gaussian", "quality": "proto", "video": "auto"}
    layout = add_batch(dagster_instance, data_root, "walk-360", parse_settings(raw))
    materialize_partition(["video", "frames"], "walk-360")
    frames = latest_metadata("frames", "walk-360")
    assert frames["is_360"] is True and frames["frame_selection"] == "motion"
    assert frames["motion"]["analysed_frames"] == 30 and frames["motion"]["windows_by_motion"] >= 3
    assert frames["operator_mask"]["camera_fixed_fraction"] > 0.01 and not frames["operator_mask"]["note"]
    # the mask's preview: a path the UI links and the picture shown in place
    assert Path(frames["operator_mask_preview_path"]) == (layout.root / "previews" / "operator_mask.png").resolve()
    assert "data:image/jpeg;base64," in frames["operator_mask_preview"]
    assert (layout.images / "operator_masks").is_dir() and (layout.panoramas / "operator_masks").is_dir()
