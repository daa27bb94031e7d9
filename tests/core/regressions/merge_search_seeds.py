"""Seeds of the reviewer's merge search (merge_search.py) that failed: replicas disagreed.

100117 (small checkpoints): the settle left out a revocation that the fast
path applied (F3). 105466: a revocation's support was followed into a grant
outside its past (F1).
"""

import sys

sys.path.insert(0, str(__import__("pathlib").Path(__file__).parent))
sys.path.insert(0, str(__import__("pathlib").Path(__file__).parents[3]))

from covey.core import log as log_module  # noqa: E402

import merge_search  # noqa: E402

for seed, small in ((100117, True), (105466, False), (105466, True)):
    saved = log_module.CHECKPOINT_EVERY, log_module.MAX_BRANCH_STATES
    if small:
        log_module.CHECKPOINT_EVERY, log_module.MAX_BRANCH_STATES = 3, 2
    result = merge_search.one(seed, small)
    log_module.CHECKPOINT_EVERY, log_module.MAX_BRANCH_STATES = saved
    print(f"seed {seed} small={small}: {result or 'ok'}")
