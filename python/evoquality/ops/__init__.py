"""EvoQuality's numeric ops: one module per op, each a PyTorch reference (the spec and the CPU path) plus a short
dispatcher to the Triton kernel in `evoquality.kernels` (which `evoquality._backend` decides).

    vote_tally.vote_tally(votes, swapped=None, valid=None, *, label="hard", min_margin=0) -> VoteTally
    partners.Partners.from_pairs(pairs, p_star, num_images) / .from_dense(mask, p_star)   (CSR partner lists)
    fidelity.fidelity_reward(scores, partners, p_star=None, *, valid=None, gamma=GAMMA) -> (B, G)
    fidelity.fidelity_advantages(scores, partners, p_star=None, *, valid=None, gamma=GAMMA, scale="group",
                                 eps=EPS_ADV) -> FidelityAdvantages(rewards, advantages)      (fused on CUDA)
    group_advantage.group_advantages(rewards, *, scale="group", eps=EPS_ADV) -> (B, G)      (TRL 1.16 semantics)
    win_matrix.win_matrix(scores, valid=None, *, pairs=None) -> (N, N) or (M,)

Each has a `<op>_ref` twin (always the PyTorch path; float64 in, float64 out: the test oracle). `tolerances` holds
the one tolerance table and the comparison rule that tests and benchmarks/gpu_kernels.py share; `constants` holds the
ops' numeric defaults (GAMMA, EPS_ADV, SCALES) without torch, so configs can name them. Importing the op modules
imports torch, never triton.
"""
