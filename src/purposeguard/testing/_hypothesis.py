"""Registers purposeguard's strategies with Hypothesis (through its entry point)."""

from __future__ import annotations


def _hypothesis_setup_hook() -> None:
    from hypothesis import strategies as st

    from purposeguard._labels import Label
    from purposeguard._purposes import Purpose
    from purposeguard._taxonomy import Taxonomy
    from purposeguard._template import FaceTemplate
    from purposeguard.testing import strategies as pst

    default = Taxonomy.default()
    st.register_type_strategy(Purpose, pst.purposes(default))
    st.register_type_strategy(Taxonomy, pst.taxonomies())
    st.register_type_strategy(Label, pst.labels(default))
    st.register_type_strategy(FaceTemplate, pst.templates(default))
