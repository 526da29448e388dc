"""Names shared by the data, the model and the config checks."""

# Sentence-pair objective: next-sentence prediction, sentence-order prediction, or MLM only.
SENTENCE_TASKS = ("nsp", "sop", "none")
