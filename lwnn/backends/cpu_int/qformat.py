"""q8/q16 kernels: CMSIS-NN legacy q7/q15 semantics with power-of-two Q formats
(DESIGN.md section 5). Data-movement ops are shared with s8 (``movement``)."""

from __future__ import annotations
