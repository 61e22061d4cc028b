"""Triton kernels of EvoQuality, installed as ``evoquality.kernels``.

Importing this package imports triton; ``import evoquality`` never does. The PyTorch references and the dispatch
between them and these kernels live in ``evoquality.ops``.
"""
