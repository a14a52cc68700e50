"""`python -m monai.bundle run ... --tracking mlflow` logs a bundle's training into a local MLflow store.

MONAI's default MLflow settings append an ``MLFlowHandler`` to ``train#handlers`` and ``validate#handlers`` of the
``train#trainer`` / ``validate#evaluator`` engines; MLflow 3 no longer accepts a folder (file store) as tracking URI,
so the store is a local SQLite file. The run is read back with MLflow's client and the logged values are checked.
MLflow is an optional extra (``.[mlflow]``): without it only the config contract below runs.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from monai.bundle import ConfigParser, ConfigWorkflow
from monai.bundle.utils import DEFAULT_MLFLOW_SETTINGS

from tests.bundles.bundle_helpers import BUNDLES, config_path, logged_scalars, run_bundle


@pytest.mark.parametrize("bundle", BUNDLES)
def test_default_mlflow_settings_patch_the_train_config(bundle: str, tmp_path: Path) -> None:
    """The ids MONAI's default settings patch exist, so each engine gets its MLFlowHandler (no MLflow needed)."""
    parser = ConfigParser()
    parser.read_config(config_path(bundle, "train.yaml"))
    parser["save_execute_config"] = str(tmp_path / "config.json")  # not into the bundle's eval/
    handlers = {k: len(parser[k]) for k in ("train#handlers", "validate#handlers")}
    ConfigWorkflow.patch_bundle_tracking(parser, DEFAULT_MLFLOW_SETTINGS)
    for key, count in handlers.items():
        assert len(parser[key]) == count + 1 and parser[key][-1]["_target_"] == "MLFlowHandler", key
    assert parser["train#handlers"][-1]["tag_name"] == "train_loss"
    assert parser["tracking_uri"].startswith("$monai.utils.path_to_sqlite_uri(@output_dir")
    assert (tmp_path / "config.json").is_file()


@pytest.mark.slow
def test_unet2d_training_is_tracked_in_mlflow(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    mlflow = pytest.importorskip("mlflow", reason="MLflow is optional: pip install -e '.[mlflow]'")
    pytest.importorskip("sqlalchemy", reason="MLflow's SQLite store needs sqlalchemy (in the mlflow extra)")
    pytest.importorskip("alembic", reason="MLflow's SQLite store needs alembic (in the mlflow extra)")
    from monai_nacl.data import make_synthetic_dataset

    datalist = make_synthetic_dataset(tmp_path / "data", num_cases=3, spatial_dims=3, size=32, seed=0)
    out = tmp_path / "out"
    tracking_uri = f"sqlite:///{tmp_path / 'mlruns.db'}"
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)  # it would take precedence over tracking_uri
    # in-process, as `python -m monai.bundle run --config_file configs/train.yaml --tracking mlflow --tracking_uri ...`
    run_bundle(
        "unet2d_nacl",
        ["train.yaml"],
        tracking="mlflow",
        tracking_uri=tracking_uri,
        experiment_name="nacl_test",
        dataset_dir=str(tmp_path / "data"),
        datalist=datalist,
        output_dir=str(out),
        ckpt_dir=str(out / "models"),
        max_epochs=1,
        val_interval=1,
        batch_size=1,
        num_samples=1,
        cache_rate=0.0,
        roi_size=[32, 32],
        # a path: MONAI's default `output_dir + '/config_<time>.json'` is no path when output_dir is not an expression
        save_execute_config=str(out / "execute_config.json"),
        **{"train#trainer#epoch_length": 1},
    )

    client = mlflow.MlflowClient(tracking_uri=tracking_uri)
    experiment = client.get_experiment_by_name("nacl_test")
    assert experiment is not None, "no MLflow experiment was written"
    runs = client.search_runs([experiment.experiment_id])
    assert len(runs) == 1, "trainer and validator must log into one run"
    run = runs[0]
    assert run.info.status == "FINISHED"
    assert run.data.params["max_epochs"] == "1" and run.data.params["epoch_length"] == "1"
    # the executed config is the run's artifact
    assert [a.path for a in client.list_artifacts(run.info.run_id)] == ["execute_config.json"]
    logged = json.loads(
        Path(client.download_artifacts(run.info.run_id, "execute_config.json", str(tmp_path))).read_text()
    )
    assert logged["loss_name"] == "nacl" and logged["tracking_uri"] == tracking_uri

    # the last value of each metric; every one logged is a real number
    metrics = run.data.metrics
    assert {"train_loss", "train_mean_dice", "val_mean_dice", "val_ece", "val_cece"} <= set(metrics), metrics
    for name in ("train_loss", "train_mean_dice", "val_mean_dice", "val_ece", "val_cece"):
        assert math.isfinite(metrics[name]), f"{name} = {metrics[name]}"
    assert metrics["train_loss"] > 0.0
    for name in ("train_mean_dice", "val_mean_dice", "val_ece", "val_cece"):
        assert 0.0 <= metrics[name] <= 1.0, f"{name} = {metrics[name]}"
    # one training iteration and one validation epoch: one point each
    assert len(client.get_metric_history(run.info.run_id, "train_loss")) == 1
    history = client.get_metric_history(run.info.run_id, "val_ece")
    assert [m.step for m in history] == [1]

    # the validator's numbers are the ones the bundle's own TensorBoard log has (same engine state)
    for name in ("val_mean_dice", "val_ece", "train_loss"):
        logged = logged_scalars(out, name)
        assert metrics[name] == pytest.approx(logged[max(logged)], rel=1e-5), name
