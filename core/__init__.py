"""The shared vocabulary of Privacy Desk, importable from every layer.

`core` imports nothing of `bot`, `handlers` or `storage`: it names what a privacy officer talks
about (kinds of request, case statuses, outcomes, rights, case references) and the errors the
program raises on purpose. Imports run one way: bot → handlers → storage, and all three → core.
"""
