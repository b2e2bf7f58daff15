"""Recipes: ``{mode}-{quality}``, each with the tool that runs it and its output folder."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Recipe:
    name: str       # "gaussian-proto"
    tool: str       # the container in containers/<tool>/
    produces: str   # "splat" or "mesh"
    gpu: bool       # whether the tool wants a GPU when one is there


RECIPES: dict[str, Recipe] = {
    recipe.name: recipe
    for recipe in (
        Recipe("gaussian-production", tool="milo", produces="splat", gpu=True),
        Recipe("gaussian-proto", tool="gsplat", produces="splat", gpu=True),
        Recipe("photogrammetry-production", tool="openmvs", produces="mesh", gpu=True),
        Recipe("photogrammetry-proto", tool="openmvs", produces="mesh", gpu=True),
    )
}


class UnknownRecipeError(ValueError):
    pass


def recipe_name(mode: str, quality: str) -> str:
    return f"{mode}-{quality}"


def get_recipe(name: str) -> Recipe:
    try:
        return RECIPES[name]
    except KeyError:
        raise UnknownRecipeError(
            f"recipe '{name}' does not exist: choose one of {', '.join(RECIPES)} "
            "(mode gaussian|photogrammetry, quality proto|production)") from None
