"""The notebooks, executed headless with nbclient on CPU with tiny runs."""

import os

import nbformat
import pytest
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError

from conftest import REPO, TINY, read_scalars

NOTEBOOK = os.path.join(REPO, "notebooks", "quickstart.ipynb")
FINETUNE = os.path.join(REPO, "notebooks", "finetune.ipynb")


def execute(monkeypatch, path=NOTEBOOK, prefix="QUICKSTART", **settings: str):
    """Runs the notebook from notebooks/ in this clone, as Jupyter would, with PREFIX_*
    settings; returns it with its outputs."""
    for key, value in settings.items():
        monkeypatch.setenv(f"{prefix}_{key}", value)
    notebook = nbformat.read(path, as_version=4)
    client = NotebookClient(
        notebook,
        timeout=600,
        kernel_name="python3",
        resources={"metadata": {"path": os.path.dirname(NOTEBOOK)}},
    )
    client.execute()
    return notebook


def cell_text(notebook, marker: str) -> str:
    """The printed output of the code cell whose source contains `marker`."""
    (cell,) = [c for c in notebook.cells if c.cell_type == "code" and marker in c.source]
    return "".join(o.get("text", "") for o in cell.outputs if o.output_type == "stream")


@pytest.mark.parametrize("path", [NOTEBOOK, FINETUNE])
def test_the_committed_notebooks_have_no_outputs(path):
    notebook = nbformat.read(path, as_version=4)
    nbformat.validate(notebook)
    for cell in notebook.cells:
        if cell.cell_type == "code":
            assert cell.outputs == [] and cell.execution_count is None, cell.source[:80]


@pytest.mark.slow
def test_quickstart_pretrains_shows_tensorboard_and_resumes_on_cpu(tmp_path, monkeypatch):
    from tensorboard import manager

    workdir = str(tmp_path / "quickstart")
    flags = " ".join(f"--config.{key}={value}" for key, value in TINY.items())
    flags += " --config.histogram_every_steps=1000"
    try:
        notebook = execute(
            monkeypatch, REQUIRE="cpu", STEPS="8", MORE_STEPS="4", FLAGS=flags, WORKDIR=workdir
        )
    finally:
        # The kernel's TensorBoard must end with the kernel; stop it here if it did not.
        leftover = [info for info in manager.get_all() if workdir in info.logdir]
        for info in leftover:
            os.kill(info.pid, 15)
    assert leftover == []

    assert f"bert_jax is installed from {REPO}" in cell_text(notebook, "def find_clone")
    assert "backend: cpu" in cell_text(notebook, "probe =")
    (tensorboard,) = [c for c in notebook.cells if "%tensorboard" in c.source]
    assert any("tensorboard-frame" in o.get("data", {}).get("text/html", "")
               for o in tensorboard.outputs)  # fmt: skip
    assert "step 8/8" in cell_text(notebook, "COMMAND = [")
    resumed = cell_text(notebook, "STEPS + MORE_STEPS}")
    assert "Resuming from the checkpoint at step 8." in resumed
    assert "step 12/12" in resumed and "step 2/" not in resumed
    assert resumed.endswith("Continued from step 8 to step 12.\n")

    losses = read_scalars(workdir)["eval/mlm_loss"]
    assert sorted(losses) == [4, 8, 12]
    assert cell_text(notebook, "EventAccumulator").splitlines() == [
        f"step {step:>5}: held-out MLM loss {losses[step]:.3f}" for step in (4, 8, 12)
    ]


@pytest.mark.slow
def test_quickstart_stops_when_the_required_accelerator_is_missing(tmp_path, monkeypatch):
    workdir = tmp_path / "quickstart"
    with pytest.raises(CellExecutionError) as error:
        execute(monkeypatch, REQUIRE="tpu", WORKDIR=str(workdir))
    assert "REQUIRE = 'tpu', but JAX sees only cpu devices" in str(error.value)
    assert not workdir.exists()


@pytest.mark.slow
def test_finetune_notebook_pretrains_fine_tunes_evaluates_and_predicts(tmp_path, monkeypatch):
    workdir = tmp_path / "finetune"
    pretrain = " ".join(f"--config.{key}={value}" for key, value in TINY.items())
    notebook = execute(
        monkeypatch,
        FINETUNE,
        "FINETUNE",
        REQUIRE="cpu",
        PRETRAIN_FLAGS=pretrain,
        MAX_TRAIN_EXAMPLES="64",
        FLAGS="--config.batch_size=16 --config.data.max_seq_length=32",
        WORKDIR=str(workdir),
    )
    assert f"Starting weights: {workdir / 'pretrain'}" in cell_text(notebook, "if not INIT_FROM")
    assert "Loaded " in cell_text(notebook, "finetune_glue.py")  # the pretrained encoder
    accuracy = read_scalars(str(workdir / "sst2"))["eval/accuracy"]
    assert list(accuracy) == [4]  # 64 examples / 16 per batch, one epoch
    evaluation = cell_text(notebook, "EventAccumulator").splitlines()
    assert evaluation[0] == f"step     4: eval/accuracy {accuracy[4]:.4f}"
    predictions = cell_text(notebook, "sentences = [").splitlines()
    assert len(predictions) == 3
    assert all(line.split()[0] in ("positive", "negative") for line in predictions)
