"""The system under test and the hostile input it is judged with; no pytest, no cluster.

:mod:`.model` is the SUT file (load, check, placeholders, digest) and the reference SUT;
:mod:`.forged` makes forged tokens, :mod:`.rawhttp` sends raw HTTP requests no client library would,
:mod:`.hostile` opens hostile connections (slow, oversized, many). Knows only the base layer.
"""
