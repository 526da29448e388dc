"""This project's tokenizers as a Hugging Face `tokenizer.json`, built with the `tokenizers`
library, so `transformers.AutoTokenizer` (or `tokenizers` in Python, Rust or JavaScript, e.g. in
front of an exported SavedModel) gives exactly this project's ids.

WordPiece is BERT's normaliser, pre-tokenizer and WordPiece model over the vocabulary.
SentencePiece's BPE is rebuilt from the model proto as Hugging Face's own converter does it:
the normalizer in SentencePiece's order (its precompiled NFKC map, extra spaces removed, spaces
escaped as "▁" with a dummy prefix), the pieces as the vocabulary and the merges ranked by piece
score; consecutive unknown characters fuse into one [UNK], as SentencePiece does.
"""

import re

from sentencepiece import sentencepiece_model_pb2

from bert_jax.data.sentencepiece import SPECIAL_TOKENS, SentencePiece
from bert_jax.data.wordpiece import WordPiece

_NORMAL = 1  # SentencePiece piece types: NORMAL pieces are the only ones BPE merges
_WORD_START = "▁"


def build_tokenizer(tokenizer: SentencePiece | WordPiece):
    """A `tokenizers.Tokenizer` that encodes like `tokenizer`, with BERT's [CLS]/[SEP] template."""
    from tokenizers import AddedToken, processors

    if isinstance(tokenizer, WordPiece):
        result = _wordpiece(tokenizer)
    else:
        result = _sentencepiece(tokenizer)
    result.add_special_tokens([AddedToken(token, special=True) for token in SPECIAL_TOKENS])
    cls, sep = SPECIAL_TOKENS[tokenizer.cls_id], SPECIAL_TOKENS[tokenizer.sep_id]
    result.post_processor = processors.TemplateProcessing(
        single=f"{cls}:0 $A:0 {sep}:0",
        pair=f"{cls}:0 $A:0 {sep}:0 $B:1 {sep}:1",
        special_tokens=[(cls, tokenizer.cls_id), (sep, tokenizer.sep_id)],
    )
    return result


def _wordpiece(tokenizer: WordPiece):
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers

    vocab = {piece: index for index, piece in enumerate(tokenizer.vocab)}
    result = Tokenizer(models.WordPiece(vocab, unk_token=SPECIAL_TOKENS[tokenizer.unk_id]))
    result.normalizer = normalizers.BertNormalizer(
        clean_text=True,
        handle_chinese_chars=True,
        strip_accents=tokenizer.strip_accents,
        lowercase=tokenizer.do_lower_case,
    )
    result.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    result.decoder = decoders.WordPiece(prefix="##")
    return result


def _sentencepiece(tokenizer: SentencePiece):
    from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers

    proto = sentencepiece_model_pb2.ModelProto()
    proto.ParseFromString(tokenizer.to_bytes())
    vocab = {piece.piece: index for index, piece in enumerate(proto.pieces)}
    normal = {p.piece: (p.score, i) for i, p in enumerate(proto.pieces) if p.type == _NORMAL}
    ranked = [
        (-score, index, piece[:cut], piece[cut:])
        for piece, (score, index) in normal.items()
        for cut in range(1, len(piece))
        if piece[:cut] in normal and piece[cut:] in normal
    ]
    merges = [(left, right) for _, _, left, right in sorted(ranked)]
    unk = SPECIAL_TOKENS[tokenizer.unk_id]
    result = Tokenizer(models.BPE(vocab=vocab, merges=merges, unk_token=unk, fuse_unk=True))
    spec = proto.normalizer_spec
    charsmap = spec.precompiled_charsmap
    steps = [normalizers.Precompiled(charsmap)] if charsmap else []
    if spec.remove_extra_whitespaces:
        # Only spaces count: SentencePiece leaves other whitespace, such as newlines, alone.
        steps += [
            normalizers.Replace(Regex(r"\A +| +\z"), ""),
            normalizers.Replace(Regex(" {2,}"), " "),
        ]
    if spec.escape_whitespaces:
        steps.append(normalizers.Replace(" ", _WORD_START))
    if spec.add_dummy_prefix:
        # Metaspace skips the dummy prefix when the text already starts with "▁"; SentencePiece
        # does not.
        steps.append(normalizers.Replace(Regex(r"\A" + re.escape(_WORD_START)), _WORD_START * 2))
        result.pre_tokenizer = pre_tokenizers.Metaspace(
            replacement=_WORD_START, prepend_scheme="always", split=False
        )
    result.normalizer = normalizers.Sequence(steps)
    result.decoder = decoders.Sequence(
        [decoders.Replace(_WORD_START, " "), decoders.Fuse(), decoders.Strip(content=" ", left=1)]
    )
    return result
