"""Registers purposeguard's strategies with Hypothesis (through its entry point)."""

from __future__ import annotations

from typing import Any


def _hypothesis_setup_hook() -> None:
    # Hypothesis runs this hook while it is being imported, possibly while
    # purposeguard.testing.strategies itself is half-imported: register resolvers that
    # import the strategies only when a strategy is first asked for.
    from hypothesis import strategies as st

    from purposeguard._labels import Label
    from purposeguard._purposes import Purpose
    from purposeguard._taxonomy import Taxonomy
    from purposeguard._template import FaceTemplate

    def resolve(kind: str) -> Any:
        def strategy(_: type) -> Any:
            from purposeguard.testing import strategies as pst

            default = Taxonomy.default()
            if kind == "purpose":
                return pst.purposes(default)
            if kind == "taxonomy":
                return pst.taxonomies()
            if kind == "label":
                return pst.labels(default)
            return pst.templates(default)

        return strategy

    st.register_type_strategy(Purpose, resolve("purpose"))
    st.register_type_strategy(Taxonomy, resolve("taxonomy"))
    st.register_type_strategy(Label, resolve("label"))
    st.register_type_strategy(FaceTemplate, resolve("template"))
