"""The training methods, by name. A method is one module that builds a `Method` (ali.methods.base);
adding one means adding its module and one line here."""

from __future__ import annotations

from ali.errors import AliError
from ali.keys import Key
from ali.methods import ali_conditional, ali_joint, ali_kplus1, alice, bigan, gan_inverse, gan_posthoc, vae
from ali.methods.base import Method

METHODS: dict[str, Method] = {
    m.name: m
    for m in (
        ali_joint.METHOD,
        ali_conditional.METHOD,
        ali_kplus1.METHOD,
        alice.METHOD,
        bigan.METHOD,
        gan_inverse.METHOD,
        gan_posthoc.METHOD,
        vae.METHOD,
    )
}


def get_method(name: str) -> Method:
    if name not in METHODS:
        raise AliError(f"unknown method {name!r}; known: {', '.join(METHODS)}")
    return METHODS[name]


def method_keys() -> dict[str, Key]:
    """Every config key some method owns (the rest are shared by all); a key owned by several
    methods must be the same Key in each."""
    keys: dict[str, Key] = {}
    for method in METHODS.values():
        for name, key in method.keys.items():
            if keys.setdefault(name, key) != key:
                raise ValueError(f"config key {name!r} is declared twice with different defaults or rules")
    return keys


def foreign_keys(name: str) -> set[str]:
    """The config keys other methods own and method `name` never reads."""
    return method_keys().keys() - set(get_method(name).keys)
