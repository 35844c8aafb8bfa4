"""``--cluster slurm``: Dask workers as Slurm jobs, started through dask-jobqueue.

Each Slurm job is one Dask worker that runs one mamllib job at a time with every core
it booked (``MAMLLIB_THREADS``), and, with ``gpus``, offers the Dask resource ``GPU``
so that a report run with ``--gpu`` sends settings and training only there.
"""

from __future__ import annotations

import contextlib
import sys
from typing import Any, Iterator

from mamllib.errors import ConfigError

DEFAULTS = {"queue": None, "walltime": "04:00:00", "memory": "16GB", "cpus": 4, "gpus": 0, "workers": 2}


def check_options(options: dict[str, Any]) -> dict[str, Any]:
    """The Slurm options with defaults filled in; a bad one is a one-line error."""
    options = {**DEFAULTS, **{k: v for k, v in options.items() if v is not None}}
    for name, least in (("cpus", 1), ("gpus", 0), ("workers", 1)):
        if not isinstance(options[name], int) or options[name] < least:
            raise ConfigError(f"slurm {name}={options[name]!r} is not allowed; use a whole number >= {least}")
    return options


def slurm_deployment(**options: Any) -> Any:
    """A dask-jobqueue ``SLURMCluster`` (its scheduler runs here), not yet scaled."""
    from dask_jobqueue import SLURMCluster

    options = check_options(options)
    gpus = options["gpus"]
    return SLURMCluster(
        queue=options["queue"], walltime=options["walltime"], memory=options["memory"],
        cores=1, processes=1, job_cpu=options["cpus"],  # one Dask thread: one mamllib job at a time
        job_extra_directives=[f"--gres=gpu:{gpus}"] if gpus else [],
        worker_extra_args=["--resources", f"GPU={gpus}"] if gpus else [],
        job_script_prologue=[f"export MAMLLIB_THREADS={options['cpus']}"],
        python=sys.executable)


@contextlib.contextmanager
def slurm_cluster(**options: Any) -> Iterator[Any]:
    """A ``SLURMCluster`` asked for ``workers`` jobs, closed (jobs cancelled) after the block."""
    deployment = slurm_deployment(**options)
    with deployment:
        deployment.scale(jobs=check_options(options)["workers"])
        yield deployment
