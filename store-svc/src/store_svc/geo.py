"""Great-circle distance and the geo grid the locator reads by `_id`.

The locator keeps its own index (faster here than a `2dsphere` query, see DESIGN.md): a
document per grid cell, `_id` "g<level>:<lat cell>:<lng cell>", listing the
stores (id, lat, lng) in that cell. Two levels are maintained on every store write:

- level 1: 0.1° cells (about 11 km x 9.5 km at Shanghai's latitude), used for radii up to
  `FINE_MAX_RADIUS_KM`, so a 5 km search reads at most 4 x 4 cells;
- level 0: 1° cells, used for larger radii (100 km: at most 3 x 4 cells).

A search reads only the cells covering its bounding box, so its cost grows with the stores
near the point, not with the whole chain.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

EARTH_RADIUS_KM = 6371.0088
KM_PER_DEGREE_LAT = math.pi * EARTH_RADIUS_KM / 180
FINE_MAX_RADIUS_KM = 15.0


@dataclass(frozen=True, slots=True)
class GridLevel:
    name: str
    cells_per_degree: int


COARSE = GridLevel("g0", 1)
FINE = GridLevel("g1", 10)
LEVELS = (COARSE, FINE)


def haversine_km(lat1: float, lng1: float, lat2: float, lng2: float) -> float:
    phi1, phi2 = math.radians(lat1), math.radians(lat2)
    dphi = phi2 - phi1
    dlmb = math.radians(lng2 - lng1)
    a = math.sin(dphi / 2) ** 2 + math.cos(phi1) * math.cos(phi2) * math.sin(dlmb / 2) ** 2
    return 2 * EARTH_RADIUS_KM * math.asin(min(1.0, math.sqrt(a)))


def _lat_cell(level: GridLevel, latitude: float) -> int:
    return min(math.floor(latitude * level.cells_per_degree), 90 * level.cells_per_degree - 1)


def _lng_cell(level: GridLevel, longitude: float) -> int:
    wrapped = (longitude + 180.0) % 360.0 - 180.0
    return math.floor(wrapped * level.cells_per_degree)


def cell_id(level: GridLevel, lat_cell: int, lng_cell: int) -> str:
    return f"{level.name}:{lat_cell}:{lng_cell}"


def cells_of(latitude: float, longitude: float) -> list[str]:
    """The cell of a point at every level: what a store write maintains."""
    return [
        cell_id(level, _lat_cell(level, latitude), _lng_cell(level, longitude)) for level in LEVELS
    ]


def covering_cells(latitude: float, longitude: float, radius_km: float) -> list[str]:
    """Cells of the level fit for `radius_km` that cover the circle's bounding box."""
    level = FINE if radius_km <= FINE_MAX_RADIUS_KM else COARSE
    per = level.cells_per_degree
    dlat = radius_km / KM_PER_DEGREE_LAT
    lat_lo, lat_hi = max(-90.0, latitude - dlat), min(90.0, latitude + dlat)
    max_abs_lat = max(abs(lat_lo), abs(lat_hi))
    cos_lat = math.cos(math.radians(max_abs_lat))
    lng_cells_total = 360 * per
    if max_abs_lat >= 89.9 or radius_km / (KM_PER_DEGREE_LAT * cos_lat) >= 180:
        lng_range = range(-180 * per, 180 * per)
    else:
        dlng = radius_km / (KM_PER_DEGREE_LAT * cos_lat)
        lo, hi = _lng_cell(level, longitude - dlng), _lng_cell(level, longitude + dlng)
        if hi < lo:  # crosses the antimeridian
            hi += lng_cells_total
        lng_range = range(lo, hi + 1)
    cells = []
    for lat_cell in range(_lat_cell(level, lat_lo), _lat_cell(level, lat_hi) + 1):
        for raw in lng_range:
            lng_cell = (raw + 180 * per) % lng_cells_total - 180 * per
            cells.append(cell_id(level, lat_cell, lng_cell))
    return list(dict.fromkeys(cells))
