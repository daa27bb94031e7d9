"""Hypothesis strategies for covey values."""

from __future__ import annotations

from hypothesis import strategies as st

from covey.core.encoding import INT_MAX, INT_MIN

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=INT_MIN, max_value=INT_MAX),
    st.binary(max_size=64),
    st.text(max_size=32),
)

#: Any value the canonical encoding accepts (within the default limits).
values = st.recursive(
    scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=6),
        st.dictionaries(st.text(max_size=12), children, max_size=6),
    ),
    max_leaves=30,
)
