"""Partitions: a batch is one video; a recipe is one way to reconstruct it.

``frames`` and ``sparse_model`` are per batch. ``reconstruction`` and ``masks`` are
per (batch, recipe), so a fork is just another recipe partition of the same batch:
its upstream partitions are the batch's existing ``frames`` and ``sparse_model``.
"""

from dagster import (
    DynamicPartitionsDefinition,
    MultiPartitionsDefinition,
    StaticPartitionsDefinition,
)

from .recipes import RECIPES

batches = DynamicPartitionsDefinition(name="batches")
recipes = StaticPartitionsDefinition(list(RECIPES))
batch_recipes = MultiPartitionsDefinition({"batch": batches, "recipe": recipes})
