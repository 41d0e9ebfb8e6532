"""Why retrieval changed between a base model and its checkpoints, one layer at a time.

- ``pipeline``: the comparison's work (outcomes, changes, attribution, CKA matrix, transplant);
- ``outcomes``: what one model does on one language at one layer;
- ``deltas``: paired changes with intervals and tests, each model's own scores;
- ``attribution``: Spearman correlations of the changes, centring shares;
- ``transplant``: the graft/restore sweep; ``stats``: the statistics; ``summary``: in words.
"""
