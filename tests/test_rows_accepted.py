"""One bad row never hides the next problem: the dataset probe reports it, the others go on without it."""

from __future__ import annotations

import pytest
import yaml
from pages import write_pages
from probing import codes, context, probe

from dsocr_probe.findings import Status


@pytest.mark.parametrize("broken", ["not an image", "truncated"])
def test_a_broken_first_row_is_reported_once_by_the_dataset_probe(demo, tmp_path, broken):
    config = yaml.safe_load((demo.path / "training_config.yaml").read_text(encoding="utf-8"))
    train = write_pages(tmp_path / "data" / "train", ["broken page", "second page", "third page"])
    first = train / "images" / "00001.png"
    # A truncated page still has its header: only decoding the pixels shows it is broken.
    first.write_bytes(b"this is not a PNG" if broken == "not an image" else first.read_bytes()[:100])
    config["data"].update(train_dir=str(train), val_dir=None)
    config["training"]["per_device_train_batch_size"] = 1
    path = tmp_path / "training_config.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    ctx = context(trust_remote_code=True, train_config=path, device="cpu")

    dataset = probe("dataset", ctx)
    named = [f for f in dataset.findings if f.status is Status.FAIL]
    assert named and "00001.png" in str([f.table for f in named])
    batch = probe("batch", ctx)
    assert batch.status is not Status.FAIL, [(f.code, f.title) for f in batch.findings]
    assert "batch.builder-raised" not in codes(batch)
    step = probe("step", ctx)
    assert step.status is Status.PASS, [(f.code, f.title) for f in step.findings]
    measured = next(f for f in step.findings if f.code == "step.rows").table
    assert all(not row["image"].endswith("00001.png") for row in measured)
