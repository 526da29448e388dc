"""Scalars read back from a workdir's TensorBoard event files (sweeps, benchmarks, tests)."""

import os


def _creation_order(path: str) -> tuple[int, str]:
    # events.out.tfevents.<seconds>.<host>.<pid>.<n>: order by creation time.
    return int(os.path.basename(path).split(".")[3]), path


def read_scalars(workdir: str, *, wall_time: bool = False) -> dict[str, dict[int, float]]:
    """tag -> step -> value (or the time it was written); a step logged again after a resume
    keeps its newest value."""
    import tensorflow as tf  # slow to import; only readers of event files pay for it

    scalars: dict[str, dict[int, float]] = {}
    paths = tf.io.gfile.glob(os.path.join(workdir, "events.out.tfevents.*"))
    for path in sorted(paths, key=_creation_order):
        for event in tf.compat.v1.train.summary_iterator(path):
            for value in event.summary.value:
                if value.metadata.plugin_data.plugin_name == "scalars":
                    number = event.wall_time if wall_time else float(tf.make_ndarray(value.tensor))
                    scalars.setdefault(value.tag, {})[event.step] = number
    return scalars
