"""Integer numerics shared by the quantizer and the integer runtimes: quantization parameters
(``params``), fixed-point arithmetic (``fixedpoint``), rounding (``rounding``) and the roles of an
op's inputs (``roles``). It sits below both: ``lwnn.backends`` and ``lwnn.quant`` import it, it
imports neither (docs/architecture.md, "Layers")."""
