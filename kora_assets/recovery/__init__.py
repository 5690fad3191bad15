"""Autonomous error recovery: classify queued errors, reuse or find a fix, prove it, apply it.

The flow for one group of queued errors (one *signature*: error class + target column +
value shape):

``classify`` -> ``library`` (a fix that worked before?) -> ``candidates`` (rules) + ``llm``
-> ``sandbox`` (prove: fixes the group, changes no passing row, the target accepts it, not
ambiguous) -> ``apply`` (re-validate and land, audit every changed value) -> ``broadcast``
(workers apply the fix inline from then on). ``loop.run_until_stable`` drives it.
"""
