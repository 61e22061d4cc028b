"""Who is compared with whom in a training step: the partners P_i of every image and the pseudo-label p*_ij.

Stored CSR-style (what the kernels read): the partners of image i are ``indices[indptr[i]:indptr[i+1]]`` with labels
``p_star[indptr[i]:indptr[i+1]]``. Build it from a list of labelled pairs (both directions are added:
p*_ji = 1 - p*_ij, docs/method.md "Stage 2": batches are built from pairs) or from a dense (B, B) mask.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from evoquality.ops import _checks


@dataclass(frozen=True, eq=False)  # eq on tensors would be ambiguous
class Partners:
    """CSR partner lists of `num_images` images.

    indptr  (B + 1,) int64, non-decreasing, indptr[0] = 0, indptr[B] = nnz
    indices (nnz,)   int64 in [0, B), never the row itself, no repeats within a row
    p_star  (nnz,)   float32 in [0, 1]: P(row image better than partner), the pseudo-label
    """

    indptr: torch.Tensor
    indices: torch.Tensor
    p_star: torch.Tensor

    def __post_init__(self) -> None:
        indptr = _checks.tensor("indptr", self.indptr, ndim=1, dtypes=(torch.int64,), shape_doc="(B + 1,)")
        indices = _checks.tensor("indices", self.indices, ndim=1, dtypes=(torch.int64,), shape_doc="(nnz,)")
        p_star = _checks.tensor("p_star", self.p_star, ndim=1, dtypes=(torch.float32,), shape_doc="(nnz,)")
        _checks.same_device("indices", indices, "indptr", indptr)
        _checks.same_device("p_star", p_star, "indptr", indptr)
        if indptr.numel() < 1:
            raise ValueError("indptr must have shape (B + 1,) with B >= 0, got (0,)")
        if indices.numel() != p_star.numel():
            raise ValueError(f"p_star must have one label per partner index ({indices.numel()}), got {p_star.numel()}")
        counts = indptr.diff()
        if int(indptr[0]) != 0 or int(indptr[-1]) != indices.numel() or bool((counts < 0).any()):
            raise ValueError(
                f"indptr must start at 0, be non-decreasing and end at len(indices)={indices.numel()}, "
                f"got start {int(indptr[0])}, end {int(indptr[-1])}"
            )
        num_images = indptr.numel() - 1
        rows = torch.repeat_interleave(torch.arange(num_images, device=indptr.device), counts)
        object.__setattr__(self, "_rows", rows)  # kept: the reference reads it every step
        if indices.numel():
            _checks.indices_in_range("indices", indices, num_images)
            if bool((rows == indices).any()):
                raise ValueError("indices must not list an image as its own partner")
            keys = rows * num_images + indices
            if torch.unique(keys).numel() != keys.numel():
                raise ValueError("indices must not repeat a partner within one image's list (duplicate pair)")
        _checks.probabilities("p_star", p_star)

    @property
    def num_images(self) -> int:
        return self.indptr.numel() - 1

    @property
    def device(self) -> torch.device:
        return self.indptr.device

    def to(self, device) -> "Partners":
        return Partners(self.indptr.to(device), self.indices.to(device), self.p_star.to(device))

    def rows(self) -> torch.Tensor:
        """(nnz,) int64: the image each CSR entry belongs to."""
        return self._rows

    def to_dense(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(mask (B, B) bool, p_star (B, B) float32 with 0 where there is no partner)."""
        b = self.num_images
        mask = torch.zeros(b, b, dtype=torch.bool, device=self.device)
        p = torch.zeros(b, b, dtype=torch.float32, device=self.device)
        rows = self.rows()
        mask[rows, self.indices] = True
        p[rows, self.indices] = self.p_star
        return mask, p

    @staticmethod
    def from_pairs(pairs, p_star, num_images: int) -> "Partners":
        """Partners from labelled pairs among `num_images` images.

        pairs (M, 2) int (tensor or nested sequence): (i, j) image indices; p_star (M,): P(x_i better than x_j).
        Both directions are stored (j gets i with 1 - p*). A pair listed twice (in either order) is a ValueError:
        the fidelity reward averages over a *set* of partners.
        """
        if not isinstance(num_images, int) or num_images < 0:
            raise ValueError(f"num_images must be a non-negative int, got {num_images!r}")
        pairs = torch.as_tensor(pairs)
        p_star = torch.as_tensor(p_star)
        if pairs.numel() == 0:
            pairs = pairs.reshape(0, 2).to(torch.int64)
        _checks.tensor("pairs", pairs, ndim=2, dtypes=_checks.INT_DTYPES, shape_doc="(M, 2)")
        if pairs.shape[1] != 2:
            raise ValueError(f"pairs must have shape (M, 2), got {tuple(pairs.shape)}")
        p_star = _checks.tensor("p_star", p_star, ndim=1, dtypes=_checks.FLOAT_DTYPES, shape_doc="(M,)")
        if p_star.numel() != pairs.shape[0]:
            raise ValueError(
                f"p_star must have shape ({pairs.shape[0]},) (one label per pair), got {tuple(p_star.shape)}"
            )
        _checks.same_device("p_star", p_star, "pairs", pairs)
        pairs = pairs.to(torch.int64)
        _checks.indices_in_range("pairs", pairs, num_images)
        if bool((pairs[:, 0] == pairs[:, 1]).any()):
            raise ValueError("pairs must not pair an image with itself")
        _checks.probabilities("p_star", p_star)
        p = p_star.to(torch.float32)
        rows = torch.cat([pairs[:, 0], pairs[:, 1]])
        cols = torch.cat([pairs[:, 1], pairs[:, 0]])
        labels = torch.cat([p, 1.0 - p])
        order = torch.argsort(rows * max(num_images, 1) + cols)
        keys = (rows * max(num_images, 1) + cols)[order]
        if keys.numel() and bool((keys[1:] == keys[:-1]).any()):
            raise ValueError("pairs must not list the same pair twice (in either order)")
        counts = torch.bincount(rows, minlength=num_images)
        indptr = torch.zeros(num_images + 1, dtype=torch.int64, device=pairs.device)
        indptr[1:] = torch.cumsum(counts, 0)
        return Partners(indptr, cols[order].contiguous(), labels[order].contiguous())

    @staticmethod
    def from_dense(mask: torch.Tensor, p_star: torch.Tensor) -> "Partners":
        """Partners from a dense (B, B) bool `mask` (mask[i, j]: j is a partner of i) and (B, B) labels p*[i, j].

        Labels are read only where the mask is set; they must lie in [0, 1] there. The mask need not be symmetric.
        """
        mask = _checks.tensor("mask", mask, ndim=2, dtypes=(torch.bool,), shape_doc="(B, B)")
        if mask.shape[0] != mask.shape[1]:
            raise ValueError(f"mask must have shape (B, B), got {tuple(mask.shape)}")
        p_star = _checks.tensor("p_star", p_star, ndim=2, dtypes=_checks.FLOAT_DTYPES, shape_doc="(B, B)")
        _checks.same_shape("p_star", p_star, "mask", mask)
        _checks.same_device("p_star", p_star, "mask", mask)
        if bool(mask.diagonal().any()):
            raise ValueError("mask must not list an image as its own partner (diagonal set)")
        rows, cols = mask.nonzero(as_tuple=True)  # row-major order = CSR order
        labels = p_star[rows, cols].to(torch.float32)
        _checks.probabilities("p_star", labels)
        indptr = torch.zeros(mask.shape[0] + 1, dtype=torch.int64, device=mask.device)
        indptr[1:] = torch.cumsum(mask.sum(1), 0)
        return Partners(indptr, cols.contiguous(), labels.contiguous())
