"""The training methods, by name. A method is one module that builds a `Method` (ali.methods.base);
adding one means adding its module and one line here."""

from __future__ import annotations

from ali.errors import AliError
from ali.methods import ali, alice, gan_inverse, gan_posthoc, vae
from ali.methods.base import Method

METHODS: dict[str, Method] = {
    m.name: m
    for m in (
        ali.METHOD,
        alice.METHOD,
        gan_inverse.METHOD,
        gan_posthoc.METHOD,
        vae.METHOD,
    )
}


def get_method(name: str) -> Method:
    if name not in METHODS:
        raise AliError(f"unknown method {name!r}; known: {', '.join(METHODS)}")
    return METHODS[name]


def method_keys() -> set[str]:
    """Every config key that some method declares as its own (the rest are shared by all)."""
    return {key for m in METHODS.values() for key in m.keys}
