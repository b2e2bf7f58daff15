"""The settings: one model, one table in docs/settings.md, renamed variables with a warning."""

from pathlib import Path

import pytest

from onyx_dagster.settings import OnyxSettings, OnyxSettingsWarning, SettingsError, markdown_table

DOCS = Path(__file__).resolve().parents[2] / "docs" / "settings.md"


def test_the_documented_table_is_the_model():
    assert markdown_table() in DOCS.read_text(), "regenerate it: python -m onyx_dagster.settings"


def test_each_field_reads_its_variable_and_bad_values_name_the_variable():
    settings = OnyxSettings.from_env({"ONYX_RUNNER": "docker", "ONYX_DOCKER_GPUS": "no", "ONYX_DATA": "rel/data",
                                      "ONYX_CELERY_WORKER_LOST_S": "30", "ONYX_IMAGE_TAG": ""})
    assert settings.runner == "docker" and settings.docker_gpus is False and settings.data.is_absolute()
    assert settings.celery_worker_lost_s == 30 and settings.image_tag == "latest"  # empty means unset
    with pytest.raises(SettingsError) as refused:
        OnyxSettings.from_env({"ONYX_RUNNER": "podman", "ONYX_K8S_GPUS": "-1"})
    assert "ONYX_RUNNER: got 'podman'" in str(refused.value) and "ONYX_K8S_GPUS" in str(refused.value)


def test_renamed_variables_work_with_a_warning_and_the_new_name_wins():
    with pytest.warns(OnyxSettingsWarning, match="ONYX_REGISTRY is renamed ONYX_IMAGE_PREFIX"):
        assert OnyxSettings.from_env({"ONYX_REGISTRY": "reg.local/"}).image_prefix == "reg.local/"
    with pytest.warns(OnyxSettingsWarning, match="ONYX_TAG"):
        assert OnyxSettings.from_env({"ONYX_TAG": "7"}).image_tag == "7"
    assert OnyxSettings.from_env({"ONYX_TAG": "7", "ONYX_IMAGE_TAG": "8"}).image_tag == "8"


def test_no_module_but_the_settings_reads_onyx_variables():
    import re

    read = re.compile(r"""(environ\.get\(|environ\[|getenv\()\s*["']ONYX_(?!PARENT_PID)""")
    repo = DOCS.parents[1]
    readers = [f"{path.relative_to(repo)}:{number}: {line.strip()}"
               for path in sorted((repo / "onyx_dagster").rglob("*.py")) if path.name != "settings.py"
               for number, line in enumerate(path.read_text().splitlines(), 1) if read.search(line)]
    assert not readers, "read these through OnyxSettings:\n" + "\n".join(readers)
