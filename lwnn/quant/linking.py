"""LWNN's linked Q (q8/q16): the inputs and output of an Add or Concat share one Q, the smallest
among them, so the device adds or copies codes without aligning shifts.

Tensors that must keep their input's parameters (moves, selections, pools: see
``lwnn.numerics.roles.same_as_input``) belong to the same link, so a Q forced on one of them
reaches the tensor whose parameters it copies.
"""

from __future__ import annotations

from lwnn.graph import Layer
from lwnn.numerics.params import QFormat
from lwnn.numerics.roles import same_as_input

LINKED_OPS = ("Add", "Concat")


def linked_frac_bits(layers: list[Layer], params: dict, constants: dict) -> dict[str, int]:
    """{tensor: forced Q} for every tensor linked through an Add/Concat, from first-pass ``params``."""
    parent: dict[str, str] = {}

    def find(n: str) -> str:
        while parent.get(n, n) != n:
            n = parent[n]
        return n

    def union(a: str, b: str) -> None:
        parent.setdefault(a, a)
        parent.setdefault(b, b)
        parent[find(a)] = find(b)

    anchors = set()
    for layer in layers:
        tensors = [n for n in layer.inputs if n and n not in constants]
        if layer.op_type in LINKED_OPS:
            for n in [*tensors, *layer.outputs]:
                union(n, layer.outputs[0])
            anchors.add(layer.outputs[0])
        elif same_as_input(layer) and tensors:
            union(tensors[0], layer.outputs[0])
    linked_roots = {find(a) for a in anchors}
    groups: dict[str, list[str]] = {}
    for n in parent:
        root = find(n)
        if root in linked_roots and isinstance(params.get(n), QFormat):
            groups.setdefault(root, []).append(n)
    out = {}
    for members in groups.values():
        q = min(params[n].frac_bits for n in members)
        out.update({n: q for n in members})
    return out
