"""An exact XLM-R tokenizer rebuilt from a unigram vocabulary and a normalisation table."""

from __future__ import annotations

from collections.abc import Sequence

from align.models import charsmap

SPECIAL_TOKENS = ("<s>", "<pad>", "</s>", "<unk>", "<mask>")


def build_tokenizer_json(
    pieces: Sequence[str],
    scores: Sequence[float],
    single_code_point_rules: dict[int, tuple[int, ...]],
    unk_id: int = 3,
) -> str:
    """A ``tokenizer.json`` equal to XLM-R's: precompiled charsmap, metaspace, unigram model."""
    from tokenizers import Regex, Tokenizer, decoders, normalizers, pre_tokenizers, processors
    from tokenizers.models import Unigram

    compiled = charsmap.compile_rules(charsmap.xlmr_rules(single_code_point_rules))
    vocab = [(piece, float(score)) for piece, score in zip(pieces, scores, strict=True)]
    tok = Tokenizer(Unigram(vocab, unk_id=unk_id, byte_fallback=False))
    tok.normalizer = normalizers.Sequence(
        [
            normalizers.Precompiled(compiled),
            normalizers.Replace(Regex(" {2,}"), " "),
        ]
    )
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always")
    tok.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="always")
    ids = {piece: pieces.index(piece) for piece in ("<s>", "</s>")}
    tok.post_processor = processors.TemplateProcessing(
        single="<s> $A </s>",
        pair="<s> $A </s> </s> $B </s>",
        special_tokens=[("<s>", ids["<s>"]), ("</s>", ids["</s>"])],
    )
    special = [piece for piece in pieces if piece in SPECIAL_TOKENS]
    tok.add_special_tokens(special)
    return tok.to_str()
