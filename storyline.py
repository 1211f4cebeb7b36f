"""``import storyline`` from a source checkout that nothing installed: a Ray job's working dir.

Installed, the top-level folders (extractor/, store/, trainers/, deploy/) become the
``storyline.*`` packages (pyproject.toml's package-dir). A Ray job submitted with
``--working-dir .`` has this folder first on every worker's PYTHONPATH, so this module is
what ``import storyline`` finds there; its ``__path__`` makes the checkout the package's
search path. Every node then runs the code the job was submitted with, with no pip install:
Ray caches pip environments by the spec's text, so an installed checkout would go stale,
while the working dir is content-addressed (changed code, new upload).
"""

import os

__path__ = [os.path.dirname(os.path.abspath(__file__))]
