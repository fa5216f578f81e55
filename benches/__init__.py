"""axo's benchmark subjects; run them with ``axo bench`` or ``python -m benches``."""
