"""TARFlow: a transformer autoregressive flow, and its inversion by Jacobi iteration.

TARFlow (Zhai et al. 2024; STARFlow, Gu et al. 2025) reads a sequence ``x`` of ``T`` tokens
``(T, c)``. Each block is a causal transformer that predicts, from the tokens before ``t``, the
shift and log-scale of token ``t``, then normalizes it (a MAF layer whose network is a transformer)::

    z_t = (x_t − μ_t(x_<t)) · exp(−α_t(x_<t)),     log|det ∂z/∂x| = −Σ_t α_t

The token order is reversed between blocks, so every token is conditioned on every other one in
turn. Density evaluation is one parallel pass per block. Sampling inverts each block::

    x_t = z_t · exp(α_t(x_<t)) + μ_t(x_<t)

which is a fixed point ``x = g(x)``. Three ways to find it (Liu & Qin 2025, "GS-Jacobi"):

- **sequential**: token after token, ``T`` network passes on growing prefixes;
- **Jacobi**: iterate ``x ← g(x)`` on all tokens at once until nothing moves. After ``k``
  iterations the first ``k`` tokens are exact, so it ends after at most ``T`` passes, often far fewer;
- **Gauss–Seidel–Jacobi**: split the tokens into groups of ``group``, solve the groups in order,
  each by Jacobi iteration. Sequential is ``group = 1``, Jacobi is ``group = T``: one function does all three.

Jacobi pays off when it stops after far fewer than ``T`` passes: the error of an iterate shrinks each pass by
about how strongly a token's shift and scale depend on the earlier tokens, so weakly coupled tokens (a point set
rather than a curve), long sequences (the bound ``T`` grows, the passes needed do not) and a block close to the
identity (``z`` is then a good first guess) all help. Blocks differ: ``group`` may be given per block, so a
block that converges slowly is decoded in small groups and the easy ones in one (GS-Jacobi's ordering of blocks
by how hard they converge; Zhang et al. 2025 decode the first block sequentially and the rest by Jacobi).

TARFlow trains on slightly noised data (:class:`~toyflow.nf.base.MaximumLikelihood` with ``noise``);
:meth:`~toyflow.nf.base.Flow.denoise` takes the noise back out of its samples with the flow's own score,
:mod:`toyflow.nf.denoise` with a learned step (STARFlow). :func:`deep_shallow` builds STARFlow's arrangement:
one deep block next to the noise, several one-layer blocks after it. The toy sequences it learns are in
:mod:`toyflow.nf.curves`.

>>> import toyflow
>>> toyflow.seed(0)
>>> flow = TARFlow(tokens=6, channels=2, blocks=2, width=16)
>>> z = toyflow._base.randn((4, 6, 2), torch.Generator().manual_seed(0))
>>> decoded = flow.decode(z, "jacobi")
>>> len(decoded.iterations), max(decoded.iterations) <= 6
(2, True)
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from .._base import check_choice, check_int, check_number, randn
from .base import Flow, affine_forward, affine_inverse, check_bound, check_ints, soft_clamp

METHODS = ("sequential", "jacobi", "gs-jacobi")


class CausalSelfAttention(nn.Module):
    """Multi-head self-attention ``softmax(QKᵀ/√d + mask)·V`` where a position sees itself and the ones before."""

    def __init__(self, width: int, heads: int):
        super().__init__()
        self.heads = heads
        self.qkv, self.proj = nn.Linear(width, 3 * width), nn.Linear(width, width)

    def forward(self, h: Tensor) -> Tensor:
        """Attention output ``(n, t, width)`` for ``h`` ``(n, t, width)``."""
        n, t, width = h.shape
        q, k, v = self.qkv(h).view(n, t, 3, self.heads, width // self.heads).permute(2, 0, 3, 1, 4)  # (n, heads, t, d)
        scores = q @ k.transpose(-2, -1) / math.sqrt(width // self.heads)  # (n, heads, t, t)
        future = torch.ones(t, t, dtype=torch.bool, device=h.device).triu(1)
        attended = scores.masked_fill(future, -math.inf).softmax(-1) @ v  # (n, heads, t, d)
        return self.proj(attended.transpose(1, 2).reshape(n, t, width))


class TransformerLayer(nn.Module):
    """Pre-norm transformer layer: ``h + attention(LN(h))``, then ``h + MLP(LN(h))``."""

    def __init__(self, width: int, heads: int):
        super().__init__()
        self.norm1, self.norm2 = nn.LayerNorm(width), nn.LayerNorm(width)
        self.attention = CausalSelfAttention(width, heads)
        self.mlp = nn.Sequential(nn.Linear(width, 4 * width), nn.GELU(), nn.Linear(4 * width, width))

    def forward(self, h: Tensor) -> Tensor:
        """``h + attention(norm h)``, then ``+ mlp(norm h)``: ``(n, t, width)``."""
        h = h + self.attention(self.norm1(h))
        return h + self.mlp(self.norm2(h))


class CausalTransformer(nn.Module):
    """Tokens ``(n, t, c)`` → shift and log-scale ``(n, t, c)`` each, where position ``k`` sees tokens ``< k`` only.

    The input is shifted right behind a learned start vector, so position 0 gets learned constants
    and position ``k`` reads ``x_0 … x_{k−1}``. ``t`` may be shorter than ``tokens`` (a prefix).
    """

    def __init__(self, tokens: int, channels: int, width: int = 64, layers: int = 2, heads: int = 4):
        super().__init__()
        check_ints(tokens=tokens, channels=channels, width=width, layers=layers, heads=heads)
        if width % heads:
            raise ValueError(f"width must be divisible by heads, got width={width}, heads={heads}")
        self.embed = nn.Linear(channels, width)
        self.start = nn.Parameter(torch.zeros(width))
        self.position = nn.Parameter(0.02 * randn((tokens, width)))  # torch's global generator, like nn.Linear's init
        self.layers = nn.ModuleList(TransformerLayer(width, heads) for _ in range(layers))
        self.norm = nn.LayerNorm(width)
        self.out = nn.Linear(width, 2 * channels)
        nn.init.zeros_(self.out.weight)  # every block starts as the identity
        nn.init.zeros_(self.out.bias)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """The shift and log-scale ``(n, t, c)`` of every token, each read from the tokens before it."""
        n, t, _ = x.shape
        h = torch.cat([self.start.expand(n, 1, -1), self.embed(x[:, :-1])], 1) + self.position[:t]  # (n, t, width)
        for layer in self.layers:
            h = layer(h)
        shift, log_scale = self.out(self.norm(h)).chunk(2, dim=-1)
        return shift, log_scale


@dataclass
class Decoding:
    """An inversion: data ``x``, ``log|det ∂x/∂z|`` ``(n,)``, and the network passes each block used
    (in the order they ran, last block first)."""

    x: Tensor
    log_det: Tensor
    iterations: list[int]


class AutoregressiveBlock(nn.Module):
    """One TARFlow block on ``(n, T, c)`` sequences, reading the tokens backwards if ``reverse``.

    Args:
        tokens, channels: the sequence shape ``(T, c)``.
        width, layers, heads: size of the causal transformer.
        reverse: flip the token order on the way in and out.
        bound: the log-scale is soft-clamped to ``(−bound, bound)``.
    """

    def __init__(self, tokens: int, channels: int, width: int, layers: int, heads: int, reverse: bool, bound: float = 3.0):
        super().__init__()
        if not isinstance(reverse, bool):
            raise TypeError(f"reverse must be True or False, got {reverse!r}")
        self.net = CausalTransformer(tokens, channels, width, layers, heads)
        self.reverse, self.bound = reverse, check_bound(bound)

    def _order(self, x: Tensor) -> Tensor:
        return x.flip(1) if self.reverse else x

    def _params(self, x: Tensor) -> tuple[Tensor, Tensor]:
        shift, log_scale = self.net(x)
        return shift, soft_clamp(log_scale, self.bound)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Data side to latent side: ``z`` and ``log|det ∂z/∂x|`` ``(n,)``. All tokens in parallel."""
        x = self._order(x)
        z, log_det = affine_forward(x, *self._params(x))
        return self._order(z), log_det

    def inverse(self, z: Tensor) -> tuple[Tensor, Tensor]:
        """Latent side to data side: ``x`` and ``log|det ∂x/∂z|`` ``(n,)``. Token by token (:meth:`solve` with groups of one)."""
        x, log_det, _ = self.solve(z, group=1)
        return x, log_det

    def solve(self, z: Tensor, group: int, tol: float = 1e-5, max_iterations: int | None = None) -> tuple[Tensor, Tensor, int]:
        """Invert by Gauss–Seidel–Jacobi: groups of ``group`` tokens in order, Jacobi iterations inside each.

        A group stops when no token moves by more than ``tol``, after ``group`` iterations (then it is
        exact), or after ``max_iterations``. Returns ``x``, ``log|det ∂x/∂z|`` (from the last pass: exact
        when the group ran to the end, else as close as ``x``) and the network passes used.
        """
        z = self._order(z)
        x, log_det, passes = z.clone(), z.new_zeros(len(z)), 0  # z is the first guess
        for start in range(0, z.shape[1], group):
            end = min(start + group, z.shape[1])
            limit = end - start if max_iterations is None else min(end - start, max_iterations)
            for _ in range(limit):
                shift, log_scale = self._params(x[:, :end])  # tokens >= end are not read
                new, group_log_det = affine_inverse(z[:, start:end], shift[:, start:end], log_scale[:, start:end])
                moved = (new - x[:, start:end]).abs().max()
                x, passes = torch.cat([x[:, :start], new, x[:, end:]], 1), passes + 1
                if moved <= tol:
                    break
            log_det = log_det + group_log_det
        return self._order(x), log_det, passes


