"""The adversarial reviews (of the incremental merge, of history links), as regression tests.

Each script in tests/core/regressions/ is a reviewer's reproducer, kept as
it was written (it prints what it observes); each failed on the code the
review read, and each test here checks the outcome the rules require.
They run as processes, as the reviewer ran them.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).parent / "regressions"


def run(script: str, *args: str) -> str:
    done = subprocess.run(
        [sys.executable, str(HERE / script), *args],
        capture_output=True,
        text=True,
        cwd=HERE.parents[2],
        timeout=600,
        check=False,
    )
    assert "Traceback" not in done.stderr, done.stderr
    return done.stdout


@pytest.mark.parametrize(
    ("script", "args", "expected"),
    [
        # C1: an op reusing its author's number in its own past (a self-fork)
        ("selffork_branch.py", (), ["replicas agree: True"]),
        ("selffork_stall.py", (), ["A: E member? True", "A pending: 0"]),
        # C2: an equivocator re-admitted by a concurrent add
        ("equivocator_branch.py", (), ["replicas agree: True"]),
        # C3: every grant author's chain counts where the replay restarts
        (
            "changed_from_break2.py",
            ("1", "0"),
            ["R incremental == R full_replay: True", "R == S: True"],
        ),
        # C4: one op with an old number voided old history, down to the genesis
        (
            "retroactive_fork.py",
            (),
            ["after : members [1, 2], equivocators []", "C can still rotate"],
        ),
        # H1: a refusal inside the pending release
        ("outsider_landmine.py", (), ["B holds H's epoch key: True", "restore ok"]),
        # H2: restoring more pending ops than one sender's share
        ("pending_restore.py", (), ["restore ok"]),
        # H3: a 3-cycle of removals: the most senior author wins
        (
            "three_cycle.py",
            (),
            ["A removes B: in force", "plan.excluded (revocations settled as if absent): []"],
        ),
        # H5: the outsider cap counts ops whatever their number
        ("outsider_seqskip.py", (), ["ops held by B: 4 -> 20 "]),
        # M1: one sender's bytes cannot pin the buffer
        ("pending_bytes.py", (), ["honest peer A's out-of-order op: pending"]),
        # Review of the merge fixes (2026-12-03), F1: a support grant outside the past
        (
            "c1_equivocator_support.py",
            (),
            ["O1 == full_replay: True  O2 == full_replay: True", "OK"],
        ),
        # F2: a revocation written last won a seniority cycle above it
        ("c1_seniority_cycle.py", (), ["converged", "OK"]),
        # F1 and F3 (a revocation the settle leaves out, applied by the fast path)
        (
            "merge_search_seeds.py",
            (),
            [
                "seed 100117 small=True: ok",
                "seed 105466 small=False: ok",
                "seed 105466 small=True: ok",
            ],
        ),
        # F4: an invalid twin with the same number hid a removed admin's add
        ("pre_invalid_twin_escapes_veto.py", (), ["e_b skipped='its author equivocated'", "OK"]),
        # Second review of the merge fixes: a removed admin's promoted old member
        # won the cycle with its remover on its seniority
        (
            "senior_puppet.py",
            (),
            [
                "readd    members=['A:admin', 'B:admin']",
                "promote  members=['A:admin', 'B:admin', 'P:member']",
                "OK",
            ],
        ),
        # ... and the outsider run read an op outside the op's past
        ("outsider_run_order.py", (), ["OK"]),
        # ... and one op reusing an old number sent every later op down a walk
        # of the log (counted: the walks, not the times)
        ("twin_ancestors.py", ("400",), ["full-log ancestor walks 0", "full-log ancestor walks 1"]),
        # History links (PROTOCOL.md 8.1), H1: bad links forgotten on a reload
        (
            "history_bad_links_restart.py",
            (),
            ["after True; bad_links after reload: 1", "newcomer holds P: True", "OK: "],
        ),
    ],
)
def test_review_finding_stays_fixed(
    script: str, args: tuple[str, ...], expected: list[str]
) -> None:
    out = run(script, *args)
    for line in expected:
        assert line in out, out
