"""[CLS] first [SEP] (second [SEP]) for either tokenizer, truncated as Hugging Face truncates."""

from bert_jax.errors import UserError

TRUNCATIONS = ("longest_first", "only_first", "only_second")


def encode_pair(
    tokenizer,
    first: str,
    second: str | None = None,
    *,
    max_length: int,
    truncation: str = "longest_first",
    pad: bool = False,
) -> dict[str, list[int]]:
    """[CLS] first [SEP] (second [SEP]) cut to `max_length` tokens, as Hugging Face builds it.

    `truncation` is "longest_first" (drop from the longer text, the second one on ties),
    "only_first" or "only_second"; `pad` fills up to `max_length` with [PAD] (mask 0).
    Returns input_ids, token_type_ids (0 for the first segment, 1 for the second) and
    attention_mask.
    """
    if truncation not in TRUNCATIONS:
        raise UserError(f"truncation={truncation!r} is not one of {', '.join(TRUNCATIONS)}.")
    a = tokenizer.encode(first)
    b = None if second is None else tokenizer.encode(second)
    specials = 2 if b is None else 3
    a, b = _truncate(a, b, max_length - specials, truncation, max_length)
    input_ids = [tokenizer.cls_id, *a, tokenizer.sep_id]
    token_type_ids = [0] * len(input_ids)
    if b is not None:
        input_ids += [*b, tokenizer.sep_id]
        token_type_ids += [1] * (len(b) + 1)
    padding = max_length - len(input_ids) if pad else 0
    return {
        "input_ids": input_ids + [tokenizer.pad_id] * padding,
        "token_type_ids": token_type_ids + [0] * padding,
        "attention_mask": [1] * len(input_ids) + [0] * padding,
    }


def _truncate(
    a: list[int], b: list[int] | None, budget: int, truncation: str, max_length: int
) -> tuple[list[int], list[int] | None]:
    """Cuts the two id lists from their ends to `budget` ids in all, as Hugging Face does."""
    excess = len(a) + len(b or []) - budget
    if excess <= 0:
        return a, b
    if b is not None and truncation == "longest_first" and budget >= 0:
        # Drop from the longer until equal, then alternate starting with the second.
        uneven = min(abs(len(a) - len(b)), excess)
        even = excess - uneven
        a_cut = even // 2 + (uneven if len(a) > len(b) else 0)
        b_cut = excess - a_cut
        return a[: len(a) - a_cut], b[: len(b) - b_cut]
    if truncation == "only_second" and b is not None and len(b) >= excess:
        return a, b[: len(b) - excess]
    if truncation != "only_second" and len(a) >= excess:
        return a[: len(a) - excess], b
    raise UserError(
        f"max_length={max_length} is too short for truncation={truncation!r}: "
        f"{excess} more tokens would have to go; raise max_length or change the truncation."
    )
