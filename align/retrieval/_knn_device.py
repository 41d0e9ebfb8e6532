"""The one-pass kNN's loop on the device: fixed shapes, no read back to the host.

Each tile's row-wise and column-wise top-k are merged into running lists ([n, k] and [m, k])
that stay on the device: torch ops with shapes fixed by the tile alone, so the host queues tile
after tile and never waits (no copy, no data-dependent shape, no branch on a value); the lists
come back once, after the last tile.

Ties follow a search that scans keys in index order and replaces a neighbour only by a strictly
more similar one (FAISS's flat index does): among equal similarities the lower index wins. That
order is made exact by one int64 key per entry: the similarity's float32 bits mapped to an
order-preserving integer in the high half, the complement of the index in the low half; ``topk``
on keys is then a total order, so a merge is a ``cat`` and a ``topk``.

A tile's row-wise top-k is found without sorting the tile: its columns fall into blocks of
``_BLOCK``; each row's k best blocks by (block maximum, lower block first) hold its k best
entries (an entry outside them is beaten by the maximum of each of k blocks ranked ahead of its
own), so only those k x ``_BLOCK`` entries are gathered and keyed. Beside the GEMM a tile costs
one pass over its similarities per direction. The column-wise top-k is the same with blocks of
rows.
"""

from __future__ import annotations

from typing import Any

_BLOCK = 32  # keys per block whose maximum ranks the block
_LOW = 0xFFFFFFFF  # the low 32 bits of a key: the complement of the index
_EMPTY = -(2**63)  # the key of an empty list slot: below every real key


def order_keys(values, index):
    """int64 keys, larger for a larger value and, among equal values, for a lower ``index``:
    the float32 bits made order-preserving (negative floats flipped; -0.0 taken as 0.0) in the
    high half, ``_LOW - index`` in the low half."""
    import torch

    bits = (values.float() + 0.0).view(torch.int32)  # a fresh tensor: changed in place below
    bits ^= (bits >> 31) & 0x7FFFFFFF  # negative floats: every bit but the sign flipped
    keys = bits.to(torch.int64)
    keys <<= 32
    keys += _LOW  # the low half: _LOW - index (in place: 6x faster here than a chain of ops)
    keys -= index
    return keys


def decode_keys(keys) -> tuple[Any, Any]:
    """(float32 similarities, int64 indices) of keys made by :func:`order_keys`."""
    import torch

    ordered = (keys >> 32).to(torch.int32)
    bits = torch.where(ordered < 0, ordered ^ 0x7FFFFFFF, ordered)
    return bits.view(torch.float32), _LOW - (keys & _LOW)


def tile_topk_keys(sims, k: int, offset: int, dim: int = 1):
    """The keys of the best ``min(k, n)`` entries of each row (``dim`` 1) or each column
    (``dim`` 0) of the tile ``sims``, their indices along ``dim`` numbered from ``offset``, best
    first: ``[rows, k]`` or ``[columns, k]``. Block maxima are reduced along the tile's own
    layout (a reduction across a transposed view is many times slower on the CPU)."""
    import torch

    view = sims if dim == 1 else sims.T  # [queries, keys]
    n_queries, n_keys = view.shape
    full = n_keys - n_keys % _BLOCK
    blocks = full // _BLOCK
    device = sims.device
    if blocks > k:  # each query's k best blocks hold its k best entries
        if dim == 1:
            maxima = sims[:, :full].unflatten(1, (blocks, _BLOCK)).amax(2)
        else:
            maxima = sims[:full].unflatten(0, (blocks, _BLOCK)).amax(1).T
        ranked = order_keys(maxima, torch.arange(blocks, device=device))
        best = ranked.topk(k, dim=1, sorted=False).indices  # [queries, k]
        keys = (best.unsqueeze(2) * _BLOCK + torch.arange(_BLOCK, device=device)).flatten(1)
        if full < n_keys:  # the keys after the last whole block are all candidates
            tail = torch.arange(full, n_keys, device=device).expand(n_queries, -1)
            keys = torch.cat([keys, tail], 1)
        values = view.gather(1, keys)
    else:
        keys = torch.arange(n_keys, device=device).expand(n_queries, -1)
        values = view
    return order_keys(values, keys + offset).topk(min(k, n_keys), dim=1).values


def _merge(lists, start: int, keys) -> None:
    """Rows ``start:`` of the running key lists keep their k best of old and ``keys``."""
    import torch

    stop = start + len(keys)
    both = torch.cat([lists[start:stop], keys], 1)
    lists[start:stop] = both.topk(lists.shape[1], dim=1).values


def _product(a, b, buffer):
    """a b' into the front of one reused buffer (no fresh tile, and no page faults, per tile),
    in the inputs' dtype."""
    import torch

    out = buffer[: len(a) * len(b)].view(len(a), len(b))
    torch.matmul(a, b.T, out=out)
    return out


def tile_loop(xt, yt, k: int, tile: int):
    """Both directions' running key lists ([n, k], [m, k], on the inputs' device) from one pass
    over the tiles of ``xt yt'``: torch ops only, nothing read back to the host."""
    import torch

    device = xt.device
    forward = torch.full((len(xt), k), _EMPTY, dtype=torch.int64, device=device)
    backward = torch.full((len(yt), k), _EMPTY, dtype=torch.int64, device=device)
    buffer = torch.empty(min(tile, len(xt)) * min(tile, len(yt)), dtype=xt.dtype, device=device)
    for r in range(0, len(xt), tile):
        xr = xt[r : r + tile]
        for c in range(0, len(yt), tile):
            sims = _product(xr, yt[c : c + tile], buffer)
            _merge(forward, r, tile_topk_keys(sims, k, c, dim=1))
            _merge(backward, c, tile_topk_keys(sims, k, r, dim=0))
    return forward, backward
