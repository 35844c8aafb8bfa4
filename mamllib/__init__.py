"""mamllib: MAML at any inner learning rate, and the analysis of what it learns.

The library behind the report: datasets and episodes (``mamllib.data``), the Conv4
(``mamllib.models``), the batched `higher` inner loop (``mamllib.maml``), the training
loop (``mamllib.train``), meta-test scoring (``mamllib.evaluate``), the readouts of a
trained network (``mamllib.latent``, ``mamllib.runs``), the theory (``mamllib.penalty``,
``mamllib.linreg``), what the book states and draws (``mamllib.findings``,
``mamllib.plots``), and the orchestration of notebooks, sweep and book
(``mamllib.pipeline``), kept apart from the science.

Importing mamllib sets glibc's allocator for large tensors (``mamllib.allocator``).
"""

from mamllib.allocator import keep_freed_memory

__version__ = "0.1.0"
keep_freed_memory()
