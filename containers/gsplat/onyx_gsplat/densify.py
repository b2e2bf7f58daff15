"""Adaptive density control as 3DGS does it, within a Gaussian budget.

Between ``refine_start`` and ``refine_stop`` (fractions of the run), every
``refine_every`` steps (or ``refine_every_fraction`` of the run, if that comes first):

- prune Gaussians whose opacity fell under ``prune_opacity`` and, once opacities have
  been reset, those larger than ``prune_scale3d`` x the scene scale, unless the budget capped
  the last growth: 3DGS prunes a large Gaussian knowing growth will fill the space it leaves,
  but at the cap only as many grow as were pruned, and a small budget at a low resolution draws
  the background with large Gaussians (castle-P30 at 256 px, 26,175 Gaussians, 4,000 steps:
  held-out PSNR at step 2,000 fell from 22.8 dB before the reset to 19.0 dB with size pruning
  after it, and rose to 26.9 dB without);
- grow where the mean view-space gradient of a Gaussian's 2D mean (normalised to
  [-1, 1] screen units, over the steps it was visible) exceeds ``grow_grad2d``: clone
  the small ones (largest axis under ``grow_scale3d`` x the scene scale), split the
  large ones in two samples of themselves at 1/1.6 the size. When more qualify than the
  budget has room for, the highest gradients go first (the budget caps growth, it never
  removes what was learnt);
- ``opacity_resets`` times, evenly spaced in the window (once ``opacity_reset_after`` steps
  are done, and only inside the window), clamp every opacity to 2 x ``prune_opacity`` so the
  next prunings can find what is not needed.

The parameter edits are gsplat's (``gsplat.strategy.ops``), which keep each Adam
state aligned with its parameter. gsplat's own ``DefaultStrategy`` is not used: 1.5.3
never resets opacities (``step % reset_every == 0 & step > 0`` parses as a chained
comparison that is always false) and has no budget.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from gsplat.strategy.ops import duplicate, remove, reset_opa, split

from .config import GsplatConfig


@dataclass
class DensifyStrategy:
    config: GsplatConfig
    scene_scale: float
    max_gaussians: int
    grad2d: torch.Tensor | None = None  # summed normalised view-space gradient norm per Gaussian
    count: torch.Tensor | None = None   # steps each Gaussian was visible since the last refinement
    resets_done: int = 0
    last_refine: float = 0.0  # progress at the last refinement
    capped: bool = False  # the last growth had more candidates than the budget had room for
    events: list[dict] = field(default_factory=list)

    def in_window(self, progress: float) -> bool:
        return self.config.refine_start <= progress < self.config.refine_stop

    def reset_points(self) -> list[float]:
        """Fractions of the run at which opacities are reset."""
        start, stop, n = self.config.refine_start, self.config.refine_stop, self.config.opacity_resets
        return [start + (stop - start) * (k + 1) / (n + 1) for k in range(n)]

    def accumulate(self, info: dict) -> None:
        """After ``backward``: add this step's view-space gradients (``info["means2d"].grad``)."""
        means2d = info["means2d"]
        if means2d.grad is None:
            return
        grads = means2d.grad.detach().clone()  # [C, N, 2]
        grads[..., 0] *= info["width"] / 2.0 * info["n_cameras"]
        grads[..., 1] *= info["height"] / 2.0 * info["n_cameras"]
        visible = (info["radii"] > 0).all(dim=-1)  # [C, N]
        n = grads.shape[1]
        if self.grad2d is None or len(self.grad2d) != n:
            self.grad2d = torch.zeros(n, device=grads.device)
            self.count = torch.zeros(n, device=grads.device)
        norms = torch.where(visible, grads.norm(dim=-1), 0.0)
        self.grad2d += norms.sum(dim=0)
        self.count += visible.sum(dim=0)

    @torch.no_grad()
    def step(self, params, optimizers, step: int, progress: float) -> dict | None:
        """Refine at this step if it is due; returns what changed (None when nothing was due)."""
        event = None
        # Every refine_every steps, or every refine_every_fraction of the run when steps are few
        # (a short or busy time budget), so growth happens within the window either way.
        due = (step % self.config.refine_every == 0
               or progress - self.last_refine >= self.config.refine_every_fraction)
        if self.in_window(progress) and step > 0 and due and self.grad2d is not None:
            self.last_refine = progress
            event = {"step": step, "before": len(params["means"])}
            event["pruned"] = self._prune(params, optimizers)
            event["cloned"], event["split"] = self._grow(params, optimizers)
            event["after"] = len(params["means"])
            self.grad2d = self.count = None
        points = self.reset_points()
        # A reset waits for opacity_reset_after steps, but never past the densification window:
        # after it, nothing prunes what the reset faded and too little of the run is left to recover.
        if (self.resets_done < len(points) and progress >= points[self.resets_done]
                and step >= self.config.opacity_reset_after and self.in_window(progress)):
            reset_opa(params=params, optimizers=optimizers, state={}, value=2.0 * self.config.prune_opacity)
            self.resets_done += 1
            event = event or {"step": step, "before": len(params["means"]), "after": len(params["means"])}
            event["opacity_reset"] = True
        if event:
            self.events.append(event)
        return event

    @torch.no_grad()
    def drop_non_finite(self, params, optimizers, step: int) -> int:
        """Remove Gaussians holding a NaN or infinite parameter (with their Adam state).

        A degenerate Gaussian (a 2D covariance with a vanishing determinant, an overflowing
        scale) can give a non-finite gradient; Adam then writes it into the parameter, and the
        Gaussian, culled by every frustum test, stays invisible until the export refuses the
        splat. Dropped at once, it is one Gaussian less, not a failed run.
        """
        bad = torch.zeros(len(params["means"]), dtype=torch.bool, device=params["means"].device)
        for value in params.values():
            bad |= ~torch.isfinite(value).reshape(len(value), -1).all(dim=1)
        n = int(bad.sum())
        if n:
            state = self._state()
            remove(params=params, optimizers=optimizers, state=state, mask=bad)
            self._set_state(state)
            self.events.append({"step": step, "non_finite_dropped": n, "after": len(params["means"])})
        return n

    def _state(self) -> dict:
        return {"grad2d": self.grad2d, "count": self.count}

    def _set_state(self, state: dict) -> None:
        self.grad2d, self.count = state["grad2d"], state["count"]

    def _prune(self, params, optimizers) -> int:
        prune = torch.sigmoid(params["opacities"]) < self.config.prune_opacity
        if self.resets_done > 0 and not self.capped:
            largest = torch.exp(params["scales"]).max(dim=-1).values
            prune |= largest > self.config.prune_scale3d * self.scene_scale
        n = int(prune.sum())
        if n:
            state = self._state()
            remove(params=params, optimizers=optimizers, state=state, mask=prune)
            self._set_state(state)
        return n

    def _grow(self, params, optimizers) -> tuple[int, int]:
        grads = self.grad2d / self.count.clamp_min(1)
        room = self.max_gaussians - len(params["means"])
        candidates = grads > self.config.grow_grad2d
        self.capped = int(candidates.sum()) > room
        if room <= 0 or not candidates.any():
            return 0, 0
        if self.capped:
            top = torch.topk(torch.where(candidates, grads, -1.0), room).indices
            candidates = torch.zeros_like(candidates)
            candidates[top] = True
        small = torch.exp(params["scales"]).max(dim=-1).values <= self.config.grow_scale3d * self.scene_scale
        clone, to_split = candidates & small, candidates & ~small
        n_clone, n_split = int(clone.sum()), int(to_split.sum())
        state = self._state()
        if n_clone:
            duplicate(params=params, optimizers=optimizers, state=state, mask=clone)
            to_split = torch.cat([to_split, torch.zeros(n_clone, dtype=torch.bool, device=to_split.device)])
        if n_split:
            split(params=params, optimizers=optimizers, state=state, mask=to_split)
        self._set_state(state)
        return n_clone, n_split
