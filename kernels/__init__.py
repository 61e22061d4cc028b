"""Triton kernels of EvoQuality, installed as ``evoquality.kernels``.

Importing this package imports triton; ``import evoquality`` never does. The PyTorch references and the dispatch
between them and these kernels live in ``evoquality.ops``.

One module per op, named like its reference in ``evoquality.ops`` (``_<op>_kernel`` + ``<op>_triton`` wrapper):
``vote_tally``, ``fidelity`` (reward, fused with the group advantages), ``group_advantage``, ``win_matrix``;
``_launch`` chooses block sizes and warps for all of them. Wrappers assume validated inputs (the ops validate).
"""
