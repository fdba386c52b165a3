"""Body shapes: Anny phenotypes for a realistic population (adults and teenagers of both sexes, thin to
heavy, short to tall, some children).

Anny's phenotypes are gender (0 male .. 1 female), age (0 newborn, ~0.19 eleven years, 0.5 a young
adult, 1 old), muscle, weight, height and proportions, each in [0, 1]. The height phenotype spans
far more than people do (an adult is 1.18 m at 0 and 2.2 m at 1), so we draw a *stature* from a
population model (by age and sex) and solve for the height phenotype with a table measured on Anny
itself (``stature_table``), linear in the height phenotype between 0, 0.5 and 1.
"""

from __future__ import annotations

import dataclasses
import functools

import numpy as np
import torch

# Anny's age phenotype <-> years (MakeHuman's convention)
_AGE_KNOTS = np.array([0.0, 0.1875, 0.5, 1.0])
_YEARS_KNOTS = np.array([1.0, 11.0, 25.0, 90.0])
# mean stature in metres by age in years (male, female): a smoothed growth chart
_GROWTH_YEARS = np.array([4, 6, 8, 10, 12, 14, 16, 18, 25, 60, 90], np.float64)
_GROWTH_MALE = np.array([1.03, 1.16, 1.28, 1.39, 1.50, 1.64, 1.73, 1.76, 1.77, 1.76, 1.72])
_GROWTH_FEMALE = np.array([1.02, 1.15, 1.27, 1.39, 1.52, 1.60, 1.63, 1.64, 1.64, 1.63, 1.59])
_TABLE_AGES = np.linspace(0.05, 1.0, 20)


def years_to_age(years: np.ndarray) -> np.ndarray:
    return np.interp(years, _YEARS_KNOTS, _AGE_KNOTS)


def mean_stature_m(years: np.ndarray, female: np.ndarray) -> np.ndarray:
    """Population mean stature (metres) for ages in years and a female weight in [0, 1]."""
    male = np.interp(years, _GROWTH_YEARS, _GROWTH_MALE)
    fem = np.interp(years, _GROWTH_YEARS, _GROWTH_FEMALE)
    return (1 - female) * male + female * fem


@functools.lru_cache(maxsize=2)
def stature_table(body) -> np.ndarray:
    """(2 genders, 20 ages, 3 height values 0/0.5/1) standing heights in metres of Anny's rest mesh,
    measured once (~0.2 s); other phenotypes at 0.5."""
    genders, ages, heights = (0.0, 1.0), _TABLE_AGES, (0.0, 0.5, 1.0)
    grid = np.array([[g, a, 0.5, 0.5, h, 0.5] for g in genders for a in ages for h in heights], np.float32)
    with torch.no_grad():
        vertices, _ = body.rest(torch.from_numpy(grid).to(body.dense_weights.dtype))
    return vertices[..., 2].amax(1).numpy().reshape(len(genders), len(ages), len(heights))


def height_phenotype_for(table: np.ndarray, gender: np.ndarray, age: np.ndarray, stature: np.ndarray) -> np.ndarray:
    """Invert the table: the height phenotype giving ``stature`` at this gender and age (clipped to
    [0, 1])."""
    out = np.empty(len(gender))
    for i, (g, a, s) in enumerate(zip(gender, age, stature)):
        per_gender = np.array([[np.interp(a, _TABLE_AGES, table[k, :, h]) for h in range(3)] for k in range(2)])
        h0, h5, h1 = (1 - g) * per_gender[0] + g * per_gender[1]
        out[i] = 0.5 * (s - h0) / (h5 - h0) if s <= h5 else 0.5 + 0.5 * (s - h5) / (h1 - h5)
    return np.clip(out, 0.0, 1.0)


@dataclasses.dataclass(frozen=True)
class PopulationMix:
    """Shares of the population: children (4-12 years) and teenagers (13-19); the rest are adults
    (20-80)."""

    children: float = 0.08
    teenagers: float = 0.14


def sample_shapes(rng: np.random.Generator, count: int, table: np.ndarray, mix: PopulationMix = PopulationMix()) -> np.ndarray:
    """(count, 6) float32 phenotypes [gender, age, muscle, weight, height, proportions]."""
    group = rng.choice(3, size=count, p=[mix.children, mix.teenagers, 1 - mix.children - mix.teenagers])
    years = np.select([group == 0, group == 1], [rng.uniform(4, 12.99, count), rng.uniform(13, 19.99, count)],
                      rng.uniform(20, 80, count))  # fmt: skip
    female = (rng.random(count) < 0.5).astype(np.float64)
    # mostly clearly male or female bodies, some in between
    gender = np.where(female > 0, 1.0 - rng.beta(1.0, 6.0, count), rng.beta(1.0, 6.0, count))
    age = years_to_age(years)
    stature = mean_stature_m(years, gender) * np.exp(rng.normal(0.0, 0.04, count))
    height = height_phenotype_for(table, gender, age, stature)
    muscle = np.clip(rng.beta(2.0, 2.0, count), 0, 1)
    weight = np.clip(rng.beta(1.6, 1.8, count) * np.where(group == 0, 0.8, 1.0), 0, 1)
    proportions = rng.uniform(0.2, 0.8, count)
    return np.stack([gender, age, muscle, weight, height, proportions], 1).astype(np.float32)
