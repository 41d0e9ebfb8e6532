"""The attention mask handed to a model without a read back from the device.

Given a 2-D padding mask, transformers' SDPA route first asks whether the batch holds any
padding (``mask.all()``, to skip the mask and reach the flash kernel): a synchronisation with
the host on every forward pass, so the host cannot queue the next one while the device works.
A 4-D mask is taken as it is; :func:`padding_mask_4d` builds it where the model attends through
torch's SDPA (boolean, True where a token may be attended to). Other attention implementations
get the 2-D mask unchanged.
"""

from __future__ import annotations

from typing import Any


def padding_mask_4d(model: Any, attention_mask: Any) -> Any:
    """``[batch, 1, 1, tokens]`` booleans for an SDPA model, else ``attention_mask`` itself."""
    config = getattr(model, "config", None)
    if getattr(config, "_attn_implementation", None) != "sdpa":
        return attention_mask
    return attention_mask.bool()[:, None, None, :]
