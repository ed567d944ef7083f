"""`ali generate --run DIR --z-seed S --conditions SPEC [--rows R] --out FILE.png`: a grid of
samples Gx(z, y) from a conditional ALI run, laid out as the paper's conditional figure (docs/PAPER.md §6).

Two kinds of SPEC, told apart by a "|":

- Class-conditional runs (one-hot y): SPEC lists the columns' classes, "0-9" or "0,3,7" (ranges
  and single classes may mix: "0-4,7"). Each of the R rows decodes its own fixed z (drawn from
  the z seed) under every column's class, so a row shows one "style" across the classes.
- Attribute runs (binary y, e.g. CelebA's 40): SPEC is "BASE1;BASE2;...|ADD1;ADD2;...". Each
  BASE is a comma list of attribute names set to 1 ("-Name" sets one to 0; unnamed ones are 0)
  and makes one row. The first column is the BASE alone; column k+1 applies ADD1..ADDk on top of
  it (cumulatively, as the paper's figure adds hair colour, then bangs, ...); an ADD is a comma
  list in the same syntax. One fixed z for the whole grid, so only y changes across it.

The fixed z come from `--z-seed` without touching the global RNG: the same command on the same
checkpoint draws the same picture.
"""

from __future__ import annotations

import difflib

import torch
from PIL import Image

from ali.config import TrainConfig
from ali.errors import AliError
from ali.evaluation.grids import image_grid
from ali.evaluation.image_eval import decode, fixed_prior
from ali.nets.model import Model
from ali.training.build import condition_dim

DEFAULT_ROWS = 8  # class grids: rows of different z when --rows is not given


def conditional_grid(
    model: Model,
    config: TrainConfig,
    dataset_label_names: tuple[str, ...] | list[str],
    z_seed: int,
    spec: str,
    rows: int | None = None,
) -> Image.Image:
    """The grid of samples SPEC asks for (module docstring): rows x columns tiles of the run's
    image size. `dataset_label_names` names the attributes of an attribute run (the dataset's
    label_names); class grids do not need it. `rows` is for class grids (default 8); an attribute
    grid has one row per BASE."""
    size = condition_dim(config)
    if not size:
        raise AliError(
            f"run of method {config.method!r} is not conditional; `ali generate --conditions` needs an ali-conditional run"
        )
    if "|" in spec:
        conditions, ncol = _attribute_conditions(spec, tuple(dataset_label_names), size, rows)
        z = fixed_prior(model, 1, z_seed).expand(len(conditions), -1)
    else:
        nrow = DEFAULT_ROWS if rows is None else rows
        if nrow < 1:
            raise AliError(f"--rows must be >= 1, got {nrow}")
        classes = parse_classes(spec, size)
        ncol = len(classes)
        one_hot = torch.nn.functional.one_hot(torch.tensor(classes, device="cpu"), size).float()
        conditions = one_hot.repeat(nrow, 1)  # row r, column c: class c
        z = fixed_prior(model, nrow, z_seed).repeat_interleave(ncol, dim=0)  # row r: its own z
    return image_grid(decode(model, z, conditions), ncol=ncol)  # decoded where the model is


def parse_classes(spec: str, size: int) -> list[int]:
    """The classes of a spec like 0-9, 0,3,7 or a mix (0-4,7), each checked against `size`."""
    classes: list[int] = []
    for token in (t.strip() for t in spec.split(",")):
        lo, dash, hi = token.partition("-")
        try:
            span = range(int(lo), int(hi) + 1) if dash else [int(token)]
        except ValueError:
            raise AliError(
                f"--conditions {spec!r}: {token!r} is not a class or a range; write classes like 0-9 or 0,3,7 (or an attribute spec BASE;...|ADD;...)"
            ) from None
        if dash and int(hi) < int(lo):
            raise AliError(f"--conditions {spec!r}: the range {token!r} runs backwards; write it low-high")
        classes.extend(span)
    unknown = sorted({c for c in classes if not 0 <= c < size})
    if unknown:
        raise AliError(
            f"--conditions {spec!r}: class(es) {', '.join(map(str, unknown))} unknown to this run, which was trained on classes 0-{size - 1}"
        )
    return classes


def _attribute_conditions(spec: str, names: tuple[str, ...], size: int, rows: int | None) -> tuple[torch.Tensor, int]:
    """The attribute grid's condition vectors, row by row, and its number of columns."""
    if len(names) != size:
        raise AliError(
            f"--conditions {spec!r} names attributes, but this run conditions on {size} values and its dataset names "
            f"{len(names)} attributes; attribute specs need a run on an attribute dataset (celeba64), class runs take 0-9 or 0,3,7"
        )
    base_part, _, add_part = spec.partition("|")
    bases = base_part.split(";")
    adds = [a for a in add_part.split(";") if a.strip()]
    if rows is not None and rows != len(bases):
        raise AliError(f"--rows {rows}: an attribute grid has one row per BASE ({len(bases)} in {spec!r}); drop --rows")
    index = {n.lower(): i for i, n in enumerate(names)}
    vectors = []
    for base in bases:
        row = torch.zeros(size, device="cpu")
        _apply(row, base, index, names, spec)
        vectors.append(row.clone())
        for add in adds:
            _apply(row, add, index, names, spec)  # cumulative: each column keeps the earlier ADDs
            vectors.append(row.clone())
    return torch.stack(vectors), 1 + len(adds)


def _apply(row: torch.Tensor, assignment: str, index: dict[str, int], names: tuple[str, ...], spec: str) -> None:
    """Set the attributes a comma list names to 1 ("-Name": to 0), in place."""
    for token in (t.strip() for t in assignment.split(",")):
        if not token:
            continue
        value, name = (0.0, token[1:].strip()) if token.startswith("-") else (1.0, token)
        if name.lower() not in index:
            close = difflib.get_close_matches(name, names, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise AliError(f"--conditions {spec!r}: unknown attribute {name!r}{hint}; this run knows: {', '.join(names)}")
        row[index[name.lower()]] = value