class TARFlow(Flow):
    """A TARFlow of ``blocks`` autoregressive blocks on sequences ``(n, tokens, channels)``.

    On 2D points, ``tokens=2, channels=1`` makes the coordinates the tokens.

    Args:
        tokens, channels: the shape of one sequence.
        blocks: number of blocks; the order is reversed in every second one.
        width, heads: size of each block's causal transformer.
        layers: transformer layers per block, one number for all, or one per block in the data-to-latent
            order (the last block is the one next to the noise, decoded first).
    """

    def __init__(
        self, tokens: int, channels: int = 2, blocks: int = 4, width: int = 64, layers: int | Sequence[int] = 2, heads: int = 4
    ):
        check_int("blocks", blocks)
        per_block = [layers] * blocks if isinstance(layers, int) else list(layers)
        if len(per_block) != blocks:
            raise ValueError(f"layers must be an int or one int per block ({blocks}), got {len(per_block)} values")
        check_ints(tokens=tokens, channels=channels, blocks=blocks, width=width, heads=heads)
        check_ints(**{f"layers[{k}]": n for k, n in enumerate(per_block)})
        if width % heads:
            raise ValueError(f"width must be divisible by heads, got width={width}, heads={heads}")
        super().__init__([AutoregressiveBlock(tokens, channels, width, n, heads, reverse=k % 2 == 1)
                          for k, n in enumerate(per_block)], (tokens, channels))

    def decode(
        self, z: Tensor, method: str = "jacobi", group: int | Sequence[int] | None = None, tol: float = 1e-5,
        max_iterations: int | None = None,
    ) -> Decoding:
        """Invert the flow from latents ``z`` ``(n, T, c)`` with ``method``, counting the network passes.

        Args:
            method: ``"sequential"`` (groups of 1), ``"jacobi"`` (one group of all ``T`` tokens) or
                ``"gs-jacobi"`` (groups of ``group`` tokens, default ``√T`` rounded).
            group: for ``"gs-jacobi"``, the group size, or one size per block in decoding order (the block
                next to the noise first): small groups for blocks that converge slowly, ``T`` for easy ones.
            tol: a group has converged when no token moves by more than ``tol``.
            max_iterations: cap on the Jacobi iterations of each group (to watch the error fall).
        """
        self._check(z, "z")
        check_choice("method", method, METHODS)
        check_number("tol", tol, low=0, why="how far a token may still move when a group has converged")
        tokens, blocks = self.event_shape[0], len(self.layers)
        default_group = max(1, round(tokens**0.5))
        size = {"sequential": 1, "jacobi": tokens, "gs-jacobi": default_group if group is None else group}[method]
        sizes = [size] * blocks if isinstance(size, int) else list(size)
        if len(sizes) != blocks:
            raise ValueError(f"group must be an int or one int per block ({blocks}), got {len(sizes)} values")
        check_ints(**{"group" if isinstance(size, int) else f"group[{k}]": n for k, n in enumerate(sizes)})
        if max_iterations is not None:
            check_int("max_iterations", max_iterations)
        x, log_det, iterations = z, z.new_zeros(len(z)), []
        for block, block_group in zip(reversed(self.layers), sizes):  # from the latent side to the data side
            x, block_log_det, passes = block.solve(x, block_group, tol, max_iterations)
            log_det, iterations = log_det + block_log_det, iterations + [passes]
        return Decoding(x, log_det, iterations)


def deep_shallow(
    tokens: int, channels: int = 2, shallow: int = 3, deep_layers: int = 4, width: int = 64, heads: int = 4
) -> TARFlow:
    """STARFlow's arrangement (Gu et al. 2025): one deep block of ``deep_layers`` transformer layers next to the
    noise, decoded first, then ``shallow`` blocks of one layer each towards the data.

    The deep block carries most of the parameters and of the dependence between tokens; the shallow blocks are
    cheap passes that reshape the result. Decoding can treat them differently (``group`` per block)."""
    check_int("shallow", shallow, minimum=0)
    check_int("deep_layers", deep_layers)
    return TARFlow(tokens, channels, blocks=shallow + 1, width=width, layers=[1] * shallow + [deep_layers], heads=heads)
