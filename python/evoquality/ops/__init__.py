"""EvoQuality's numeric ops: one module per op, each a PyTorch reference (the spec and the CPU path) plus a short
dispatcher to the Triton kernel in `evoquality.kernels` (which `evoquality._backend` decides)."""
