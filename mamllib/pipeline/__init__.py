"""Orchestration, kept apart from the science modules: executing the notebooks with
papermill (:mod:`.notebooks`), the sweep of settings (:mod:`.sweep`) and the whole report
with its Jupyter Book (:mod:`.report`). Nothing in the science modules imports these."""
