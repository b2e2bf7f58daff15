"""Which frames to match beyond their neighbours, found from the batch's own SIFT features.

COLMAP's loop detection needs a vocabulary tree that it downloads; Onyx runs offline. Instead
a small visual vocabulary is trained on a sample of this batch's own descriptors (k-means), each
image becomes one VLAD vector (the residuals of its descriptors to their nearest words, Jégou
et al. 2010), and every image is matched with its sequential neighbours plus the ``top_k``
images whose vectors are most alike. The pair count stays linear in frames, so closing a loop
(coming back to a place seen minutes earlier) costs k pairs per frame, not all of them.

Pure numpy and OpenCV's k-means over arrays; reading the descriptors is ``colmap_steps``' job.
"""

from __future__ import annotations

import cv2
import numpy as np

from .view_pairs import frame_pairs

WORDS = 64               # vocabulary size: enough to tell places apart in one batch, cheap to train
SAMPLE_PER_IMAGE = 200   # descriptors per image that train the vocabulary
MAX_PER_IMAGE = 2048     # descriptors per image that make its VLAD vector (the strongest come first)


def root_sift(descriptors: np.ndarray) -> np.ndarray:
    """RootSIFT (Arandjelović & Zisserman 2012): L1-normalise, then square root; float32."""
    values = np.asarray(descriptors, np.float32)
    values /= np.maximum(values.sum(axis=1, keepdims=True), 1e-9)
    return np.sqrt(values)


def train_vocabulary(descriptors: list[np.ndarray], words: int = WORDS, sample_per_image: int = SAMPLE_PER_IMAGE,
                     seed: int = 0) -> np.ndarray:
    """k-means word centres (words, 128) of a sample of every image's RootSIFT descriptors."""
    rng = np.random.default_rng(seed)
    sample = []
    for values in descriptors:
        if len(values):
            pick = rng.choice(len(values), size=min(sample_per_image, len(values)), replace=False)
            sample.append(root_sift(values[pick]))
    if not sample:
        raise ValueError("no image has SIFT descriptors to train a vocabulary on")
    data = np.concatenate(sample)
    words = max(1, min(words, len(data) // 4))
    cv2.setRNGSeed(seed)
    criteria = (cv2.TERM_CRITERIA_EPS + cv2.TERM_CRITERIA_MAX_ITER, 20, 1e-4)
    _, _, centres = cv2.kmeans(data, words, None, criteria, 1, cv2.KMEANS_PP_CENTERS)
    return centres.astype(np.float32)


def vlad(descriptors: np.ndarray, centres: np.ndarray, max_descriptors: int = MAX_PER_IMAGE) -> np.ndarray:
    """One image's VLAD vector (words * 128), intra- and power-normalised, unit length (zeros if empty)."""
    words, dims = centres.shape
    out = np.zeros((words, dims), np.float32)
    if len(descriptors):
        values = root_sift(descriptors[:max_descriptors])
        # nearest word by OpenCV's matcher: numpy's threaded BLAS crawls on a busy machine
        nearest = np.array([m.trainIdx for m in cv2.BFMatcher(cv2.NORM_L2).match(values, centres)], np.int64)
        order = np.argsort(nearest, kind="stable")
        words_used, starts = np.unique(nearest[order], return_index=True)
        sums = np.add.reduceat(values[order], starts, axis=0)
        counts = np.diff(np.append(starts, len(order)))
        out[words_used] = sums - counts[:, None] * centres[words_used]  # residual sum per word
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        out = np.where(norms > 0, out / np.maximum(norms, 1e-12), 0.0)  # intra-normalisation: no word dominates
    flat = np.sign(out) * np.sqrt(np.abs(out))
    norm = np.linalg.norm(flat)
    return (flat / norm if norm > 0 else flat).reshape(-1)


def most_similar(vectors: np.ndarray, top_k: int, exclude_within: int = 0) -> list[tuple[int, int]]:
    """For each image i, the ``top_k`` images j most like it (by vector dot product), skipping
    those within ``exclude_within`` frames of i (its neighbours are matched anyway); pairs (i, j), i < j."""
    count = len(vectors)
    if count < 2 or top_k < 1:
        return []
    similarity = vectors @ vectors.T
    index = np.arange(count)
    near = np.abs(index[:, None] - index[None, :]) <= exclude_within
    similarity[near] = -np.inf
    k = min(top_k, count - 1)
    best = np.argpartition(-similarity, kth=k - 1, axis=1)[:, :k]
    pairs = set()
    for i in range(count):
        for j in best[i]:
            if np.isfinite(similarity[i, j]):
                pairs.add((min(i, int(j)), max(i, int(j))))
    return sorted(pairs)


def retrieval_pairs(names: list[str], descriptors: list[np.ndarray], *, overlap: int, quadratic_overlap: bool,
                    top_k: int, seed: int = 0) -> tuple[list[tuple[str, str]], int]:
    """Image-name pairs to match: sequential neighbours (as sequential matching makes them) plus each
    image's ``top_k`` most similar others. Returns the pairs and how many came from retrieval only."""
    sequential = set(frame_pairs(list(range(len(names))), overlap, quadratic=quadratic_overlap))
    retrieved: set[tuple[int, int]] = set()
    described = sum(1 for values in descriptors if len(values))
    if top_k > 0 and len(names) > overlap + 1 and described >= 2:  # a blank wall has nothing to retrieve by
        centres = train_vocabulary(descriptors, seed=seed)
        vectors = np.stack([vlad(values, centres) for values in descriptors])
        retrieved = set(most_similar(vectors, top_k, exclude_within=overlap))
    pairs = sorted(sequential | retrieved)
    return [(names[i], names[j]) for i, j in pairs], len(retrieved - sequential)
