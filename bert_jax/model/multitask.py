"""One BERT encoder shared by several task models (multi-task fine-tuning, as MT-DNN).

Each task keeps its own task model (classification, token classification, span QA) whose
`bert` is the one shared encoder, so a task's model is called exactly as when trained alone.
Parameters: the encoder at `bert` (the path pretrained weights load into) and each task's head
at `heads/<task>/...`; `{"bert": ..., **heads[task]}` are the params of that task's model alone.
"""

from collections.abc import Callable, Mapping

from flax import nnx


class MultiTaskModel(nnx.Module):
    """`heads[name]` is task `name`'s model; all of them share `bert`."""

    def __init__(self, builders: Mapping[str, Callable[[nnx.Rngs], nnx.Module]], *, rngs: nnx.Rngs):
        models = {name: build(rngs) for name, build in builders.items()}
        self.bert = next(iter(models.values())).bert
        for model in models.values():
            model.bert = self.bert  # the others' own encoders are dropped (and never initialised
            # under jit: XLA removes what no output uses)
        self.heads = nnx.Dict(models)


def task_params(params: dict, name: str) -> dict:
    """The params of task `name`'s model alone, from a multi-task model's params."""
    return {"bert": params["bert"], **params["heads"][name]}
