"""Names of the model's input arrays in a batch: the one list data, tasks and prediction share."""

ENCODER_INPUTS = ("input_ids", "token_type_ids", "attention_mask")
# Only packed rows (data/packing.py) carry these: each example's segment, positions and [CLS].
PACKED_INPUTS = ("segment_ids", "position_ids", "cls_positions")
# The pretraining model reads the masked LM at these positions only.
MLM_INPUTS = ("masked_lm_positions",)
