"""mamllib: MAML at any inner learning rate, and the analysis of what it learns.

The library behind the report: datasets and episodes (``mamllib.data``), the Conv4
(``mamllib.models``), the batched `higher` inner loop (``mamllib.maml``), the training
loop (``mamllib.train``) and meta-test scoring (``mamllib.evaluate``).
"""

__version__ = "0.1.0"
