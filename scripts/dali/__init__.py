"""DPAM's iterative DALI step: per protein, align every candidate ECOD template to what is left of the
query, record each hit, cut the aligned segments out and go again (``iterative.py``), with DaliLite or
TM-align as the aligner (``aligners.py``), a per-node template cache (``cache.py``) and all temporary
files on node-local scratch (``scratch.py``)."""
